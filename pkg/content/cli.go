package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Get writes the stored content of channelID's messageID to w, for
// `worker content get <channel> <message> > photo.jpg`. It reads NATS_URL
// and CONTENT_BUCKET. The object store verifies the SHA-256 at the end,
// so a damaged object is an error, not silent bytes.
func Get(ctx context.Context, env *config.Env, channelID, messageID string, w io.Writer) (Info, error) {
	sc := stream.FromEnv(env)
	bucket := env.String("CONTENT_BUCKET", DefaultBucket)
	nc, js, err := stream.Connect(sc, "linepipe-content-get", zap.NewNop())
	if err != nil {
		return Info{}, err
	}
	defer nc.Close()
	objs, err := OpenObjects(ctx, js, bucket)
	if err != nil {
		return Info{}, err
	}
	info, err := objs.WriteTo(ctx, ObjectName(channelID, messageID), w)
	if errors.Is(err, ErrNoObject) {
		return Info{}, fmt.Errorf("no content stored for message %s of channel %s (see message_content.status)", messageID, channelID)
	}
	return info, err
}
