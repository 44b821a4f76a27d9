package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplayRequest is a dead letter an operator asked to store again
// (dead_letters.replay_requested_at set).
type ReplayRequest struct {
	ID             int64
	Subject        string
	StreamSeq      uint64
	Deliveries     uint64
	ChannelID      string
	WebhookEventID string
	MessageID      string
	Headers        []byte // JSON object, as the stream message carried them
	Data           []byte
	Scrubbed       bool // an unsend scrubbed the data
	Attempts       int  // earlier replay attempts
}

// ClaimReplay locks the longest-waiting requested replay in tx, skipping
// rows another replica holds, so any number of workers can replay at once
// and each row is replayed by one. It returns ErrNotFound when none waits.
func ClaimReplay(ctx context.Context, tx pgx.Tx) (ReplayRequest, error) {
	var r ReplayRequest
	var seq, deliveries int64
	var headers string
	err := tx.QueryRow(ctx, `SELECT id, subject, stream_seq, deliveries, coalesce(channel_id, ''),
			coalesce(webhook_event_id, ''), coalesce(message_id, ''), headers::text, data,
			scrubbed_at IS NOT NULL, replay_attempts
		FROM dead_letters
		WHERE replay_requested_at IS NOT NULL AND replay_requested_at <= now()
		ORDER BY replay_requested_at, id
		LIMIT 1
		FOR UPDATE SKIP LOCKED`).Scan(&r.ID, &r.Subject, &seq, &deliveries, &r.ChannelID,
		&r.WebhookEventID, &r.MessageID, &headers, &r.Data, &r.Scrubbed, &r.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("claiming dead letter replay: %w", err)
	}
	r.StreamSeq, r.Deliveries, r.Headers = uint64(seq), uint64(deliveries), []byte(headers)
	return r, nil
}

// RestoreTombstone records an unsend tombstone for a message whose dead
// letter was scrubbed, in case retention removed the original tombstone
// since: the replayed copy must be stored scrubbed like any late copy.
func RestoreTombstone(ctx context.Context, q Querier, k MessageKey, deadLetterID int64) error {
	_, err := q.Exec(ctx, `INSERT INTO unsent_messages (channel_id, message_id, unsent_at, webhook_event_id)
		VALUES ($1, $2, now(), $3) ON CONFLICT (channel_id, message_id) DO NOTHING`,
		k.ChannelID, k.MessageID, fmt.Sprintf("dead_letter:%d", deadLetterID))
	if err != nil {
		return fmt.Errorf("restoring tombstone for dead letter %d: %w", deadLetterID, err)
	}
	return nil
}

// DeleteDeadLetter removes a dead letter whose replay stored it.
func DeleteDeadLetter(ctx context.Context, q Querier, id int64) error {
	if _, err := q.Exec(ctx, `DELETE FROM dead_letters WHERE id = $1`, id); err != nil {
		return fmt.Errorf("deleting replayed dead letter %d: %w", id, err)
	}
	return nil
}

// ReplayFailed records a failed replay: the new error (sanitised and
// bounded like every stored error), one more attempt,
// and the request cleared, so the row waits for the operator again.
func ReplayFailed(ctx context.Context, q Querier, id int64, cause string) error {
	_, err := q.Exec(ctx, `UPDATE dead_letters SET error = $2, replay_attempts = replay_attempts + 1,
			replayed_at = now(), replay_requested_at = NULL
		WHERE id = $1`, id, SanitizeText(cause, MaxErrorText))
	if err != nil {
		return fmt.Errorf("recording failed replay of dead letter %d: %w", id, err)
	}
	return nil
}

// DeferReplay moves a requested replay that failed for no fault of its
// own (a deadlock, a timeout) after, so the requests behind it take their
// turn: the claim takes the longest-waiting request first, and would
// take this one again at once. A request an operator withdrew meanwhile
// (NULL), or moved later, is left as it is.
func DeferReplay(ctx context.Context, q Querier, id int64, after time.Duration) error {
	_, err := q.Exec(ctx, `UPDATE dead_letters SET replay_requested_at = now() + $2::interval
		WHERE id = $1 AND replay_requested_at <= now()`, id, after)
	if err != nil {
		return fmt.Errorf("deferring replay of dead letter %d: %w", id, err)
	}
	return nil
}
