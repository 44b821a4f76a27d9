package content

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// Content retention. The retention table's 'message_content' row says how
// long content is kept; past it the object leaves the bucket and the row
// leaves message_content (migrations/0008).
//
// The fetcher runs it, not the worker's janitor, because deleting content
// means deleting objects in the bucket, and of the services only the
// sender's NATS user may touch the bucket (deploy/nats/nats.conf). Giving
// the worker's user the bucket too would widen the identity that reads
// every event in flight to the stored media as well; keeping the task
// with the identity that already holds the bucket costs two Postgres
// grants instead (SELECT on retention, DELETE on message_content).

// RetentionBatch is the most rows one step of a round handles in one
// transaction. A purge holds its rows' locks while it deletes their
// objects, one NATS round trip or two each, so it is kept small; the rows
// are expired ones nobody else waits for.
const RetentionBatch = 100

// retentionLockSalt is mixed with the schema name into the advisory lock
// that lets one fetcher replica at a time run a round.
const retentionLockSalt = "linepipe.content-retention:"

// retain runs a retention round every RetentionInterval until ctx ends.
func (f *Fetcher) retain(ctx context.Context) {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.RetentionInterval)
	defer t.Stop()
	for {
		if _, _, err := f.RetainOnce(ctx); err != nil && ctx.Err() == nil {
			f.cfg.Log.Warn("content retention round failed; retrying next interval", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RetainOnce runs one content retention round unless another replica is
// running one (ran is then false): it marks every row past its keep
// 'expired', then deletes each expired row's object and the row, until
// none is left. Crash-safe at every point: a row is 'expired' (never
// 'stored') before its object may go, and deleted only after the object
// is; a round cut short leaves 'expired' rows the next round finishes.
// It returns the rows deleted.
func (f *Fetcher) RetainOnce(ctx context.Context) (deleted int64, ran bool, err error) {
	objs := f.objs.Load()
	if objs == nil {
		return 0, false, errors.New("content bucket not ready")
	}
	conn, err := f.db.Acquire(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("acquiring a retention connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1 || current_schema()))`,
		retentionLockSalt).Scan(&locked); err != nil {
		return 0, false, fmt.Errorf("trying the content retention lock: %w", err)
	}
	if !locked {
		return 0, false, nil
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must
		// not stay with the pooled connection.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtext($1 || current_schema()))`, retentionLockSalt); err != nil {
			_ = conn.Conn().Close(uctx) // a closed session drops its locks
		}
	}()

	for {
		n, err := store.ExpireContent(ctx, conn, RetentionBatch)
		if err != nil {
			return deleted, true, err
		}
		if n < RetentionBatch {
			break
		}
	}
	for {
		n, err := store.PurgeExpiredContent(ctx, conn, RetentionBatch, func(ctx context.Context, k store.MessageKey) error {
			return objs.Delete(ctx, ObjectName(k.ChannelID, k.MessageID))
		})
		deleted += n
		f.m.retentionDeleted.Add(float64(n))
		if err != nil {
			return deleted, true, err
		}
		if n < RetentionBatch {
			break
		}
	}
	f.m.retentionLastRun.Set(float64(time.Now().Unix()))
	if deleted > 0 {
		f.cfg.Log.Info("content retention round", zap.Int64("deleted", deleted))
	}
	return deleted, true, nil
}
