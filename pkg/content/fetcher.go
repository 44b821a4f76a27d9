package content

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/store"
)

// Rate buckets in outbox_rate: LINE limits each endpoint separately.
const (
	bucketContent     = "get:content"
	bucketTranscoding = "get:content/transcoding"
)

// Fetcher downloads message content into the bucket. Run it on any number
// of replicas: rows are claimed with SKIP LOCKED under a fenced lease.
type Fetcher struct {
	cfg    Config
	db     *pgxpool.Pool
	js     jetstream.JetStream
	tokens Tokens
	client *http.Client
	m      *metrics

	objs  atomic.Pointer[Objects]
	slots chan struct{}
	wg    sync.WaitGroup
}

// New builds a Fetcher; cfg's zero values take the defaults.
func New(cfg Config, db *pgxpool.Pool, js jetstream.JetStream, tokens Tokens) (*Fetcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("content fetcher config: %w", err)
	}
	return &Fetcher{cfg: cfg, db: db, js: js, tokens: tokens, client: newHTTPClient(cfg.HTTPTimeout),
		m: newMetrics(cfg.Registerer), slots: make(chan struct{}, cfg.Concurrency)}, nil
}

// Objects is the bucket, once Run has ensured it (nil before).
func (f *Fetcher) Objects() *Objects { return f.objs.Load() }

// Run ensures the bucket (retrying while NATS is away), then claims and
// fetches until ctx ends. Fetches in flight are then cut off and their
// rows handed back at once: a retried fetch replaces the object whole,
// so nothing is lost by stopping mid-download.
func (f *Fetcher) Run(ctx context.Context) error {
	for f.objs.Load() == nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		objs, err := EnsureObjects(actx, f.js, f.cfg.Bucket, f.cfg.Replicas)
		cancel()
		if err == nil {
			f.objs.Store(objs)
			break
		}
		f.cfg.Log.Warn("content bucket not ready; retrying", zap.String("bucket", f.cfg.Bucket), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	f.cfg.Log.Info("content fetcher started", zap.String("bucket", f.cfg.Bucket), zap.String("api", config.RedactURL(f.cfg.BaseURL)))
	defer f.wg.Wait()
	f.wg.Add(1)
	go f.sweep(ctx)
	if f.cfg.RetentionInterval > 0 {
		f.wg.Add(1)
		go f.retain(ctx)
	}
	wait := f.cfg.PollInterval
	for {
		n := f.reserve(ctx)
		if n == 0 {
			return nil
		}
		claimedAt := time.Now()
		// The claim runs to its end even if ctx ends meanwhile: cancelled
		// while its commit is on the wire, it could leave rows claimed
		// that no fetch hands back, until CONTENT_LEASE ends. Run to its
		// end, the rows it took are handed back at once (work).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		claims, err := store.ClaimContent(cctx, f.db, n, f.cfg.Owner, f.cfg.Lease)
		cancel()
		for i := len(claims); i < n; i++ {
			<-f.slots
		}
		if err != nil && ctx.Err() == nil {
			f.cfg.Log.Warn("claiming message content", zap.Error(err))
			wait = min(2*wait, 5*time.Second)
		} else {
			wait = f.cfg.PollInterval
		}
		for _, c := range claims {
			f.wg.Add(1)
			go f.work(ctx, c, claimedAt)
		}
		if len(claims) == n {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// reserve takes at least one free slot, and as many more as are free.
func (f *Fetcher) reserve(ctx context.Context) int {
	select {
	case <-ctx.Done():
		return 0
	case f.slots <- struct{}{}:
	}
	if ctx.Err() != nil { // both were ready: the stop wins
		<-f.slots
		return 0
	}
	n := 1
	for n < cap(f.slots) {
		select {
		case f.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// work handles one claimed row, taken at claimedAt, and records the
// result. A fetch runs under a heartbeat that extends its lease for as
// long as the download keeps flowing (see leaseKeeper); deleting an
// unsent object is short and runs within the claim's first lease.
func (f *Fetcher) work(runCtx context.Context, c store.ContentClaim, claimedAt time.Time) {
	defer func() { <-f.slots; f.wg.Done() }()
	objs := f.objs.Load()
	name := ObjectName(c.ChannelID, c.MessageID)
	if c.Status == store.ContentUnsent {
		// Short, and done even when the fetcher is stopping (a claim
		// that straddled the stop): handed back instead, the row would
		// stay claimed, and the unsent object in the bucket, until
		// CONTENT_LEASE ended.
		ctx, cancel := context.WithDeadline(context.WithoutCancel(runCtx), claimedAt.Add(f.cfg.Lease-f.safety()))
		defer cancel()
		err := store.DeleteUnsentContent(ctx, f.db, c.MessageKey, c.ClaimID, func(ctx context.Context) error {
			return objs.Delete(ctx, name)
		})
		f.m.outcomes.WithLabelValues("deleted").Inc()
		if err != nil {
			f.cfg.Log.Warn("deleting content of an unsent message", zap.String("channel_id", c.ChannelID),
				zap.String("message_id", c.MessageID), zap.Error(err))
		}
		return
	}
	ctx, keeper := f.keepLease(runCtx, c, claimedAt)
	out := f.fetch(ctx, c, objs, &keeper.progress)
	keeper.stop()
	if runCtx.Err() != nil && out.Status == store.ContentPending {
		// Shut down mid-fetch: hand the row back for the next fetcher,
		// at once and without counting the attempt. An outcome that
		// ends the row (stored, missing, failed) stands.
		out = store.ContentOutcome{Status: store.ContentPending, Transcoding: c.Transcoding,
			Error: "interrupted by shutdown", Uncounted: true}
	}
	f.complete(c, out, objs)
}

// complete records out. For stored content whose message was unsent
// meanwhile, the object just written is deleted under the row's lock.
func (f *Fetcher) complete(c store.ContentClaim, out store.ContentOutcome, objs *Objects) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := ObjectName(c.ChannelID, c.MessageID)
	err := store.CompleteContent(ctx, f.db, c.MessageKey, c.ClaimID, out, func(ctx context.Context) error {
		return objs.Delete(ctx, name)
	})
	label := out.Status
	switch {
	case errors.Is(err, store.ErrContentUnsent):
		label = "unsent"
		f.cfg.Log.Info("message unsent during its fetch; content deleted", zap.String("channel_id", c.ChannelID),
			zap.String("message_id", c.MessageID))
	case errors.Is(err, store.ErrContentClaimLost):
		label = "lease_lost"
		f.cfg.Log.Warn("content lease lost; the new owner's result stands", zap.String("channel_id", c.ChannelID),
			zap.String("message_id", c.MessageID))
	case err != nil:
		label = "error"
		f.cfg.Log.Error("recording content fetch", zap.String("channel_id", c.ChannelID),
			zap.String("message_id", c.MessageID), zap.Error(err))
	}
	f.m.outcomes.WithLabelValues(label).Inc()
}

// Ready reports whether the bucket is ensured and the database answers.
func (f *Fetcher) Ready(ctx context.Context) error {
	if f.objs.Load() == nil {
		return errors.New("content bucket not ready")
	}
	return f.db.Ping(ctx)
}

// sweep purges, every lease, the chunks of puts whose fetcher died
// mid-write. A chunk is taken only when no object points at it and
// nothing was written to it for two leases: a live put is never that
// idle, since the heartbeat cuts a download that fills no chunk within a
// lease (leaseKeeper).
func (f *Fetcher) sweep(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.Lease)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := f.objs.Load().PurgeOrphans(sctx, 2*f.cfg.Lease)
		cancel()
		if err != nil {
			f.cfg.Log.Warn("purging orphaned content chunks", zap.Error(err))
		} else if n > 0 {
			f.cfg.Log.Info("purged orphaned content chunks", zap.Int("objects", n))
		}
	}
}
