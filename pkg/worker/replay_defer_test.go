package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
)

// stuckBot fails every message event until fixed; fixed, it still loses
// a deadlock on every event whose text says "stuck", a failure that is no
// fault of the event's.
type stuckBot struct{ fixed atomic.Bool }

func (b *stuckBot) Handle(_ context.Context, _ pgx.Tx, s Stored) error {
	switch {
	case s.Event.Type != events.TypeMessage:
		return nil
	case !b.fixed.Load():
		return errors.New("bot bug")
	case strings.Contains(s.Event.Message.Text, "stuck"):
		return fmt.Errorf("locking the customer: %w", &pgconn.PgError{Code: "40P01"})
	}
	return nil
}

// TestTransientReplayFailureLetsOthersGoFirst: a requested replay that
// keeps failing transiently stays requested, but moves back, so the
// requests behind it are replayed; taken first on every round, it held
// back every other replay.
func TestTransientReplayFailureLetsOthersGoFirst(t *testing.T) {
	t.Parallel()
	r := &replayRig{bundle: setup(t)}
	bot := &stuckBot{}
	r.metrics = NewMetrics(ops.NewRegistry())
	r.w = New(Config{AckWait: time.Second, IdleWait: 200 * time.Millisecond, MaxAttempts: 1},
		r.sc, r.js, r.db.Pool, r.metrics, zaptest.NewLogger(t), bot)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = r.w.Run(ctx); done <- struct{}{} }()
	go func() { r.w.RunReplays(ctx, 20*time.Millisecond); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	const channel = "1650000111"
	stuck := fixture.Text(fixture.User(fixture.UserID(111)), time.Now(), "stuck one")
	other := fixture.Text(fixture.User(fixture.UserID(112)), time.Now(), "other one")
	stuckID, otherID := events.DedupID(channel, fixture.ID(stuck), nil), events.DedupID(channel, fixture.ID(other), nil)
	r.publish(t, channel, stuck)
	r.publish(t, channel, other)
	r.waitFor(t, `SELECT count(*) = 2 FROM dead_letters`)

	bot.fixed.Store(true)
	if _, err := r.db.Pool.Exec(ctx, `UPDATE dead_letters SET replay_requested_at = now() - interval '1 minute'
		WHERE webhook_event_id = $1`, stuckID); err != nil {
		t.Fatal(err)
	}
	r.requestReplay(t, otherID)
	r.waitFor(t, `SELECT count(*) = 1 FROM events WHERE webhook_event_id = $1`, otherID)
	r.waitFor(t, `SELECT count(*) = 1 FROM dead_letters WHERE webhook_event_id = $1
		AND replay_requested_at > now() AND replay_attempts = 0 AND error LIKE '%bot bug%'`, stuckID)
}
