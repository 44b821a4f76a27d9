package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Objects is the content bucket: a JetStream Object Store, so content
// lives in the NATS deployment linepipe already runs and follows its
// replication. An object is named <channelID>/<messageID>; putting a name
// again replaces the object whole (its old chunks are purged), which is
// what makes a retried fetch leave exactly one object.
type Objects struct {
	obs    jetstream.ObjectStore
	js     jetstream.JetStream
	bucket string
}

// ChunkSize is the size of the chunks an object is stored as: the object
// store's default, set explicitly because the fetcher's heartbeat and the
// orphan sweep reason in chunks.
const ChunkSize = 128 << 10

// ObjectName is where a message's content is stored.
func ObjectName(channelID, messageID string) string { return channelID + "/" + messageID }

// EnsureObjects creates the bucket, or updates it to bucket and replicas.
func EnsureObjects(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Objects, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "linepipe message content: <channelID>/<messageID>",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ensuring object store %s: %w", bucket, err)
	}
	return &Objects{obs: obs, js: js, bucket: bucket}, nil
}

// OpenObjects opens an existing bucket, for readers.
func OpenObjects(ctx context.Context, js jetstream.JetStream, bucket string) (*Objects, error) {
	obs, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("opening object store %s: %w", bucket, err)
	}
	return &Objects{obs: obs, js: js, bucket: bucket}, nil
}

// ErrTooLarge means the content exceeded the size bound.
var ErrTooLarge = errors.New("content larger than CONTENT_MAX_BYTES")

// Written describes a stored object.
type Written struct {
	Size   int64
	SHA256 string // hex
}

// Put streams r into the object name, never holding more than a chunk
// of it: the object store reads 128 KiB at a time and publishes each
// chunk as it goes. More than maxBytes is ErrTooLarge and leaves no
// object; a read error leaves no new object (the partial chunks are
// purged) and the previous one, if any, untouched.
func (o *Objects) Put(ctx context.Context, name, contentType string, r io.Reader, maxBytes int64) (Written, error) {
	h := sha256.New()
	lr := &limitReader{r: r, left: maxBytes}
	meta := jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: ChunkSize}}
	if contentType != "" {
		meta.Headers = map[string][]string{"Content-Type": {contentType}}
	}
	info, err := o.obs.Put(ctx, meta, fullReader{io.TeeReader(lr, h)})
	if lr.over {
		if err == nil {
			_ = o.Delete(ctx, name)
		}
		return Written{}, ErrTooLarge
	}
	if err != nil {
		return Written{}, fmt.Errorf("storing object %s: %w", name, err)
	}
	return Written{Size: int64(info.Size), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Delete removes name's object and purges its chunks. A missing object is
// not an error.
func (o *Objects) Delete(ctx context.Context, name string) error {
	err := o.obs.Delete(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("deleting object %s: %w", name, err)
	}
	return nil
}

// Info describes a stored object.
type Info struct {
	Size        int64
	SHA256      string // hex
	ContentType string
	ModTime     time.Time
}

// ErrNoObject means no object has the name.
var ErrNoObject = errors.New("no such object")

// Stat returns name's object info, or ErrNoObject.
func (o *Objects) Stat(ctx context.Context, name string) (Info, error) {
	info, err := o.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Info{}, ErrNoObject
	}
	if err != nil {
		return Info{}, err
	}
	return toInfo(info), nil
}

func toInfo(info *jetstream.ObjectInfo) Info {
	out := Info{Size: int64(info.Size), ModTime: info.ModTime}
	if info.Headers != nil {
		out.ContentType = info.Headers.Get("Content-Type")
	}
	// Digest is "SHA-256=<base64url>".
	if d, ok := decodeDigest(info.Digest); ok {
		out.SHA256 = d
	}
	return out
}

// WriteTo streams name's object to w; the object store checks its digest
// at the end, so a corrupt object is an error rather than silent bytes.
func (o *Objects) WriteTo(ctx context.Context, name string, w io.Writer) (Info, error) {
	res, err := o.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Info{}, ErrNoObject
	}
	if err != nil {
		return Info{}, err
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return Info{}, err
	}
	if _, err := io.Copy(w, res); err != nil {
		return Info{}, fmt.Errorf("reading object %s: %w", name, err)
	}
	return toInfo(info), nil
}

// limitReader passes at most left bytes and notes whether r had more.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe for one more byte: exactly maxBytes is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.over = true
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// fullReader fills each buffer it is given unless the stream ends: the
// object store makes one chunk message per Read, and a network body
// returns whatever arrived, so without it an object would be stored as
// many small chunks.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.r.Read(p[n:])
		n += m
		if err == io.EOF && n > 0 {
			return n, nil // the next Read reports io.EOF again
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// PurgeOrphans purges chunks no object points at and nothing has written
// to for age: what a fetcher killed in the middle of a put leaves (a put
// writes its chunks first and the object's entry last). age must exceed
// the longest put, so chunks of a put in progress are never taken. It
// returns how many chunk subjects it purged.
func (o *Objects) PurgeOrphans(ctx context.Context, age time.Duration) (int, error) {
	s, orphans, err := o.orphans(ctx)
	if err != nil {
		return 0, err
	}
	purged := 0
	for _, subj := range orphans {
		m, err := s.GetLastMsgForSubject(ctx, subj)
		if err != nil || time.Since(m.Time) < age {
			continue
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return purged, err
		}
		purged++
	}
	return purged, nil
}

// List returns the names of the bucket's live objects.
func (o *Objects) List(ctx context.Context) ([]string, error) {
	list, err := o.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(list))
	for i, oi := range list {
		names[i] = oi.Name
	}
	return names, nil
}

// Orphans counts chunk subjects no live object points at.
func (o *Objects) Orphans(ctx context.Context) (int, error) {
	_, orphans, err := o.orphans(ctx)
	return len(orphans), err
}

// orphans lists the bucket stream's chunk subjects no live object points
// at.
func (o *Objects) orphans(ctx context.Context) (jetstream.Stream, []string, error) {
	s, err := o.js.Stream(ctx, "OBJ_"+o.bucket)
	if err != nil {
		return nil, nil, err
	}
	prefix := "$O." + o.bucket + ".C."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil || len(info.State.Subjects) == 0 {
		return s, nil, err
	}
	list, err := o.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil, err
	}
	live := map[string]bool{}
	for _, oi := range list {
		live[oi.NUID] = true
	}
	var orphans []string
	for subj := range info.State.Subjects {
		if !live[strings.TrimPrefix(subj, prefix)] {
			orphans = append(orphans, subj)
		}
	}
	return s, orphans, nil
}
