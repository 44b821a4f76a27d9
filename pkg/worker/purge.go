package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The stream keeps its messages (limits retention) and the worker removes
// the stored ones in bulk. With work-queue retention every acknowledgement
// removes its message on its own, and with sync_interval: always each
// removal is an fsync that NATS makes one at a time per consumer: about
// 1,500–2,000 acknowledgements a second on an ordinary disk, a ceiling for
// the whole worker tier, and fsyncs that queue in front of ingest's and
// Postgres' own. A purge up to the consumer's acknowledgement floor
// removes everything stored below it in one request.
//
// The floor only passes a message once every earlier one is settled. A
// message that waits for a retry (a minute at most, or a Postgres outage)
// would hold back everything after it, so a message this process settled
// that is still above the floor after PurgeGrace is deleted on its own:
// what was stored leaves the stream within seconds, whatever waits
// before it.

// DefaultPurgeInterval is how often a worker that settled messages
// purges them from the stream.
const DefaultPurgeInterval = 100 * time.Millisecond

// PurgeGrace is how long a settled message may wait for the floor before
// it is deleted on its own. The floor normally passes it within a batch's
// time; this only matters while an earlier message waits for a retry.
const PurgeGrace = 2 * time.Second

// purgeStream is what the purger needs of the stream.
type purgeStream interface {
	Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error
	DeleteMsg(ctx context.Context, seq uint64) error
}

// purgeConsumer is what the purger needs of the consumer.
type purgeConsumer interface {
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

type settledSeq struct {
	seq uint64
	at  time.Time
}

// purger removes the messages this process settled (acknowledged or
// terminated after their commit) from a limits-retention stream.
type purger struct {
	stream   purgeStream
	cons     purgeConsumer
	interval time.Duration
	now      func() time.Time
	log      *zap.Logger
	failures prometheus.Counter // rounds that failed, for the operator's alert

	mu      sync.Mutex
	settled []settledSeq // in settling order; the floor removes a prefix of most
	floor   uint64       // the highest floor purged up to
	wake    chan struct{}
	// inARow counts rounds in a row that NATS refused or did not
	// answer: rounds back off and warn once per purgeWarnEvery.
	inARow int
}

// purgeWarnEvery spaces the warnings of a purge that keeps failing (a
// NATS user without the purge permission, say) so they do not flood
// the log.
const purgeWarnEvery = 50

func newPurger(s purgeStream, c purgeConsumer, interval time.Duration, now func() time.Time, log *zap.Logger,
	failures prometheus.Counter) *purger {
	return &purger{stream: s, cons: c, interval: interval, now: now, log: log, failures: failures,
		wake: make(chan struct{}, 1)}
}

// settledMsg records that the message at seq was settled after its commit.
func (p *purger) settledMsg(seq uint64) {
	p.mu.Lock()
	p.settled = append(p.settled, settledSeq{seq: seq, at: p.now()})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run purges every interval while there is something settled, and once
// more when ctx ends, so a stopping worker leaves nothing it stored.
func (p *purger) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			p.final(fctx)
			cancel()
			return
		case <-p.wake:
		}
		for p.pending() > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(p.delay()):
			}
			if ctx.Err() != nil {
				break
			}
			p.round(ctx)
		}
	}
}

// delay is the wait before the next round: the interval, doubled for
// each failed round in a row up to five seconds.
func (p *purger) delay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return min(p.interval<<min(p.inARow, 10), 5*time.Second)
}

// failed records a failed round and warns on the first of a run and
// every purgeWarnEvery after it.
func (p *purger) failed(msg string, err error, fields ...zap.Field) {
	p.failures.Inc()
	p.mu.Lock()
	p.inARow++
	n := p.inARow
	p.mu.Unlock()
	if n%purgeWarnEvery == 1 {
		p.log.Warn(msg, append(fields, zap.Int("failed_rounds", n), zap.Error(err))...)
	}
}

func (p *purger) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.settled)
}

// round reads the floor, purges below it, and deletes on its own every
// settled message that has waited for the floor longer than PurgeGrace.
func (p *purger) round(ctx context.Context) { p.sweep(ctx, p.now().Add(-PurgeGrace)) }

// final is the stopping process's last round: it deletes on its own every
// settled message the floor has not passed, however recently settled,
// since no later round of this process would. Acknowledgements are sent
// without waiting for NATS to apply them, so the floor read right after
// the last ones may not have passed even messages nothing precedes.
func (p *purger) final(ctx context.Context) { p.sweep(ctx, time.Time{}) }

// sweep is a round that deletes on its own every settled message above
// the floor settled before deadline; the zero deadline means all of them.
func (p *purger) sweep(ctx context.Context, deadline time.Time) {
	if p.pending() == 0 {
		return
	}
	ci, err := p.cons.Info(ctx)
	if err != nil {
		p.failed("reading the consumer's ack floor to purge stored messages", err)
		return
	}
	floor := ci.AckFloor.Stream
	p.mu.Lock()
	purged := p.floor
	p.mu.Unlock()
	if floor > purged {
		if err := p.stream.Purge(ctx, jetstream.WithPurgeSequence(floor+1)); err != nil {
			p.failed("purging stored messages from the stream", err, zap.Uint64("below", floor+1))
			return
		}
	}
	p.mu.Lock()
	p.floor = max(p.floor, floor)
	var late []uint64
	keep := p.settled[:0]
	for _, s := range p.settled {
		switch {
		case s.seq <= floor:
		case deadline.IsZero() || s.at.Before(deadline):
			late = append(late, s.seq)
		default:
			keep = append(keep, s)
		}
	}
	p.settled = keep
	p.mu.Unlock()
	for i, seq := range late {
		err := p.stream.DeleteMsg(ctx, seq)
		if err == nil || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			continue // deleted, or already gone
		}
		// NATS did not answer: try these again next round.
		p.failed("deleting a stored message from the stream", err, zap.Uint64("seq", seq))
		p.mu.Lock()
		for _, s := range late[i:] {
			p.settled = append(p.settled, settledSeq{seq: s, at: deadline})
		}
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.inARow = 0
	p.mu.Unlock()
}

// trackedMsg records its settling with the purger.
type trackedMsg struct {
	jetstream.Msg
	p *purger
}

func (m trackedMsg) record(err error) error {
	if err == nil {
		if md, mdErr := m.Msg.Metadata(); mdErr == nil {
			m.p.settledMsg(md.Sequence.Stream)
		}
	}
	return err
}

func (m trackedMsg) Ack() error  { return m.record(m.Msg.Ack()) }
func (m trackedMsg) Term() error { return m.record(m.Msg.Term()) }
func (m trackedMsg) TermWithReason(r string) error {
	return m.record(m.Msg.TermWithReason(r))
}
func (m trackedMsg) DoubleAck(ctx context.Context) error { return m.record(m.Msg.DoubleAck(ctx)) }

// purgeUse shares one purger among a process's consuming loops: the
// first loop starts it, the last one to stop ends it with a final round,
// so the messages of the batches finished during shutdown go too.
type purgeUse struct {
	mu      sync.Mutex
	users   int
	stop    context.CancelFunc
	done    chan struct{}
	warned  bool
	current atomic.Pointer[purger]
}

// usePurger joins (or starts) the process's purger for s and cons and
// returns the loop's release. A stream made with work-queue retention
// removes each message as it is acknowledged, and needs none.
func (w *Worker) usePurger(s jetstream.Stream, cons jetstream.Consumer) (release func()) {
	u := &w.purge
	u.mu.Lock()
	defer u.mu.Unlock()
	if s.CachedInfo().Config.Retention != jetstream.LimitsPolicy {
		if !u.warned {
			u.warned = true
			w.log.Warn("the stream has work-queue retention: each acknowledgement is a removal NATS fsyncs on its own, "+
				"which caps the worker tier at about 2,000 messages a second; recreate the stream to move it to "+
				"limits retention (README: Migrations and upgrades)", zap.String("stream", w.stream.Stream))
		}
		return func() {}
	}
	if u.users == 0 {
		ctx, stop := context.WithCancel(context.Background())
		p := newPurger(s, cons, w.cfg.PurgeInterval, w.now, w.log, w.metrics.ops.purgeFailures)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.run(ctx)
		}()
		u.stop, u.done = stop, done
		u.current.Store(p)
	}
	u.users++
	return func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.users--
		if u.users == 0 {
			u.stop()
			<-u.done
			u.current.Store(nil)
		}
	}
}
