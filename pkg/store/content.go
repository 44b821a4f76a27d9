package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// message_content statuses (migrations/0006).
const (
	ContentPending    = "pending"
	ContentProcessing = "processing"
	ContentStored     = "stored"
	ContentMissing    = "missing"
	ContentFailed     = "failed"
	ContentExternal   = "external"
	ContentUnsent     = "unsent"
	ContentDeleted    = "deleted"
)

// ContentRecord is the content a stored message event points at.
type ContentRecord struct {
	MessageKey
	MessageType    string // image, video, audio or file
	External       bool   // contentProvider.type "external": keep the URLs, never fetch
	OriginalURL    string
	PreviewURL     string
	FileName       string
	FileSize       *int64
	WebhookEventID string
}

// QueueRecordContents records content to fetch (or, when external, its
// URLs) with one statement, in the transaction that stores the message
// events. A repeat of the same message (a redelivery stored under another
// event id, or a second record of it in rs) changes nothing.
func QueueRecordContents(b *pgx.Batch, rs []ContentRecord) {
	if len(rs) == 0 {
		return
	}
	n := len(rs)
	chans, ids, types, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	origs, previews, names, evs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sizes := make([]*int64, n)
	for i, r := range rs {
		status := ContentPending
		if r.External {
			status = ContentExternal
		}
		chans[i], ids[i], types[i], statuses[i] = r.ChannelID, r.MessageID, r.MessageType, status
		origs[i], previews[i], names[i], sizes[i], evs[i] = r.OriginalURL, r.PreviewURL, r.FileName, r.FileSize, r.WebhookEventID
	}
	// ORDER BY n: of two records of one message, the first is kept, as
	// two statements in that order would keep it.
	b.Queue(`INSERT INTO message_content (channel_id, message_id, message_type, status, original_url,
			preview_url, file_name, file_size, webhook_event_id)
		SELECT ch, id, typ, st, nullif(orig, ''), nullif(prev, ''), nullif(name, ''), size, nullif(ev, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::bigint[], $9::text[]) WITH ORDINALITY AS t(ch, id, typ, st, orig, prev, name, size, ev, n)
		ORDER BY n
		ON CONFLICT (channel_id, message_id) DO NOTHING`,
		chans, ids, types, statuses, origs, previews, names, sizes, evs)
}

// QueueUnsendContents marks unsent messages' content, with one statement,
// in the unsends' transaction. A row loses everything that describes the
// content (the digest, the URLs, the file name) and a fetcher deletes the
// object; a fetch in flight loses its claim and deletes what it wrote. A
// row with no object to delete ends deleted at once. Of two unsends of one
// message in us, the first's time is kept.
func QueueUnsendContents(b *pgx.Batch, us []Unsend) {
	if len(us) == 0 {
		return
	}
	chans, ids, at := make([]string, len(us)), make([]string, len(us)), make([]time.Time, len(us))
	for i, u := range us {
		chans[i], ids[i], at[i] = u.ChannelID, u.MessageID, u.At
	}
	b.Queue(`UPDATE message_content c SET
			status = CASE WHEN c.status IN ('external', 'missing') THEN 'deleted' ELSE 'unsent' END,
			deleted_at = CASE WHEN c.status IN ('external', 'missing') THEN now() END,
			sha256 = NULL, original_url = NULL, preview_url = NULL, file_name = NULL,
			claim_id = NULL, claimed_by = NULL,
			-- A fetch in flight may still write until its lease ends: the
			-- object is deleted after that, or by the fetch itself.
			next_attempt_at = CASE WHEN c.status = 'processing' THEN greatest(now(), c.lease_until) ELSE now() END,
			unsent_at = k.at, updated_at = now()
		FROM (SELECT DISTINCT ON (ch, id) ch, id, at
			FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS u(ch, id, at, n)
			ORDER BY ch, id, n) k
		WHERE c.channel_id = k.ch AND c.message_id = k.id AND c.status NOT IN ('unsent', 'deleted')`,
		chans, ids, at)
}

// ContentClaim is one row a fetcher took.
type ContentClaim struct {
	MessageKey
	MessageType string
	Status      string // status before the claim: pending, or unsent (delete the object)
	Transcoding string
	Attempts    int // attempts before this one
	ClaimID     uuid.UUID
}

// contentDueSQL reads up to $1 rows a fetcher may take, earliest due
// first: due pending and unsent rows, and rows whose fetcher's lease ran
// out. Each kind is read through its own partial index, in order, up to
// the limit, so a claim reads a batch whatever the backlog. With the two
// kinds in one OR, Postgres read every due row and sorted them for each
// claim: 116 ms and an 11 MB sort on disk with 200,000 media waiting. The
// clock is read once (a subquery), so the index can bound the range.
const contentDueSQL = `WITH due AS (
    SELECT channel_id, message_id, message_type, status, transcoding, attempts, next_attempt_at
    FROM message_content
    WHERE status IN ('pending', 'unsent') AND next_attempt_at <= (SELECT clock_timestamp())
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT channel_id, message_id, message_type, status, transcoding, attempts, next_attempt_at
    FROM message_content
    WHERE status = 'processing' AND lease_until <= (SELECT clock_timestamp())
    ORDER BY lease_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
SELECT channel_id, message_id, message_type, status, coalesce(transcoding, ''), attempts
FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) c
ORDER BY next_attempt_at
LIMIT $1`

// ClaimContent takes up to limit rows: due fetches, rows whose fetcher's
// lease ended, and unsent rows whose object must go. Fetches move to
// processing under a lease fenced by a fresh claim id; unsent rows keep
// their status and get the claim id as well, so two deleters do not race.
// Due times and leases are on the database clock, as the outbox's are,
// so fetchers' clocks need not agree.
func ClaimContent(ctx context.Context, db Beginner, limit int, owner string, lease time.Duration) ([]ContentClaim, error) {
	var out []ContentClaim
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, contentDueSQL, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ContentClaim, error) {
			var c ContentClaim
			err := r.Scan(&c.ChannelID, &c.MessageID, &c.MessageType, &c.Status, &c.Transcoding, &c.Attempts)
			if c.Status == ContentProcessing {
				c.Status = ContentPending // a dead fetcher's row: fetch it again
			}
			c.ClaimID = uuid.New()
			return c, err
		})
		if err != nil || len(out) == 0 {
			return err
		}
		b := &pgx.Batch{}
		for _, c := range out {
			b.Queue(`UPDATE message_content SET
					status = CASE WHEN status = 'unsent' THEN 'unsent' ELSE 'processing' END,
					claim_id = $3, claimed_by = $4, lease_until = clock_timestamp() + $5 * interval '1 millisecond',
					updated_at = now(),
					next_attempt_at = CASE WHEN status = 'unsent'
						THEN clock_timestamp() + $5 * interval '1 millisecond' ELSE next_attempt_at END
				WHERE channel_id = $1 AND message_id = $2`, c.ChannelID, c.MessageID, c.ClaimID, owner, lease.Milliseconds())
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("claiming message content: %w", err)
	}
	return out, nil
}

// ErrContentClaimLost means the row is no longer this claim's: another
// fetcher took it over after the lease ended. Its result stands.
var ErrContentClaimLost = errors.New("message content claim lost")

// ErrContentUnsent means the message was unsent while it was being
// fetched: what the fetch wrote must be deleted.
var ErrContentUnsent = errors.New("message unsent during the fetch")

// ContentOutcome is how one attempt ended.
type ContentOutcome struct {
	Status      string // pending (retry or transcoding poll), stored, missing, failed
	Transcoding string
	ContentType string
	Size        int64
	SHA256      string
	StatusCode  int
	Error       string
	RetryIn     time.Duration // a pending row is due again this long from now (database clock)
	// Uncounted hands the row back without counting an attempt: the
	// fetch was cut off by the fetcher's own stop (a deploy), which says
	// nothing about the content, and must not use up its attempts.
	Uncounted bool
}

// CompleteContent records an attempt's outcome under the row's lock, if
// claimID still owns the row. For a stored outcome, onUnsent runs (still
// under the lock) when the message was unsent meanwhile: it must delete
// the object just written, and the row ends deleted. Holding the lock
// while deleting means no unsend can slip between the check and the
// delete.
func CompleteContent(ctx context.Context, db Beginner, k MessageKey, claimID uuid.UUID, o ContentOutcome,
	onUnsent func(context.Context) error) error {
	var delErr error
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var status string
		var owner *uuid.UUID
		err := tx.QueryRow(ctx, `SELECT status, claim_id FROM message_content
			WHERE channel_id = $1 AND message_id = $2 FOR UPDATE`, k.ChannelID, k.MessageID).Scan(&status, &owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message_content %s/%s: %w", k.ChannelID, k.MessageID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if status == ContentUnsent || status == ContentDeleted {
			if o.Status == ContentStored && onUnsent != nil {
				if err := onUnsent(ctx); err != nil {
					// Leave the row for a deleter to try again.
					_, uerr := tx.Exec(ctx, `UPDATE message_content SET status = 'unsent', deleted_at = NULL,
						next_attempt_at = clock_timestamp() + interval '5 seconds', last_error = $3, updated_at = now()
						WHERE channel_id = $1 AND message_id = $2`, k.ChannelID, k.MessageID, err.Error())
					if uerr != nil {
						return uerr
					}
					delErr = fmt.Errorf("deleting content of an unsent message: %w", err)
					return nil
				}
				_, err := tx.Exec(ctx, `UPDATE message_content SET status = 'deleted', deleted_at = now(),
					claim_id = NULL, claimed_by = NULL, lease_until = NULL, updated_at = now()
					WHERE channel_id = $1 AND message_id = $2`, k.ChannelID, k.MessageID)
				if err != nil {
					return err
				}
			}
			if status == ContentUnsent && o.Status != ContentStored {
				// This fetch wrote nothing: the deleter need not wait
				// for its lease to end.
				if _, err := tx.Exec(ctx, `UPDATE message_content SET next_attempt_at = clock_timestamp()
					WHERE channel_id = $1 AND message_id = $2`, k.ChannelID, k.MessageID); err != nil {
					return err
				}
			}
			delErr = ErrContentUnsent
			return nil
		}
		if owner == nil || *owner != claimID || status != ContentProcessing {
			return ErrContentClaimLost
		}
		_, err = tx.Exec(ctx, `UPDATE message_content SET status = $3, transcoding = nullif($4, ''),
				content_type = coalesce(nullif($5, ''), content_type),
				size = CASE WHEN $3 = 'stored' THEN $6 ELSE size END,
				sha256 = CASE WHEN $3 = 'stored' THEN nullif($7, '') ELSE sha256 END,
				last_status_code = nullif($8, 0), last_error = nullif($9, ''),
				attempts = attempts + CASE WHEN $11 THEN 0 ELSE 1 END, next_attempt_at = clock_timestamp() + $10 * interval '1 millisecond',
				stored_at = CASE WHEN $3 = 'stored' THEN now() ELSE stored_at END,
				claim_id = NULL, claimed_by = NULL, lease_until = NULL, updated_at = now()
			WHERE channel_id = $1 AND message_id = $2`,
			k.ChannelID, k.MessageID, o.Status, o.Transcoding, o.ContentType, o.Size, o.SHA256,
			o.StatusCode, o.Error, o.RetryIn.Milliseconds(), o.Uncounted)
		return err
	})
	if err == nil && delErr != nil {
		return delErr
	}
	return err
}

// DeleteUnsentContent ends an unsent row claimed by claimID: del removes
// the object while the row is locked, then the row ends deleted.
func DeleteUnsentContent(ctx context.Context, db Beginner, k MessageKey, claimID uuid.UUID, del func(context.Context) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var owner *uuid.UUID
		err := tx.QueryRow(ctx, `SELECT claim_id FROM message_content
			WHERE channel_id = $1 AND message_id = $2 AND status = 'unsent' FOR UPDATE`,
			k.ChannelID, k.MessageID).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // already deleted
		}
		if err != nil {
			return err
		}
		if owner == nil || *owner != claimID {
			return ErrContentClaimLost
		}
		if err := del(ctx); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE message_content SET status = 'deleted', deleted_at = now(),
				claim_id = NULL, claimed_by = NULL, lease_until = NULL, updated_at = now()
			WHERE channel_id = $1 AND message_id = $2`, k.ChannelID, k.MessageID)
		return err
	})
}

// ExtendContentLease moves the lease of the row claimID holds to lease
// from now (the database clock), while its fetch is still running. It
// reports false, changing nothing, when the claim is no longer the row's:
// another fetcher took it over, or an unsend cleared it. A fetcher that
// lost its claim can thus never keep a row from its new owner.
func ExtendContentLease(ctx context.Context, q Querier, k MessageKey, claimID uuid.UUID, lease time.Duration) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE message_content
		SET lease_until = clock_timestamp() + $4 * interval '1 millisecond', updated_at = now()
		WHERE channel_id = $1 AND message_id = $2 AND claim_id = $3 AND status = 'processing'`,
		k.ChannelID, k.MessageID, claimID, lease.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("extending a message content lease: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ContentStatus reads a row's status and claim, for a fetcher that must
// know before downloading whether the message was unsent meanwhile.
func ContentStatus(ctx context.Context, q Querier, k MessageKey) (status string, claim *uuid.UUID, err error) {
	err = q.QueryRow(ctx, `SELECT status, claim_id FROM message_content WHERE channel_id = $1 AND message_id = $2`,
		k.ChannelID, k.MessageID).Scan(&status, &claim)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, ErrNotFound
	}
	return status, claim, err
}

// ReserveRateSlot takes one slot of a GCRA bucket in outbox_rate, the
// table every sender replica draws from, and returns how long to wait
// until the slot starts. interval is one request's share of the limit.
func ReserveRateSlot(ctx context.Context, q Querier, k RateKey, interval time.Duration) (time.Duration, error) {
	var wait float64
	err := q.QueryRow(ctx, `INSERT INTO outbox_rate AS r (channel_id, bucket, tat)
			VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (channel_id, bucket) DO UPDATE
			SET tat = greatest(r.tat, clock_timestamp()) + $3 * interval '1 microsecond'
		RETURNING extract(epoch FROM (tat - clock_timestamp())) - $3::float8 / 1e6`,
		k.ChannelID, k.Bucket, interval.Microseconds()).Scan(&wait)
	if err != nil {
		return 0, fmt.Errorf("reserving a %s rate slot: %w", k.Bucket, err)
	}
	if wait < 0 {
		return 0, nil
	}
	return time.Duration(wait * float64(time.Second)), nil
}
