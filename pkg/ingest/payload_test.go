package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// laterPayload is a connection that learns the server's max_payload only
// after a few looks, as one still retrying its first server does.
type laterPayload struct {
	looks atomic.Int32
	after int32
	max   int64
}

func (l *laterPayload) MaxPayload() int64 {
	if l.looks.Add(1) <= l.after {
		return 0
	}
	return l.max
}

// TestPayloadCheckWaitsForTheServer: the body limit is checked against
// max_payload once the server has told it, not against the 0 of a
// connection still waiting for its first server; a server too small is
// still refused, and an end before any server came is no error.
func TestPayloadCheckWaitsForTheServer(t *testing.T) {
	t.Parallel()
	cfg := Config{}.WithDefaults()
	if err := awaitPayload(context.Background(), &laterPayload{after: 3, max: 1 << 20}, cfg.FitsPayload); err != nil {
		t.Fatalf("default body limit against a 1 MiB server: %v", err)
	}
	if err := awaitPayload(context.Background(), &laterPayload{after: 3, max: 512 << 10}, cfg.FitsPayload); err == nil {
		t.Fatal("a 512 KiB max_payload was accepted for 1 MiB bodies")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := awaitPayload(ctx, &laterPayload{after: 1 << 30}, cfg.FitsPayload); err != nil {
		t.Fatalf("stopped before any server answered: %v, want nil", err)
	}
}
