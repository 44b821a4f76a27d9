package tests

import (
	"context"
	"sync"
	"testing"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/store"
)

// A 410, LINE's answer for content whose message was unsent, ends the row
// missing with the status kept, without retries: the bytes are gone at
// LINE, and the unsend event that follows ends the row deleted.
func TestContentGoneAtLINEEndsMissing(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
	r.fake.UnsendEvent(mediaUser, img.Message.ID) // built, not yet sent: LINE answers 410 from now on
	r.webhook(img)
	r.startFetcher(r.fetcherConfig())
	r.waitStatus(img.Message.ID, store.ContentMissing)
	var code, attempts int
	if err := r.db.Pool.QueryRow(context.Background(), `SELECT last_status_code, attempts FROM message_content
		WHERE message_id = $1`, img.Message.ID).Scan(&code, &attempts); err != nil {
		t.Fatal(err)
	}
	if code != 410 || attempts != 1 {
		t.Fatalf("missing after status %d and %d attempts; want LINE's 410, once", code, attempts)
	}
}

// staleThenFresh hands out a token LINE no longer accepts until the
// fetcher drops it, then the channel's current one.
type staleThenFresh struct {
	mu      sync.Mutex
	dropped []string
}

func (s *staleThenFresh) Get(context.Context, string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dropped) == 0 {
		return "revoked-token", nil
	}
	return contentToken, nil
}

func (s *staleThenFresh) Invalidate(_, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped = append(s.dropped, token)
}

// A 401 drops the token that got it and fetches again at once with a
// fresh one, which stores the content.
func TestContent401TakesAFreshToken(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	tokens := &staleThenFresh{}
	f, err := content.New(r.fetcherConfig(), r.db.Pool, r.js, tokens)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 2000)
	r.webhook(img)
	r.waitStatus(img.Message.ID, store.ContentStored)
	r.assertStored(img.Message.ID, 2000)
	tokens.mu.Lock()
	defer tokens.mu.Unlock()
	if len(tokens.dropped) != 1 || tokens.dropped[0] != "revoked-token" {
		t.Fatalf("tokens dropped %v; want the revoked one, once", tokens.dropped)
	}
}
