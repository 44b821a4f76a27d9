package store

import (
	"context"
	"fmt"
)

// RetentionTables are the kinds of rows the worker's janitor deletes by
// the retention table, in the order it deletes them. The table's
// 'message_content' row is not among them: expired content is an object
// in the content bucket as well as a row, and only the sender's content
// fetcher may delete objects there (ExpireContent, PurgeExpiredContent).
var RetentionTables = []string{"events", "webhook_log", "api_log", "outbox", "dead_letters", "unsent_messages", "outbox_rate"}

// expired is, per retention table, the condition of a row past its keep.
// The cutoff comes from the retention table inside the statement, so an
// operator's UPDATE of retention applies at the next round, and a missing
// row (retention deleted for that table) keeps everything. Each condition
// can use an index, so a round finds its batch without scanning the
// table, except outbox_rate, which has no index on tat on purpose: it is
// updated on every send, and an index would cost every claim.
var expired = map[string]string{
	"events":      `received_at < (SELECT now() - keep FROM retention WHERE table_name = 'events')`,
	"webhook_log": `received_at < (SELECT now() - keep FROM retention WHERE table_name = 'webhook_log')`,
	"api_log":     `called_at < (SELECT now() - keep FROM retention WHERE table_name = 'api_log')`,
	// Only finished rows: a pending, retrying or in_flight row is never
	// removed, nor a row whose status a later release may add.
	"outbox": `status IN ('delivered', 'failed', 'expired', 'skipped', 'cancelled', 'uncertain')
		AND finished_at < (SELECT now() - keep FROM retention WHERE table_name = 'outbox')`,
	// A dead letter waiting for its replay stays until the replay is done.
	"dead_letters": `replay_requested_at IS NULL
		AND failed_at < (SELECT now() - keep FROM retention WHERE table_name = 'dead_letters')`,
	// retention's CHECK keeps this at least 7 days: the redelivery horizon.
	"unsent_messages": `recorded_at < (SELECT now() - keep FROM retention WHERE table_name = 'unsent_messages')`,
	// A per-recipient bucket whose next free slot is long past means the
	// same as no bucket (a claim creates it at 'epoch'); channel-wide
	// buckets are a handful of rows and stay.
	"outbox_rate": `bucket LIKE 'to:%' AND tat < (SELECT now() - keep FROM retention WHERE table_name = 'outbox_rate')`,
}

// DeleteExpired deletes at most batch expired rows of table in one
// statement (its own short transaction when q is a pool or connection)
// and returns how many it deleted. Rows are picked by ctid and the
// condition is checked again on each row as it is locked, so a row
// changed meanwhile (an outbox row requeued, a bucket used) is skipped,
// never deleted on stale data.
func DeleteExpired(ctx context.Context, q Querier, table string, batch int) (int64, error) {
	cond, ok := expired[table]
	if !ok {
		return 0, fmt.Errorf("retention: unknown table %q", table)
	}
	tag, err := q.Exec(ctx, fmt.Sprintf(`DELETE FROM %[1]s
		WHERE ctid = ANY (ARRAY(SELECT ctid FROM %[1]s WHERE %[2]s LIMIT $1))
		  AND %[2]s`, table, cond), batch)
	if err != nil {
		return 0, fmt.Errorf("retention: deleting expired %s rows: %w", table, err)
	}
	return tag.RowsAffected(), nil
}
