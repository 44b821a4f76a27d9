package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// OutboxCompletion records how one attempt of a claimed row ended.
type OutboxCompletion struct {
	ID      int64
	ClaimID uuid.UUID
	// Status is delivered, retrying, failed, expired or uncertain. A
	// retrying row that was scrubbed meanwhile ends cancelled instead.
	Status string
	// Backoff is how long after the database's now a retrying row is due
	// again (0: at once).
	Backoff           time.Duration
	StatusCode        int
	Error             string
	RequestID         string
	AcceptedRequestID string
	SentMessageIDs    []string
	// Ambiguous: the attempt got no answer (timeout, network error, 5xx),
	// so LINE may have accepted it.
	Ambiguous bool
	// Log is the call's api_log entry; nil when no call was made.
	Log *APILogEntry
}

// ErrLeaseLost is returned when a completion's claim no longer owns the
// row: its lease expired and another claim took it over. The new owner's
// result stands.
var ErrLeaseLost = errors.New("store: outbox lease lost")

// CompleteOutbox records one attempt's outcome; see CompleteOutboxBatch.
func CompleteOutbox(ctx context.Context, db Acquirer, c OutboxCompletion) error {
	errs, err := CompleteOutboxBatch(ctx, db, []OutboxCompletion{c})
	if err != nil {
		return err
	}
	return errs[0]
}

// CompleteOutboxBatch records many attempts' outcomes and their api_log
// entries in one statement, so one commit serves a whole group of sends:
// a commit per send was the sender's ceiling. Each row is matched on id
// and claim_id (the fencing token), so a completion whose lease was taken
// over changes nothing and gets ErrLeaseLost in its place in the returned
// slice; its api_log entry is kept either way, since the call did happen.
// The error is for the statement as a whole. The statement travels with
// BEGIN and COMMIT in one round trip, in a transaction that plans for the
// outbox's indexes (beginOutboxTx).
func CompleteOutboxBatch(ctx context.Context, db Acquirer, cs []OutboxCompletion) ([]error, error) {
	n := len(cs)
	ids, claims := make([]int64, n), make([]pgtype.UUID, n)
	statuses, errTexts, reqIDs, accIDs, sent := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	codes, backoffMS := make([]int32, n), make([]float64, n)
	ambiguous := make([]bool, n)
	var logs apiLogArrays
	for i, c := range cs {
		ids[i], claims[i], statuses[i], codes[i] = c.ID, pgUUID(&c.ClaimID), c.Status, int32(c.StatusCode)
		errTexts[i], reqIDs[i], accIDs[i] = SanitizeText(c.Error, MaxErrorText), c.RequestID, c.AcceptedRequestID
		backoffMS[i], ambiguous[i] = float64(c.Backoff)/float64(time.Millisecond), c.Ambiguous
		if len(c.SentMessageIDs) > 0 {
			s := textArray(c.SentMessageIDs)
			sent[i] = &s
		}
		if c.Log != nil {
			logs.add(*c.Log)
		}
	}
	args := append([]any{ids, claims, statuses, codes, errTexts, reqIDs, accIDs, sent, ambiguous, backoffMS}, logs.args()...)
	type fenced struct {
		id    int64
		claim uuid.UUID
	}
	ok := make(map[fenced]bool, n)
	if err := completeInTx(ctx, db, args, func(id int64, claim uuid.UUID) { ok[fenced{id, claim}] = true }); err != nil {
		return nil, fmt.Errorf("completing %d outbox rows: %w", n, err)
	}
	errs := make([]error, n)
	for i, c := range cs {
		if !ok[fenced{c.ID, c.ClaimID}] {
			errs[i] = fmt.Errorf("completing outbox row %d: %w", c.ID, ErrLeaseLost)
		}
	}
	return errs, nil
}

// completeInTx runs completeBatchSQL with args and commits, in one round
// trip, calling completed for each row it completed.
func completeInTx(ctx context.Context, db Acquirer, args []any, completed func(int64, uuid.UUID)) error {
	tx, done, err := beginOutboxTx(ctx, db)
	if err != nil {
		return err
	}
	defer done()
	var b pgx.Batch
	b.Queue(completeBatchSQL, args...)
	b.Queue("commit")
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return err
	}
	var id int64
	var claim uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&id, &claim}, func() error { completed(id, claim); return nil }); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return br.Close()
}

// textArray is ss as a Postgres array literal, every element quoted, so
// the completion reads it with a cast: a JSON array unpacked by a
// subquery per row cost the statement more than the rest of its columns.
func textArray(ss []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// completeBatchSQL never turns a cancelled or scrubbed row back into a
// retry: an unsend during the attempt wins unless LINE already accepted
// it. Times are the database's, like every other time the replicas share.
const completeBatchSQL = `WITH c AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::bool[], $10::float8[])
        AS c(id, claim_id, status, code, error, request_id, accepted_request_id, sent, ambiguous, backoff_ms)
), u AS (
    UPDATE outbox o SET
        status = CASE WHEN c.status = 'retrying' AND (o.scrubbed_at IS NOT NULL OR o.status = 'cancelled')
                      THEN 'cancelled' ELSE c.status END,
        last_status_code = nullif(c.code, 0), last_error = nullif(c.error, ''),
        request_id = coalesce(nullif(c.request_id, ''), o.request_id),
        accepted_request_id = coalesce(nullif(c.accepted_request_id, ''), o.accepted_request_id),
        sent_message_ids = coalesce(c.sent::text[], o.sent_message_ids),
        maybe_delivered = o.maybe_delivered OR c.ambiguous,
        next_attempt_at = CASE WHEN c.status = 'retrying'
                               THEN clock_timestamp() + c.backoff_ms * interval '1 millisecond'
                               ELSE o.next_attempt_at END,
        delivered_at = CASE WHEN c.status = 'delivered' THEN clock_timestamp() END,
        finished_at = CASE WHEN c.status = 'retrying' AND o.scrubbed_at IS NULL AND o.status <> 'cancelled'
                           THEN NULL ELSE clock_timestamp() END,
        claim_id = NULL, claimed_by = NULL, lease_until = NULL
    FROM c
    WHERE o.id = c.id AND o.claim_id = c.claim_id AND o.id = ANY($1)
    RETURNING o.id, c.claim_id
), l AS (` + insertAPILogBatchSQL + `)
SELECT id, claim_id FROM u`

// Refund gives back a reservation in a rate bucket: Amount after the
// row's send_at, if it is still the bucket's latest.
type Refund struct {
	Key    RateKey
	Amount time.Duration
	// Shift is how far a claim shift (ShiftOutboxClaim) moved the bucket
	// after the row was booked: the row's send_at does not move with it,
	// so without it a shifted row's refund would never match, and a
	// broadcast released after a missed slot would leave its bucket
	// booked for half an hour.
	Shift time.Duration
}

// ReleaseOutbox hands a claimed row back without an attempt (its rate
// slot was missed), to be claimed again at once with a fresh slot; a row
// an unsend scrubbed meanwhile ends cancelled, finished now like every
// other cancelled row, so retention and the row counts see it. Each
// refund moves its bucket's tat back when nobody booked after this row,
// so a missed slot does not cost capacity: for a bucket of two broadcasts
// an hour that would be half an hour.
func ReleaseOutbox(ctx context.Context, db Beginner, id int64, claimID uuid.UUID, refunds ...Refund) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var sendAt *time.Time
		err := tx.QueryRow(ctx, `UPDATE outbox SET
				status = CASE WHEN scrubbed_at IS NOT NULL THEN 'cancelled'
				              WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
				attempts = attempts - 1, next_attempt_at = least(next_attempt_at, now()),
				finished_at = CASE WHEN scrubbed_at IS NOT NULL THEN clock_timestamp() ELSE finished_at END,
				claim_id = NULL, claimed_by = NULL, lease_until = NULL
			WHERE id = $1 AND claim_id = $2 RETURNING send_at`, id, claimID).Scan(&sendAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("releasing outbox row %d: %w", id, ErrLeaseLost)
		}
		if err != nil {
			return fmt.Errorf("releasing outbox row %d: %w", id, err)
		}
		for _, r := range refunds {
			if sendAt == nil {
				break
			}
			if _, err := tx.Exec(ctx, `UPDATE outbox_rate SET tat = tat - $4::interval
				WHERE channel_id = $1 AND bucket = $2 AND tat = $3::timestamptz + $4::interval + $5::interval`,
				r.Key.ChannelID, r.Key.Bucket, *sendAt, r.Amount, r.Shift); err != nil {
				return fmt.Errorf("refunding rate bucket %s: %w", r.Key.Bucket, err)
			}
		}
		return nil
	})
}

// ErrSlotBeyondHorizon is returned by ReslotOutbox when the bucket's next
// slot is further away than the horizon: the row is better handed back
// than held in flight until then.
var ErrSlotBeyondHorizon = errors.New("store: next rate slot beyond the horizon")

// Reslot asks for a fresh rate slot for a claimed row whose sender
// missed its slot.
type Reslot struct {
	ID       int64
	ClaimID  uuid.UUID
	Key      RateKey       // the endpoint bucket
	Interval time.Duration // one cell of it
	Lease    time.Duration // the lease after the new slot
	Horizon  time.Duration // a slot further away than this is refused
	// Lead is the time the answer takes to reach the sender: a new slot
	// is put this far after the database's now, also when the row held
	// the bucket's latest reservation and is sent at once (its reservation
	// then starts when the answer reaches the sender).
	Lead time.Duration
}

// ReslotOutbox reserves a fresh slot in r.Key's bucket and extends the
// row's lease to match. It returns the slot on the database clock and on
// this process's monotonic clock (see OutboxClaimed.SendAtLocal),
// ErrLeaseLost, or ErrSlotBeyondHorizon (nothing changed) when the next
// slot is more than r.Horizon away.
func ReslotOutbox(ctx context.Context, db Acquirer, r Reslot) (slot, slotLocal time.Time, err error) {
	res, err := ReslotOutboxRows(ctx, db, ReslotBatch{Key: r.Key, Interval: r.Interval, Lease: r.Lease,
		Horizon: r.Horizon, Lead: r.Lead, Rows: []ReslotRow{{ID: r.ID, ClaimID: r.ClaimID}}})
	if err == nil {
		slot, slotLocal, err = res[0].Slot, res[0].SlotLocal, res[0].Err
	}
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("re-slotting outbox row %d: %w", r.ID, err)
	}
	return slot, slotLocal, nil
}

// ReslotBatch asks fresh slots in one bucket for rows whose senders
// missed theirs.
type ReslotBatch struct {
	Key      RateKey
	Interval time.Duration
	Lease    time.Duration
	Horizon  time.Duration
	Lead     time.Duration
	Rows     []ReslotRow
}

// ReslotRow is one late row under its claim.
type ReslotRow struct {
	ID      int64
	ClaimID uuid.UUID
}

// ReslotResult is one row's fresh slot, or why it has none: ErrLeaseLost
// (its claim is gone) or ErrSlotBeyondHorizon (unchanged).
type ReslotResult struct {
	Slot, SlotLocal time.Time
	Err             error
}

// ReslotOutboxRows gives every row of b the next free slots of b.Key's
// bucket, consecutive, in one transaction: one turn on the bucket's lock
// however many rows were late together. Late rows come in bursts (a
// loaded host starts a whole batch late), and one transaction each made
// them queue on that lock behind each other's commits, each falling
// later still. The results are in b.Rows' order.
//
// It takes two round trips: BEGIN with both locks, then the writes with
// COMMIT, so the bucket stays locked for one round trip and the commit,
// not for a round trip per statement.
func ReslotOutboxRows(ctx context.Context, db Acquirer, b ReslotBatch) ([]ReslotResult, error) {
	res, err := reslotOutboxRows(ctx, db, b)
	if err != nil {
		return nil, fmt.Errorf("re-slotting %d outbox rows: %w", len(b.Rows), err)
	}
	now := time.Now()
	for i := range res {
		if res[i].Err == nil && res[i].SlotLocal.IsZero() {
			res[i].SlotLocal = now
		}
	}
	return res, nil
}

func reslotOutboxRows(ctx context.Context, db Acquirer, b ReslotBatch) ([]ReslotResult, error) {
	res := make([]ReslotResult, len(b.Rows))
	for i := range res {
		res[i] = ReslotResult{Err: ErrLeaseLost}
	}
	ids, claims := make([]int64, len(b.Rows)), make([]pgtype.UUID, len(b.Rows))
	for i, r := range b.Rows {
		ids[i], claims[i] = r.ID, pgUUID(&r.ClaimID)
	}
	tx, done, err := beginOutboxTx(ctx, db)
	if err != nil {
		return nil, err
	}
	defer done()
	// The rows first, then their bucket: the order claims and releases
	// take them in, so a claim taking a row over while it is being
	// re-slotted waits instead of deadlocking. The statements of a batch
	// run in order, so the clock is read after both locks.
	var q pgx.Batch
	q.Queue(`SELECT o.id, o.claim_id, o.send_at FROM outbox o
		JOIN unnest($1::bigint[], $2::uuid[]) AS r(id, claim) ON o.id = r.id AND o.claim_id = r.claim
		WHERE o.id = ANY($1) AND o.send_at IS NOT NULL ORDER BY o.id FOR UPDATE OF o`, ids, claims)
	q.Queue(`SELECT tat, clock_timestamp() FROM outbox_rate
		WHERE channel_id = $1 AND bucket = $2 FOR UPDATE`, b.Key.ChannelID, b.Key.Bucket)
	br := tx.SendBatch(ctx, &q)
	sendAt := map[int64]time.Time{}
	claimOf := map[int64]uuid.UUID{}
	var locked []int64
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("locking outbox rows: %w", err)
	}
	var id int64
	var claim uuid.UUID
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &claim, &at}, func() error {
		if _, dup := sendAt[id]; !dup {
			locked = append(locked, id)
		}
		sendAt[id], claimOf[id] = at, claim
		return nil
	}); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("locking outbox rows: %w", err)
	}
	var tat, dbNow time.Time
	if err := br.QueryRow().Scan(&tat, &dbNow); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("locking rate bucket: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("locking rate bucket: %w", err)
	}
	localNow := time.Now()
	if len(locked) == 0 {
		return res, tx.commit(ctx, nil)
	}
	slots := map[int64]time.Time{}
	var next time.Time
	atOnce := false
	if len(locked) == 1 && tat.Equal(sendAt[locked[0]].Add(b.Interval)) {
		// The row holds the bucket's latest reservation, so nobody is
		// booked after it: the row is sent as soon as this commits, and
		// its reservation moves to now plus Lead, the return trip before
		// the send starts. Waiting for a slot a few milliseconds ahead
		// instead would, on a loaded host, only miss it again. The
		// reservation is the row's send_at, so the bucket stays booked
		// one cell past it, as a release's refund and the next re-slot
		// look for: with send_at at now, Lead stood between them and a
		// row handed back refunded nothing (a broadcast's bucket stayed
		// booked a whole cell).
		slots[locked[0]], next, atOnce = dbNow.Add(b.Lead), dbNow.Add(b.Lead).Add(b.Interval), true
	} else {
		base := dbNow.Add(b.Lead)
		if tat.After(base) {
			base = tat
		}
		next = base
		for _, id := range locked {
			if next.Sub(dbNow) > b.Horizon {
				break
			}
			slots[id] = next
			next = next.Add(b.Interval)
		}
	}
	// A request counts only under the claim that holds its row.
	ours := func(r ReslotRow) bool { c, ok := claimOf[r.ID]; return ok && c == r.ClaimID }
	if len(slots) == 0 {
		for i, r := range b.Rows {
			if ours(r) {
				res[i].Err = ErrSlotBeyondHorizon
			}
		}
		return res, tx.commit(ctx, nil)
	}
	uids, uslots := make([]int64, 0, len(slots)), make([]time.Time, 0, len(slots))
	for id, at := range slots {
		uids, uslots = append(uids, id), append(uslots, at)
	}
	var w writes
	w.add("extending leases", `UPDATE outbox o SET send_at = u.slot, lease_until = u.slot + $3::interval
		FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, slot) WHERE o.id = u.id AND o.id = ANY($1)`, uids, uslots, b.Lease)
	w.add("booking rate bucket", `UPDATE outbox_rate SET tat = $3 WHERE channel_id = $1 AND bucket = $2`,
		b.Key.ChannelID, b.Key.Bucket, next)
	if err := tx.commit(ctx, &w); err != nil {
		return nil, err
	}
	for i, r := range b.Rows {
		at, ok := slots[r.ID]
		switch {
		case !ours(r):
		case ok && atOnce:
			res[i] = ReslotResult{Slot: at} // SlotLocal set after commit
		case ok:
			res[i] = ReslotResult{Slot: at, SlotLocal: localNow.Add(at.Sub(dbNow))}
		default:
			res[i].Err = ErrSlotBeyondHorizon
		}
	}
	return res, nil
}

// ErrBookedAfter is returned by ShiftOutboxClaim when another claim has
// booked the bucket after this one: shifting would crowd it.
var ErrBookedAfter = errors.New("store: rate bucket booked after this claim")

// ShiftOutboxClaim moves the bucket's next free slot by shift for a
// claim whose rows are all late (a cold token, a slow commit) and will
// be sent shift later than booked, evenly spaced as planned. It applies
// only while this claim holds the bucket's latest reservation (tat =
// lastSlot + interval); otherwise it returns ErrBookedAfter and changes
// nothing, and each row takes a fresh slot instead. One statement on the
// bucket serves the whole batch.
//
// The rows keep their recorded send_at and lease: the caller shifts
// only by less than its lease safety margin, so each lease still ends
// after its row's send. Updating them too would lock every row of the
// claim while its first sends are being completed, and completions and
// shifts then waited on each other (most of the sender's lock waits in
// the reply bench). A release or re-slot of such a row finds send_at
// no longer the bucket's latest and simply gives nothing back.
func ShiftOutboxClaim(ctx context.Context, db Querier, claimID uuid.UUID, key RateKey, lastSlot time.Time,
	interval, shift time.Duration) error {
	tag, err := db.Exec(ctx, `UPDATE outbox_rate SET tat = tat + $4::interval
		WHERE channel_id = $1 AND bucket = $2 AND tat = $3::timestamptz + $5::interval`,
		key.ChannelID, key.Bucket, lastSlot, shift, interval)
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrBookedAfter
	}
	if err != nil {
		return fmt.Errorf("shifting claim %s: %w", claimID, err)
	}
	return nil
}
