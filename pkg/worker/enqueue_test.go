package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/fixture"
)

// Rows handlers queue with Stored.Enqueue commit with their events, and
// not at all when the transaction fails; a handler may queue several.
func TestEnqueuedRowsCommitWithTheirEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const channel = "1650000051"
	good := fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "two replies please")
	bad := fixture.Text(fixture.User(fixture.UserID(2)), time.Now(), "this one fails")
	twice := HandlerFunc(func(_ context.Context, _ pgx.Tx, s Stored) error {
		for range 2 {
			if err := s.Enqueue(store.OutboxInsert{ChannelID: s.ChannelID, Endpoint: store.EndpointPush,
				Body: []byte(`{"to":"` + s.Event.Source.UserID + `","messages":[{"type":"text","text":"hi"}]}`)}); err != nil {
				return err
			}
		}
		if s.Event.WebhookEventID == fixture.ID(bad) {
			return errors.New("bot logic fails after queueing")
		}
		return nil
	})
	b.publish(t, channel, good, bad)
	runWorker(t, New(Config{AckWait: 2 * time.Second, MaxAttempts: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
		NewMetrics(ops.NewRegistry()), zap.NewNop(), twice), 1)
	b.waitStored(t, 1)
	var rows int
	var to string
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*), min(body->>'to') FROM outbox`).Scan(&rows, &to); err != nil {
		t.Fatal(err)
	}
	if rows != 2 || to != fixture.UserID(1) {
		t.Errorf("outbox holds %d rows (to %s); want the two queued for the stored event and none of the failed one", rows, to)
	}
	if err := (Stored{}).Enqueue(store.OutboxInsert{Endpoint: store.EndpointPush}); err == nil {
		t.Error("Enqueue outside the worker's transaction succeeded")
	}
	if err := (Stored{}).Enqueue(store.OutboxInsert{Endpoint: "fax"}); !errors.Is(err, store.ErrUnknownEndpoint) {
		t.Errorf("Enqueue to an unknown endpoint: %v", err)
	}
}
