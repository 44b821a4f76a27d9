package content

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// maxLeaseSafety is how long before its lease ends a fetch gives up, at
// most, so its last write lands before another fetcher (or an unsend's
// deleter) may act on the row.
const maxLeaseSafety = 10 * time.Second

// errLeaseEnded cuts a fetch whose lease could not be extended in time.
var errLeaseEnded = errors.New("content lease ended before the fetch did")

// safety is the margin a fetch keeps before its lease ends: ten seconds,
// or a third of a short lease, so that after each extension a fetch has
// time for two more heartbeats before its deadline.
func (f *Fetcher) safety() time.Duration { return min(maxLeaseSafety, f.cfg.Lease/3) }

// leaseKeeper is the heartbeat of one fetch. A download may take longer
// than the lease (a large video over a slow link); without a heartbeat
// another replica would take the row over when the lease ends and fetch
// it again beside the first. Every third of the lease the keeper extends
// the lease in the database, fenced by the claim id, and moves the
// fetch's own deadline to the new end less the safety margin. So:
//   - a fetch that keeps its claim runs as long as it keeps making
//     progress (a pause is cut by CONTENT_HTTP_TIMEOUT, not by the lease);
//   - a fetch whose heartbeats fail (Postgres away) is cut before the
//     last lease it obtained ends, so it never writes on a row another
//     fetcher may own;
//   - a fetch that lost its claim (taken over, or the message unsent)
//     cannot extend it and is cut at once; complete() then reports the
//     loss, and deletes what it wrote if the message was unsent.
//
// Progress means a whole chunk: a download that has not filled one
// ChunkSize chunk within a lease is not extended and ends with the
// lease. That bounds the age of a live put's newest chunk by the lease,
// which the orphan sweep relies on (it takes chunks idle for two).
type leaseKeeper struct {
	f        *Fetcher
	c        store.ContentClaim
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	stopc    chan struct{}
	done     chan struct{}
	progress atomic.Int64 // body bytes read, from the download
}

// keepLease starts the heartbeat of claim c, taken at claimedAt (read
// before the claim was sent, so the local deadline is never later than
// the database's lease_until). The returned context ends when the lease
// is lost or could not be kept; stop ends the heartbeat.
func (f *Fetcher) keepLease(parent context.Context, c store.ContentClaim, claimedAt time.Time) (context.Context, *leaseKeeper) {
	ctx, cancel := context.WithCancelCause(parent)
	k := &leaseKeeper{f: f, c: c, cancel: cancel, stopc: make(chan struct{}), done: make(chan struct{})}
	k.timer = time.AfterFunc(time.Until(claimedAt.Add(f.cfg.Lease-f.safety())), func() { cancel(errLeaseEnded) })
	go k.run(ctx, claimedAt)
	return ctx, k
}

func (k *leaseKeeper) run(ctx context.Context, claimedAt time.Time) {
	defer close(k.done)
	f := k.f
	t := time.NewTicker(f.cfg.Lease / 3)
	defer t.Stop()
	chunkAt, chunks := claimedAt, int64(0) // when the last whole chunk was seen
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.stopc:
			return
		}
		start := time.Now()
		if n := k.progress.Load() / ChunkSize; n > chunks {
			chunkAt, chunks = start, n
		}
		if start.Sub(chunkAt) >= f.cfg.Lease {
			f.m.heartbeats.WithLabelValues("too_slow").Inc()
			k.cancel(fmt.Errorf("%w: no %d KiB chunk arrived within %s", errLeaseEnded, ChunkSize>>10, f.cfg.Lease))
			return
		}
		hctx, hcancel := context.WithTimeout(ctx, f.cfg.Lease/3)
		ok, err := store.ExtendContentLease(hctx, f.db, k.c.MessageKey, k.c.ClaimID, f.cfg.Lease)
		hcancel()
		switch {
		case err != nil:
			// The deadline stays where the last extension put it; the
			// next beat tries again.
			if ctx.Err() == nil {
				f.cfg.Log.Warn("extending a content lease", zap.String("channel_id", k.c.ChannelID),
					zap.String("message_id", k.c.MessageID), zap.Error(err))
			}
		case !ok:
			f.m.heartbeats.WithLabelValues("lost").Inc()
			k.cancel(store.ErrContentClaimLost)
			return
		default:
			f.m.heartbeats.WithLabelValues("extended").Inc()
			k.timer.Reset(time.Until(start.Add(f.cfg.Lease - f.safety())))
		}
	}
}

// stop ends the heartbeat, the deadline and the fetch's context, once
// the fetch has returned (its result is recorded under a context of its
// own).
func (k *leaseKeeper) stop() {
	close(k.stopc)
	<-k.done
	k.timer.Stop()
	k.cancel(nil)
}
