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

// enqueueOnlyFunc is a HandlerFunc that declares itself EnqueueOnly.
type enqueueOnlyFunc HandlerFunc

func (f enqueueOnlyFunc) Handle(ctx context.Context, tx pgx.Tx, s Stored) error { return f(ctx, tx, s) }
func (enqueueOnlyFunc) EnqueueOnly()                                            {}

// Rows handlers queue with Stored.Enqueue commit with their events, and
// not at all when the transaction fails, also when the rows themselves
// fail as COMMIT's companions (an EnqueueOnly handler's rows travel with
// the COMMIT); a handler may queue several. An EnqueueOnly handler that
// uses its transaction gets an error.
func TestEnqueuedRowsCommitWithTheirEvent(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"handler", "enqueue-only"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t)
			const channel = "1650000051"
			good := fixture.Text(fixture.User(fixture.UserID(1)), time.Now(), "two replies please")
			bad := fixture.Text(fixture.User(fixture.UserID(2)), time.Now(), "this one fails")
			badRow := fixture.Text(fixture.User(fixture.UserID(3)), time.Now(), "this one queues a row Postgres refuses")
			usesTx := fixture.Text(fixture.User(fixture.UserID(4)), time.Now(), "this one uses its transaction")
			twice := func(ctx context.Context, tx pgx.Tx, s Stored) error {
				for range 2 {
					body := `{"to":"` + s.Event.Source.UserID + `","messages":[{"type":"text","text":"hi"}]}`
					if s.Event.WebhookEventID == fixture.ID(badRow) {
						body = `{"to": not json`
					}
					if err := s.Enqueue(store.OutboxInsert{ChannelID: s.ChannelID, Endpoint: store.EndpointPush,
						Body: []byte(body)}); err != nil {
						return err
					}
				}
				switch s.Event.WebhookEventID {
				case fixture.ID(bad):
					return errors.New("bot logic fails after queueing")
				case fixture.ID(usesTx):
					var one int
					return tx.QueryRow(ctx, "SELECT 1").Scan(&one)
				}
				return nil
			}
			var h Handler = HandlerFunc(twice)
			want := 2 // the good event and the one using its transaction
			if kind == "enqueue-only" {
				h, want = enqueueOnlyFunc(twice), 1
			}
			b.publish(t, channel, good, bad, badRow, usesTx)
			runWorker(t, New(Config{AckWait: 2 * time.Second, MaxAttempts: 1, IdleWait: 200 * time.Millisecond}, b.sc, b.js, b.db.Pool,
				NewMetrics(ops.NewRegistry()), zap.NewNop(), h), 1)
			b.waitStored(t, want)
			var rows int
			var tos []string
			if err := b.db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(array_agg(DISTINCT body->>'to'), '{}') FROM outbox`).Scan(&rows, &tos); err != nil {
				t.Fatal(err)
			}
			if rows != 2*want || len(tos) == 0 || tos[0] != fixture.UserID(1) {
				t.Errorf("outbox holds %d rows to %v; want two for each of the %d stored events, the good one's first", rows, tos, want)
			}
			var stored []string
			if err := b.db.Pool.QueryRow(ctx, `SELECT coalesce(array_agg(webhook_event_id), '{}') FROM events`).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			for _, id := range stored {
				if id == fixture.ID(bad) || id == fixture.ID(badRow) || (kind == "enqueue-only" && id == fixture.ID(usesTx)) {
					t.Errorf("event %s was stored although its transaction failed", id)
				}
			}
		})
	}
	if err := (Stored{}).Enqueue(store.OutboxInsert{Endpoint: store.EndpointPush}); err == nil {
		t.Error("Enqueue outside the worker's transaction succeeded")
	}
	if err := (Stored{}).Enqueue(store.OutboxInsert{Endpoint: "fax"}); !errors.Is(err, store.ErrUnknownEndpoint) {
		t.Errorf("Enqueue to an unknown endpoint: %v", err)
	}
}
