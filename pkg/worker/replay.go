package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// DefaultReplayInterval is how often a worker looks for dead letters an
// operator asked to replay.
const DefaultReplayInterval = time.Second

// Replay outcomes, the result label of linepipe_worker_dead_letter_replays_total.
const (
	replayStored    = "stored"    // stored for the first time; the dead letter is gone
	replayDuplicate = "duplicate" // already stored meanwhile (a redelivery); the dead letter is gone
	replayFailed    = "failed"    // failed again; the dead letter keeps the new error
)

// RunReplays replays requested dead letters every interval until ctx
// ends. A dead letter is replayed by
//
//	UPDATE dead_letters SET replay_requested_at = now() WHERE id = …
//
// Its stored bytes and headers go through the same path as a stream
// message (decode, then persist), never back through the stream, so
// JetStream's duplicate window plays no part: the events table's unique
// webhook_event_id is the dedup, tombstones keep an unsent message
// scrubbed, and handlers run in the transaction that stores the event.
func (w *Worker) RunReplays(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultReplayInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			done, err := w.ReplayOne(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("dead-letter replay", zap.Error(err))
				}
				break
			}
			if !done {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// replayDeferral is how far a replay that failed transiently moves back,
// behind the requests waiting after it.
const replayDeferral = 5 * time.Second

// ReplayOne replays the longest-waiting requested dead letter, if any,
// and reports whether there was one. The claim, the store and the
// deletion of the row are one transaction holding the row's lock: a
// replica that dies mid-replay leaves the request for another. The
// store runs under a savepoint, so a failure rolls back only what the
// event did and is recorded on the row. Failures that are not the
// message's fault (Postgres unreachable, deadlock) leave the request in
// place, moved replayDeferral later so the requests behind it go first.
func (w *Worker) ReplayOne(ctx context.Context) (bool, error) {
	found := false
	var result string
	var dl store.ReplayRequest
	err := pgx.BeginFunc(ctx, w.db, func(tx pgx.Tx) error {
		var err error
		dl, err = store.ClaimReplay(ctx, tx)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		it, cause := decode(newReplayMsg(dl), w.now())
		if cause == nil && dl.Scrubbed && it.key.MessageID != "" {
			cause = store.RestoreTombstone(ctx, tx, it.key, dl.ID)
		}
		if cause == nil {
			cause = w.persistIn(ctx, tx, []*item{it})
		}
		if cause != nil {
			if w.transient(ctx, cause) {
				return cause
			}
			result = replayFailed
			return store.ReplayFailed(ctx, tx, dl.ID, cause.Error())
		}
		result = replayStored
		if it.ev != nil && it.id == 0 {
			result = replayDuplicate
		}
		return store.DeleteDeadLetter(ctx, tx, dl.ID)
	})
	if err != nil {
		if found && w.transient(ctx, err) {
			// Best effort: while Postgres is away this fails too, and
			// the request is simply taken again next round.
			_ = store.DeferReplay(ctx, w.db, dl.ID, replayDeferral)
		}
		return found, err
	}
	if found {
		w.metrics.ops.replays.WithLabelValues(result).Inc()
		w.log.Info("dead letter replayed", zap.Int64("dead_letter_id", dl.ID), zap.String("result", result),
			zap.String("webhook_event_id", dl.WebhookEventID), zap.Int("attempt", dl.Attempts+1))
	}
	return found, nil
}

// replayMsg presents a dead letter's stored bytes and headers as the
// stream message they were, so decode reads them exactly as it read the
// original. It is not on any stream: acknowledging it is an error.
type replayMsg struct {
	dl      store.ReplayRequest
	headers nats.Header
}

var errNotOnStream = errors.New("replayed dead letter is not a stream message")

func newReplayMsg(dl store.ReplayRequest) *replayMsg {
	m := &replayMsg{dl: dl, headers: nats.Header{}}
	// A header set an operator edited into something unreadable leaves
	// the message without headers: decode then fails it with a clear error.
	_ = json.Unmarshal(dl.Headers, &m.headers)
	return m
}

func (m *replayMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.dl.StreamSeq}, NumDelivered: m.dl.Deliveries}, nil
}
func (m *replayMsg) Data() []byte                     { return m.dl.Data }
func (m *replayMsg) Headers() nats.Header             { return m.headers }
func (m *replayMsg) Subject() string                  { return m.dl.Subject }
func (m *replayMsg) Reply() string                    { return "" }
func (m *replayMsg) Ack() error                       { return errNotOnStream }
func (m *replayMsg) DoubleAck(context.Context) error  { return errNotOnStream }
func (m *replayMsg) Nak() error                       { return errNotOnStream }
func (m *replayMsg) NakWithDelay(time.Duration) error { return errNotOnStream }
func (m *replayMsg) InProgress() error                { return errNotOnStream }
func (m *replayMsg) Term() error                      { return errNotOnStream }
func (m *replayMsg) TermWithReason(string) error      { return errNotOnStream }
func (m *replayMsg) String() string                   { return fmt.Sprintf("dead letter %d", m.dl.ID) }
