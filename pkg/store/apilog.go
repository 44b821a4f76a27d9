package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
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

// insertAPILogBatchSQL inserts the entries of apiLogArrays.args, which
// take $11..$21, so CompleteOutboxBatch writes them in its own statement.
const insertAPILogBatchSQL = `INSERT INTO api_log (called_at, method, endpoint, status, request_id,
		accepted_request_id, channel_id, outbox_id, retry_key, duration_ms, error)
	SELECT called_at, method, endpoint, status, nullif(request_id, ''), nullif(accepted_request_id, ''),
	       nullif(channel_id, ''), outbox_id, retry_key, duration_ms, nullif(error, '')
	FROM unnest($11::timestamptz[], $12::text[], $13::text[], $14::int[], $15::text[], $16::text[],
	            $17::text[], $18::bigint[], $19::uuid[], $20::float8[], $21::text[])
	    AS l(called_at, method, endpoint, status, request_id, accepted_request_id, channel_id, outbox_id,
	         retry_key, duration_ms, error)`

// apiLogArrays holds api_log entries column by column, for unnest.
type apiLogArrays struct {
	calledAt                                []time.Time
	method, endpoint, reqID, accID, channel []string
	status                                  []int32
	outbox                                  []*int64
	key                                     []pgtype.UUID
	ms                                      []float64
	errText                                 []string
}

func (a *apiLogArrays) add(e APILogEntry) {
	a.calledAt = append(a.calledAt, e.CalledAt)
	a.method, a.endpoint = append(a.method, e.Method), append(a.endpoint, e.Endpoint)
	a.status = append(a.status, int32(e.Status))
	a.reqID, a.accID = append(a.reqID, e.RequestID), append(a.accID, e.AcceptedRequestID)
	a.channel, a.outbox, a.key = append(a.channel, e.ChannelID), append(a.outbox, e.OutboxID), append(a.key, pgUUID(e.RetryKey))
	a.ms = append(a.ms, e.Duration.Seconds()*1000)
	a.errText = append(a.errText, SanitizeText(e.Error, MaxErrorText))
}

func (a *apiLogArrays) args() []any {
	return []any{a.calledAt, a.method, a.endpoint, a.status, a.reqID, a.accID, a.channel, a.outbox, a.key, a.ms, a.errText}
}

// pgUUID is u as pgx's own UUID type, NULL for nil. Arrays of it encode
// straight to binary; arrays of uuid.UUID went through driver.Valuer and
// a failed plan per element (a tenth of the sender's CPU in make bench).
func pgUUID(u *uuid.UUID) pgtype.UUID {
	if u == nil {
		return pgtype.UUID{}
	}
	return pgtype.UUID{Bytes: *u, Valid: true}
}

// InsertAPILog records a call that belongs to no outbox completion, such
// as issuing an access token.
func InsertAPILog(ctx context.Context, q Querier, e APILogEntry) error {
	_, err := q.Exec(ctx, `INSERT INTO api_log (called_at, method, endpoint, status, request_id,
		accepted_request_id, channel_id, outbox_id, retry_key, duration_ms, error)
		VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), nullif($7, ''), $8, $9, $10, nullif($11, ''))`,
		e.CalledAt, e.Method, e.Endpoint, e.Status, e.RequestID, e.AcceptedRequestID, e.ChannelID,
		e.OutboxID, e.RetryKey, e.Duration.Seconds()*1000, SanitizeText(e.Error, MaxErrorText))
	if err != nil {
		return fmt.Errorf("logging %s %s: %w", e.Method, e.Endpoint, err)
	}
	return nil
}
