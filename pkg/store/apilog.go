package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// APILogEntry is one call to the LINE Platform, as LINE's development
// guideline asks to keep ("Save logs": request id, time, method, endpoint,
// status). Error is LINE's error body; tokens and message text never go
// here.
type APILogEntry struct {
	CalledAt          time.Time
	Method            string
	Endpoint          string // path, e.g. /v2/bot/message/push
	Status            int    // 0 when no HTTP answer came
	RequestID         string
	AcceptedRequestID string
	ChannelID         string
	OutboxID          *int64
	RetryKey          *uuid.UUID
	Duration          time.Duration
	Error             string
}

// insertAPILogSQL takes its values from $12..$22, so CompleteOutbox can
// embed it next to the outbox update and write both in one round trip.
const insertAPILogSQL = `INSERT INTO api_log (called_at, method, endpoint, status, request_id,
		accepted_request_id, channel_id, outbox_id, retry_key, duration_ms, error)
	VALUES ($12, $13, $14, $15, nullif($16, ''), nullif($17, ''), nullif($18, ''), $19, $20, $21, nullif($22, ''))`

// InsertAPILog records a call that belongs to no outbox completion, such
// as issuing an access token.
func InsertAPILog(ctx context.Context, q Querier, e APILogEntry) error {
	_, err := q.Exec(ctx, `INSERT INTO api_log (called_at, method, endpoint, status, request_id,
		accepted_request_id, channel_id, outbox_id, retry_key, duration_ms, error)
		VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), nullif($7, ''), $8, $9, $10, nullif($11, ''))`,
		e.CalledAt, e.Method, e.Endpoint, e.Status, e.RequestID, e.AcceptedRequestID, e.ChannelID,
		e.OutboxID, e.RetryKey, e.Duration.Seconds()*1000, e.Error)
	if err != nil {
		return fmt.Errorf("logging %s %s: %w", e.Method, e.Endpoint, err)
	}
	return nil
}
