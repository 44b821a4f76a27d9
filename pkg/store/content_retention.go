package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ContentExpired is the status of a message_content row past its
// retention whose object is being deleted (migrations/0008).
const ContentExpired = "expired"

// contentExpiredCond is a message_content row past the keep of the
// retention row 'message_content'. A missing retention row keeps content
// forever. Rows a fetcher holds (processing) or an unsend is deleting
// (unsent) are left until they settle.
const contentExpiredCond = `status IN ('pending', 'stored', 'missing', 'failed', 'external', 'deleted')
	AND created_at < (SELECT now() - keep FROM retention WHERE table_name = 'message_content')`

// ExpireContent marks at most batch message_content rows past their
// retention 'expired', in one statement committed on its own, and
// returns how many it marked. From then on no such row claims content
// that its object may no longer hold. Rows locked elsewhere (a claim, an
// unsend) are skipped and the condition is checked again on each row as
// it is locked.
func ExpireContent(ctx context.Context, q Querier, batch int) (int64, error) {
	tag, err := q.Exec(ctx, `WITH due AS (
			SELECT channel_id, message_id FROM message_content WHERE `+contentExpiredCond+`
			LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE message_content m SET status = 'expired', claim_id = NULL, claimed_by = NULL, lease_until = NULL,
			updated_at = now()
		FROM due WHERE m.channel_id = due.channel_id AND m.message_id = due.message_id`, batch)
	if err != nil {
		return 0, fmt.Errorf("retention: expiring message content: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PurgeExpiredContent deletes at most batch 'expired' rows in one
// transaction: each row is locked, del removes its object (a missing
// object must not be an error: a crash may have left a row whose object
// is gone already), and only then are the rows deleted. If del fails
// nothing is deleted from the table and the rows stay 'expired' for the
// next round; an object is thus never without a row. It returns how many
// rows it deleted.
func PurgeExpiredContent(ctx context.Context, db Beginner, batch int, del func(context.Context, MessageKey) error) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT channel_id, message_id FROM message_content
			WHERE status = 'expired' LIMIT $1 FOR UPDATE SKIP LOCKED`, batch)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MessageKey, error) {
			var k MessageKey
			return k, r.Scan(&k.ChannelID, &k.MessageID)
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		channels, messages := make([]string, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			if err := del(ctx, k); err != nil {
				return err
			}
			channels[i], messages[i] = k.ChannelID, k.MessageID
		}
		tag, err := tx.Exec(ctx, `DELETE FROM message_content m
			USING unnest($1::text[], $2::text[]) AS k(channel_id, message_id)
			WHERE m.channel_id = k.channel_id AND m.message_id = k.message_id AND m.status = 'expired'`,
			channels, messages)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retention: purging expired message content: %w", err)
	}
	return n, nil
}
