package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Get writes the stored content of channelID's messageID to w, for
// `worker content get <channel> <message> > photo.jpg`. It reads NATS_URL,
// the NATS credentials (NATS_USER and the rest) and CONTENT_BUCKET; the
// user must be one that may read the bucket, the sender's. The object
// store verifies the SHA-256 at the end, so a damaged object is an error,
// not silent bytes.
//
// Opening the bucket gets OpenTimeout; the download gets what is left of
// ctx.
func Get(ctx context.Context, env *config.Env, channelID, messageID string, w io.Writer) (Info, error) {
	sc := stream.FromEnv(env)
	bucket := BucketFromEnv(env)
	nc, js, err := stream.Connect(sc, "linepipe-content-get", zap.NewNop())
	if err != nil {
		return Info{}, err
	}
	defer nc.Close()
	objs, err := openForGet(ctx, nc, js, bucket)
	if err != nil {
		return Info{}, err
	}
	info, err := objs.WriteTo(ctx, ObjectName(channelID, messageID), w)
	if errors.Is(err, ErrNoObject) {
		return Info{}, fmt.Errorf("no content stored for message %s of channel %s (see message_content.status)", messageID, channelID)
	}
	return info, err
}

// OpenTimeout bounds opening the bucket in Get. NATS does not answer a
// request its user may not publish: the permissions violation arrives on
// the side and the request waits for its deadline. Without this bound a
// user without access to the bucket (the worker's, in deploy/nats/nats.conf)
// would sit silent for the whole download's deadline.
const OpenTimeout = 10 * time.Second

func openForGet(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, bucket string) (*Objects, error) {
	octx, cancel := context.WithTimeout(ctx, OpenTimeout)
	defer cancel()
	objs, err := OpenObjects(octx, js, bucket)
	if err == nil {
		return objs, nil
	}
	if last := nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
		return nil, fmt.Errorf("content bucket %s: this NATS user may not read it (%v); "+
			"run the command with the sender's NATS credentials, for example in the sender container", bucket, last)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, fmt.Errorf("content bucket %s: no answer from NATS within %s: is NATS reachable at NATS_URL, "+
			"and may this NATS user read the bucket? (only the sender's user and admin may)", bucket, OpenTimeout)
	}
	return nil, err
}

// BucketFromEnv is CONTENT_BUCKET, the object store bucket content is
// kept in, as the sender and `worker content get` read it.
func BucketFromEnv(env *config.Env) string { return env.String("CONTENT_BUCKET", DefaultBucket) }
