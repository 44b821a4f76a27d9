package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// OutboxCompletion records how one attempt of a claimed row ended.
type OutboxCompletion struct {
	ID      int64
	ClaimID uuid.UUID
	// Status is delivered, retrying, failed, expired or uncertain. A
	// retrying row that was scrubbed meanwhile ends cancelled instead.
	Status            string
	Now               time.Time
	NextAttemptAt     time.Time // retrying only
	StatusCode        int
	Error             string
	RequestID         string
	AcceptedRequestID string
	SentMessageIDs    []string
	// Ambiguous: the attempt got no answer (timeout, network error, 5xx),
	// so LINE may have accepted it.
	Ambiguous bool
}

// ErrLeaseLost is returned when a completion's claim no longer owns the
// row: its lease expired and another claim took it over. The new owner's
// result stands.
var ErrLeaseLost = errors.New("store: outbox lease lost")

// CompleteOutbox records an attempt's outcome and its api_log entry in one
// statement (log may be nil when no call was made). It matches id and claim_id, so a sender whose lease was taken
// over changes nothing (ErrLeaseLost); the api_log entry is kept either
// way, since the call did happen.
func CompleteOutbox(ctx context.Context, q Querier, c OutboxCompletion, log *APILogEntry) error {
	args := []any{c.ID, c.ClaimID, c.Status, c.StatusCode, c.Error, c.RequestID, c.AcceptedRequestID,
		nilIfEmpty(c.SentMessageIDs), c.Ambiguous, c.NextAttemptAt, c.Now}
	logCTE := ""
	if log != nil {
		logCTE = ", l AS (" + insertAPILogSQL + ")"
		args = append(args, log.CalledAt, log.Method, log.Endpoint, log.Status, log.RequestID,
			log.AcceptedRequestID, log.ChannelID, log.OutboxID, log.RetryKey, log.Duration.Seconds()*1000, log.Error)
	}
	var n int
	err := q.QueryRow(ctx, `WITH u AS (`+completeSQL+`)`+logCTE+` SELECT count(*) FROM u`, args...).Scan(&n)
	if err != nil {
		return fmt.Errorf("completing outbox row %d: %w", c.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("completing outbox row %d: %w", c.ID, ErrLeaseLost)
	}
	return nil
}

// completeSQL never turns a cancelled or scrubbed row back into a retry:
// an unsend during the attempt wins unless LINE already accepted it.
const completeSQL = `UPDATE outbox SET
		status = CASE WHEN $3::text = 'retrying' AND (scrubbed_at IS NOT NULL OR status = 'cancelled')
		              THEN 'cancelled' ELSE $3::text END,
		last_status_code = nullif($4::integer, 0), last_error = nullif($5, ''),
		request_id = coalesce(nullif($6, ''), request_id),
		accepted_request_id = coalesce(nullif($7, ''), accepted_request_id),
		sent_message_ids = coalesce($8::text[], sent_message_ids),
		maybe_delivered = maybe_delivered OR $9::boolean,
		next_attempt_at = CASE WHEN $3::text = 'retrying' THEN $10::timestamptz ELSE next_attempt_at END,
		delivered_at = CASE WHEN $3::text = 'delivered' THEN $11::timestamptz END,
		finished_at = CASE WHEN $3::text = 'retrying' AND scrubbed_at IS NULL AND status <> 'cancelled'
		                   THEN NULL ELSE $11::timestamptz END,
		claim_id = NULL, claimed_by = NULL, lease_until = NULL
	WHERE id = $1 AND claim_id = $2
	RETURNING id`

// ReleaseOutbox hands a claimed row back without an attempt (its rate
// slot was missed), to be claimed again at once with a fresh slot.
func ReleaseOutbox(ctx context.Context, q Querier, id int64, claimID uuid.UUID) error {
	tag, err := q.Exec(ctx, `UPDATE outbox SET
			status = CASE WHEN scrubbed_at IS NOT NULL THEN 'cancelled'
			              WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
			attempts = attempts - 1, next_attempt_at = least(next_attempt_at, now()),
			claim_id = NULL, claimed_by = NULL, lease_until = NULL
		WHERE id = $1 AND claim_id = $2`, id, claimID)
	if err != nil {
		return fmt.Errorf("releasing outbox row %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("releasing outbox row %d: %w", id, ErrLeaseLost)
	}
	return nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// ReslotOutbox reserves a fresh slot in key's bucket for a claimed row
// whose sender missed its slot, and extends the row's lease to match. It
// returns the slot on the database clock and on this process's monotonic
// clock (see OutboxClaimed.SendAtLocal), or ErrLeaseLost.
func ReslotOutbox(ctx context.Context, db Beginner, id int64, claimID uuid.UUID, key RateKey,
	interval, lease time.Duration) (slot, slotLocal time.Time, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var tat, dbNow time.Time
		if err := tx.QueryRow(ctx, `SELECT tat, clock_timestamp() FROM outbox_rate
			WHERE channel_id = $1 AND bucket = $2 FOR UPDATE`, key.ChannelID, key.Bucket).Scan(&tat, &dbNow); err != nil {
			return fmt.Errorf("locking rate bucket: %w", err)
		}
		localNow := time.Now()
		slot = dbNow
		if tat.After(slot) {
			slot = tat
		}
		slotLocal = localNow.Add(slot.Sub(dbNow))
		tag, err := tx.Exec(ctx, `UPDATE outbox SET send_at = $3, lease_until = $3::timestamptz + $4::interval
			WHERE id = $1 AND claim_id = $2`, id, claimID, slot, lease)
		if err != nil {
			return fmt.Errorf("extending lease: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrLeaseLost
		}
		_, err = tx.Exec(ctx, `UPDATE outbox_rate SET tat = $3 WHERE channel_id = $1 AND bucket = $2`,
			key.ChannelID, key.Bucket, slot.Add(interval))
		return err
	})
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("re-slotting outbox row %d: %w", id, err)
	}
	return slot, slotLocal, nil
}
