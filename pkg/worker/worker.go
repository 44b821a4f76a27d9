package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Worker consumes the stream into Postgres.
type Worker struct {
	cfg      Config
	stream   stream.Config
	js       jetstream.JetStream
	db       *pgxpool.Pool
	handlers []Handler
	// enqueueOnly: every handler is EnqueueOnly (or there are none), so
	// persist may pipeline BEGIN and COMMIT.
	enqueueOnly bool
	metrics     *Metrics
	log         *zap.Logger
	now         func() time.Time
	// perMsg is the recent events per stream message, in hundredths
	// (an exponentially weighted average): bundles carry many.
	perMsg atomic.Int64
	purge  purgeUse
}

// New builds a worker. Handlers run, in order, for every newly stored event.
func New(cfg Config, sc stream.Config, js jetstream.JetStream, db *pgxpool.Pool, m *Metrics, log *zap.Logger, handlers ...Handler) *Worker {
	w := &Worker{cfg: cfg.WithDefaults(), stream: sc, js: js, db: db, handlers: handlers,
		enqueueOnly: enqueueOnly(handlers), metrics: m, log: log, now: time.Now}
	// Start as if every message were a bundle of 50, so the first fetch
	// of a full stream of bundles stays small; the average finds the
	// real size within a few fetches.
	w.perMsg.Store(50 * 100)
	return w
}

// neverMaxDeliver is the consumer's delivery cap: more deliveries than a
// message retried once a minute gets in a thousand years.
const neverMaxDeliver = 1 << 30

// ConsumerConfig is the durable pull consumer every replica shares.
func (w *Worker) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       w.cfg.Consumer,
		Description:   "linepipe worker: stores events in Postgres",
		FilterSubject: w.stream.AllSubjects(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		// The worker itself moves a message that fails through its own
		// fault to dead_letters after MaxAttempts; failures that are not
		// the message's fault (Postgres down) are retried with delays
		// capped at a minute, however long the outage. The server-side
		// cap is out of reach (a billion deliveries): JetStream moves the
		// ack floor past a message that reaches its cap, and the worker
		// purges everything below the floor, so a capped message would be
		// lost unstored. (Not -1: NATS 2.9 refuses it with BackOff.)
		MaxDeliver: neverMaxDeliver,
		// Redeliveries after a missed ack (a replica died mid-batch) back
		// off, so a message that crashes workers cannot crash-loop them.
		// JetStream picks the step by delivery count, which the retries
		// of a Postgres outage raise too: a third step (40 s) made an
		// event whose worker died just after an outage reach Postgres
		// after its reply token had expired. Two steps bound it at 20 s.
		BackOff:       []time.Duration{w.cfg.AckWait, 2 * w.cfg.AckWait},
		MaxAckPending: 20 * w.cfg.BatchSize,
	}
}

// Run consumes until ctx ends. The batch in hand when ctx ends is still
// committed and acknowledged. A consumer (or stream) deleted under it is
// made again, so an operator who recreates the stream need not restart
// the workers.
func (w *Worker) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		s, cons := w.ensureConsumer(ctx)
		if cons == nil {
			return nil
		}
		w.consume(ctx, s, cons)
	}
	return nil
}

// ensureConsumer makes (or updates) the stream and the durable consumer,
// retrying until ctx ends (then it returns nil).
func (w *Worker) ensureConsumer(ctx context.Context) (jetstream.Stream, jetstream.Consumer) {
	for {
		s, err := stream.Ensure(ctx, w.js, w.stream)
		if err == nil {
			var cons jetstream.Consumer
			if cons, err = s.CreateOrUpdateConsumer(ctx, w.ConsumerConfig()); err == nil {
				return s, cons
			}
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		w.log.Warn("consumer not ready; retrying", zap.Error(err))
		sleep(ctx, time.Second)
	}
}

// consume stores batches from cons until ctx ends or cons is gone.
//
// Under a backlog, fetching and decoding the next batch overlaps with
// storing the one before it: a loop that did them in turn left its
// Postgres connection idle for a third of every batch (the bench's
// worker drain), waiting on NATS and on decoding. A fetch that came back
// full is the sign of a backlog; after any other, the loop fetches again
// only once its batch is stored, so a steady stream's messages go to
// whichever loop is free rather than wait behind a busy loop's commit
// (fetching ahead always made webhook -> events row p50 at 1,000
// webhooks/s 41-46 ms instead of 24-26). At most two batches are in hand
// per loop, one being stored and one decoded and waiting, and both are
// finished when ctx ends.
func (w *Worker) consume(ctx context.Context, s jetstream.Stream, cons jetstream.Consumer) {
	release := w.usePurger(s, cons)
	defer release()
	w.log.Info("worker consuming", zap.String("stream", w.stream.Stream), zap.String("consumer", w.cfg.Consumer))
	ready := make(chan decoded)
	go w.fetchLoop(ctx, cons, ready)
	for d := range ready {
		// A batch in hand is finished even during shutdown, within a
		// bound: its messages stay ours meanwhile (keepInProgress), and a
		// batch past it is retried later as a transient failure.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.finishBound())
		w.storeAll(bctx, d)
		cancel()
	}
}

// finishBound is how long a batch in hand may still take once fetched.
func (w *Worker) finishBound() time.Duration { return FinishBound(w.cfg.AckWait) }

// FinishBound is how long a batch in hand may still take once fetched,
// shutdown included, with WORKER_ACK_WAIT ackWait: docker-compose.yml's
// stop grace must outlast two of them per loop.
func FinishBound(ackWait time.Duration) time.Duration { return max(3*ackWait, 30*time.Second) }

// fetchLoop fetches and decodes batches for consume until ctx ends or
// cons is gone, then closes ready. A batch fetched is always handed on,
// even once ctx has ended. Only after a full fetch does it fetch again
// before the batch is stored.
func (w *Worker) fetchLoop(ctx context.Context, cons jetstream.Consumer, ready chan<- decoded) {
	defer close(ready)
	for ctx.Err() == nil {
		size := w.fetchSize()
		msgs, err := w.fetch(cons, size)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if consumerGone(err) {
				w.log.Warn("the consumer or its stream is gone; making it again", zap.Error(err))
				sleep(ctx, time.Second)
				return
			}
			w.log.Warn("fetching from stream", zap.Error(err))
			sleep(ctx, time.Second)
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.finishBound())
		d := w.decodeAll(bctx, msgs)
		cancel()
		if len(d.items) == 0 {
			continue
		}
		ready <- d
		if len(msgs) < size {
			<-d.stored
		}
	}
}

// consumerGone reports a fetch that failed because the consumer or its
// stream no longer exists (or JetStream has none to answer for them).
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrNoResponders)
}

// fetch takes whatever is waiting, up to size (fetchSize); on an empty
// stream it waits for one message and then tops up. Busy streams get full
// batches, quiet ones low latency.
func (w *Worker) fetch(cons jetstream.Consumer, size int) ([]jetstream.Msg, error) {
	b, err := cons.FetchNoWait(size)
	if err != nil {
		return nil, err
	}
	if msgs, err := w.collect(b); len(msgs) > 0 || err != nil {
		return msgs, err
	}
	b, err = cons.Fetch(1, jetstream.FetchMaxWait(w.cfg.IdleWait))
	if err != nil {
		return nil, err
	}
	msgs, err := w.collect(b)
	if len(msgs) == 0 || size == 1 {
		return msgs, err
	}
	if more, err := cons.FetchNoWait(size - 1); err == nil {
		extra, _ := w.collect(more)
		msgs = append(msgs, extra...)
	}
	return msgs, nil
}

// fetchSize is how many messages one fetch takes: BatchSize events'
// worth at the recent events per message, so a fetch of bundles holds
// about one transaction of events in memory, not BatchSize bundles.
func (w *Worker) fetchSize() int {
	per := max(w.perMsg.Load(), 100)
	return max(1, min(w.cfg.BatchSize, int(int64(w.cfg.BatchSize)*100/per)))
}

// observeFetch folds one fetch's events per message into perMsg.
func (w *Worker) observeFetch(msgs, events int) {
	if msgs == 0 {
		return
	}
	old := w.perMsg.Load()
	w.perMsg.Store(old + (int64(events*100/msgs)-old)/4)
}

// collect takes a fetch's messages, each tracked by the purger when the
// stream has one. An empty fetch because the consumer or its stream is
// gone returns that error; any other fetch error only means nothing came.
func (w *Worker) collect(b jetstream.MessageBatch) ([]jetstream.Msg, error) {
	p := w.purge.current.Load()
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		if p != nil {
			m = trackedMsg{Msg: m, p: p}
		}
		msgs = append(msgs, m)
	}
	if err := b.Error(); len(msgs) == 0 && consumerGone(err) {
		return nil, err
	}
	return msgs, nil
}

// decoded is a fetch's messages read into items, ready to store.
type decoded struct {
	items []*item
	start time.Time // when they were fetched
	// stopProgress ends keepInProgress once they are stored.
	stopProgress func()
	// stored is closed when storeAll is done with them.
	stored chan struct{}
}

// decodeAll reads what was fetched. A bundle's records become items of
// their own (expand); a message that cannot be read goes to dead_letters
// at once. The items are kept alive at JetStream from here until
// storeAll is done with them.
func (w *Worker) decodeAll(ctx context.Context, msgs []jetstream.Msg) decoded {
	d := decoded{start: w.now(), stored: make(chan struct{})}
	d.items = make([]*item, 0, len(msgs))
	for _, m := range msgs {
		x, err := expand(m, w.stream)
		if errors.Is(err, events.ErrNewerBundle) {
			w.keepForNewer(m)
			continue
		}
		if err != nil {
			it := &item{msg: m, meta: events.MetaFromHeaders(m.Headers(), d.start)}
			w.deadLetter(ctx, it, fmt.Errorf("%w: %v", errPoison, err), 0)
			continue
		}
		if x.rest != nil {
			it := &item{msg: x.rest, meta: events.MetaFromHeaders(x.rest.Headers(), d.start)}
			w.deadLetter(ctx, it, fmt.Errorf("%w: %v (this is the rest; %s)", errPoison, x.damaged, restFate(x)), 0)
		}
		for _, pm := range x.parts {
			it, err := decode(pm, d.start)
			if err == nil && hold(x, it) {
				err = fmt.Errorf("%w: the unreadable rest of its bundle, a dead letter on the bundle subject with this stream_seq, may hold an unsend of this message; replay this row once any unsend found there is applied", errHeld)
			}
			if err != nil {
				w.deadLetter(ctx, it, err, 0)
				continue
			}
			d.items = append(d.items, it)
		}
	}
	w.observeFetch(len(msgs), len(d.items))
	if len(d.items) > 0 {
		d.stopProgress = w.keepInProgress(d.items)
	}
	return d
}

// storeAll stores decoded items in transactions of at most BatchSize and
// acknowledges each after its commit.
func (w *Worker) storeAll(ctx context.Context, d decoded) {
	defer close(d.stored)
	defer d.stopProgress()
	items := d.items
	for len(items) > 0 {
		n := min(len(items), w.cfg.BatchSize)
		w.store(ctx, items[:n], d.start)
		items = items[n:]
	}
}

// store commits one transaction's worth of items and acknowledges them.
// If the batch fails, each item is retried alone, so one bad message
// cannot hold back the others.
func (w *Worker) store(ctx context.Context, items []*item, start time.Time) {
	err := w.persist(ctx, items)
	if err == nil {
		w.ack(items)
		w.metrics.observeBatch(items, w.now().Sub(start))
		w.log.Debug("batch stored", zap.Int("messages", len(items)), zap.Duration("took", w.now().Sub(start)))
		return
	}
	if w.transient(ctx, err) {
		// Postgres is down or recovering, or the batch lost a deadlock:
		// none of it is the messages' fault. Retry the batch whole after
		// a back-off; splitting it would only open a connection per
		// message against a database that refuses them.
		delay := redeliveryDelay(maxDeliveries(items))
		w.log.Warn("batch failed transiently; retrying it later", zap.Int("messages", len(items)),
			zap.Duration("delay", delay), zap.Error(err))
		for _, it := range items {
			_ = it.msg.NakWithDelay(delay)
		}
		w.metrics.retries.Add(float64(len(items)))
		return
	}
	w.log.Warn("batch failed; storing messages one by one", zap.Int("messages", len(items)), zap.Error(err))
	for _, it := range items {
		it.id = 0
		err := w.persist(ctx, []*item{it})
		if err == nil {
			w.ack([]*item{it})
			w.metrics.observeBatch([]*item{it}, w.now().Sub(start))
			continue
		}
		w.retryOrDeadLetter(ctx, it, err)
	}
}

// keepInProgress tells JetStream, every half AckWait, that a batch still
// being stored is alive, so a slow commit is not redelivered to another
// replica while a dead replica's messages still come back after AckWait.
func (w *Worker) keepInProgress(items []*item) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(w.cfg.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, it := range items {
					_ = it.msg.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// maxDeliveries is the highest delivery count in a batch.
func maxDeliveries(items []*item) uint64 {
	var n uint64 = 1
	for _, it := range items {
		if md, err := it.msg.Metadata(); err == nil && md.NumDelivered > n {
			n = md.NumDelivered
		}
	}
	return n
}

func (w *Worker) ack(items []*item) {
	for _, it := range items {
		if err := it.msg.Ack(); err != nil {
			// The rows are committed; a lost ack means a redelivery that
			// the unique keys turn into a no-op.
			w.log.Warn("ack failed; message will be redelivered and deduplicated", zap.Error(err))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
