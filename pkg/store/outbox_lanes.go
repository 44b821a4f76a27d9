package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// DefaultMaxLanes caps the lanes one claim reads from. A lane is one
// (channel, endpoint, priority) with queued rows; a deployment has a few
// per channel.
const DefaultMaxLanes = 1000

// LaneKey names a lane: one (channel, endpoint, priority) with queued
// rows. ClaimResult.NextLanes says where the next claim's listing of
// lanes starts (ClaimParams.AfterLane).
type LaneKey struct {
	ChannelID string
	Endpoint  string
	Priority  int16
}

// lane is the claim's own name for a LaneKey.
type lane = LaneKey

// lanesSQL lists up to $1 lanes with queued rows by a loose index scan
// over outbox_lane_idx: one index descent per lane, however many rows
// each holds, so a claim's cost never grows with a backlog. The listing
// starts after the lane ($3, $4, $5) where the last truncated listing
// ended, when $6, and wraps around to the first lanes up to it: with more
// lanes than $1 (each channel, endpoint and priority with any row queued,
// due or not), a listing that always began at the first lane would never
// reach the channels sorting after them, and their replies would expire
// unsent. It returns the lanes whose endpoint bucket is not booked beyond
// the horizon (nothing in the others could be claimed now, and reading
// them would only hold locks), how many it listed before that filter,
// and the last one listed, where the next listing starts when this one
// was cut. It also reads the database clock, which decides what is due.
const lanesSQL = `
WITH RECURSIVE after_cursor AS (
    (SELECT channel_id, endpoint, priority FROM outbox
     WHERE status IN ('pending', 'retrying')
       AND (channel_id, endpoint, priority) > ($3::text, $4::text, $5::smallint)
     ORDER BY channel_id, endpoint, priority LIMIT 1)
    UNION ALL
    SELECT n.channel_id, n.endpoint, n.priority FROM after_cursor l CROSS JOIN LATERAL (
        SELECT o.channel_id, o.endpoint, o.priority FROM outbox o
        WHERE o.status IN ('pending', 'retrying')
          AND (o.channel_id, o.endpoint, o.priority) > (l.channel_id, l.endpoint, l.priority)
        ORDER BY o.channel_id, o.endpoint, o.priority LIMIT 1) n
), up_to_cursor AS (
    (SELECT channel_id, endpoint, priority FROM outbox
     WHERE $6::bool AND status IN ('pending', 'retrying')
       AND (channel_id, endpoint, priority) <= ($3::text, $4::text, $5::smallint)
     ORDER BY channel_id, endpoint, priority LIMIT 1)
    UNION ALL
    SELECT n.channel_id, n.endpoint, n.priority FROM up_to_cursor l CROSS JOIN LATERAL (
        SELECT o.channel_id, o.endpoint, o.priority FROM outbox o
        WHERE o.status IN ('pending', 'retrying')
          AND (o.channel_id, o.endpoint, o.priority) > (l.channel_id, l.endpoint, l.priority)
          AND (o.channel_id, o.endpoint, o.priority) <= ($3::text, $4::text, $5::smallint)
        ORDER BY o.channel_id, o.endpoint, o.priority LIMIT 1) n
), listed AS MATERIALIZED (
    SELECT l.*, row_number() OVER () AS n
    FROM (SELECT * FROM after_cursor UNION ALL SELECT * FROM up_to_cursor LIMIT $1) l
)
SELECT clock_timestamp(), coalesce(array_agg(l.channel_id ORDER BY l.n), '{}'),
       coalesce(array_agg(l.endpoint ORDER BY l.n), '{}'), coalesce(array_agg(l.priority ORDER BY l.n), '{}'),
       (SELECT count(*) FROM listed)::int,
       coalesce((SELECT channel_id FROM listed ORDER BY n DESC LIMIT 1), ''),
       coalesce((SELECT endpoint FROM listed ORDER BY n DESC LIMIT 1), ''),
       coalesce((SELECT priority FROM listed ORDER BY n DESC LIMIT 1), 0)
FROM listed l
WHERE NOT EXISTS (SELECT 1 FROM outbox_rate r
                  WHERE r.channel_id = l.channel_id AND r.bucket = l.endpoint
                    AND r.tat > clock_timestamp() + $2::interval)`

// candidateCols are a candidate's columns. The recipient's follow state
// is a subquery per row, not a join: the planner cannot know a lane's
// quota (LIMIT l.q), expects a tenth of the lane, and with a large
// backlog it read the whole followers table into a hash for every claim
// (every channel's audience) instead of probing it for the rows read.
const candidateCols = `o.id, o.channel_id, o.endpoint, o.body::text, o.retry_key, o.status, o.scrubbed_at IS NOT NULL,
       o.priority, o.not_after, o.next_attempt_at, o.created_at, o.first_attempt_at, o.attempts,
       coalesce(o.last_status_code, 0), o.maybe_delivered, coalesce(o.recipient, ''),
       (SELECT f.following FROM followers f WHERE f.channel_id = o.channel_id AND f.user_id = o.recipient)`

// expiredLeaseSQL reads rows whose sender's lease ran out: they have
// waited longest, so they come first. lease_until is on the database
// clock, like the lease.
const expiredLeaseSQL = `
SELECT ` + candidateCols + `, -1, 0
FROM outbox o
WHERE o.status = 'in_flight' AND o.lease_until < clock_timestamp()
  AND NOT EXISTS (SELECT 1 FROM outbox_rate r
                  WHERE r.channel_id = o.channel_id AND r.bucket = o.endpoint
                    AND r.tat > clock_timestamp() + $2::interval)
ORDER BY o.lease_until
LIMIT $1
FOR UPDATE OF o SKIP LOCKED`

// laneSQL reads up to each lane's quota of due rows, in two index range
// scans per lane: rows with a deadline, earliest first, then rows without
// one by next_attempt_at. The second range ends at the first row not yet
// due, so rows waiting for a retry are never walked.
const laneSQL = `
SELECT ` + candidateCols + `, l.ord, 0
FROM unnest($1::text[], $2::text[], $3::smallint[], $4::int[], $5::int[]) AS l(c, e, p, q, ord)
CROSS JOIN LATERAL (
    SELECT o.* FROM outbox o
    WHERE o.channel_id = l.c AND o.endpoint = l.e AND o.priority = l.p AND o.status IN ('pending', 'retrying')
      AND (o.not_after IS NULL) < true AND o.next_attempt_at <= $6
    ORDER BY (o.not_after IS NULL), coalesce(o.not_after, o.next_attempt_at), o.id
    LIMIT l.q FOR UPDATE OF o SKIP LOCKED) o
UNION ALL
SELECT ` + candidateCols + `, l.ord, 1
FROM unnest($1::text[], $2::text[], $3::smallint[], $4::int[], $5::int[]) AS l(c, e, p, q, ord)
CROSS JOIN LATERAL (
    SELECT o.* FROM outbox o
    WHERE o.channel_id = l.c AND o.endpoint = l.e AND o.priority = l.p AND o.status IN ('pending', 'retrying')
      AND (o.not_after IS NULL) = true AND coalesce(o.not_after, o.next_attempt_at) <= $6
    ORDER BY (o.not_after IS NULL), coalesce(o.not_after, o.next_attempt_at), o.id
    LIMIT l.q FOR UPDATE OF o SKIP LOCKED) o`

// laneRow is a candidate with where it came from.
type laneRow struct {
	OutboxCandidate
	lane   int // index into the lanes read; -1 for an expired lease
	branch int // 0: rows with a deadline, 1: the rest
}

func scanLaneRow(r pgx.CollectableRow) (laneRow, error) {
	var c laneRow
	var body string
	err := r.Scan(&c.ID, &c.ChannelID, &c.Endpoint, &body, &c.RetryKey, &c.Status, &c.Scrubbed,
		&c.Priority, &c.NotAfter, &c.NextAttemptAt, &c.CreatedAt, &c.FirstAttemptAt, &c.Attempts,
		&c.LastStatusCode, &c.MaybeDelivered, &c.Recipient, &c.Following, &c.lane, &c.branch)
	c.Body = []byte(body)
	return c, err
}

// readLanes lists the claimable lanes and reads the database clock.
func readLanes(ctx context.Context, q Querier, p ClaimParams) ([]lane, time.Time, error) {
	var now time.Time
	var ls laneListing
	if err := q.QueryRow(ctx, lanesSQL, lanesArgs(p)...).Scan(ls.dest(&now)...); err != nil {
		return nil, now, fmt.Errorf("listing outbox lanes: %w", err)
	}
	return ls.lanes(), now, nil
}

// lanesArgs are lanesSQL's arguments.
func lanesArgs(p ClaimParams) []any {
	after := LaneKey{}
	if p.AfterLane != nil {
		after = *p.AfterLane
	}
	return []any{maxLanes(p), p.Horizon, after.ChannelID, after.Endpoint, after.Priority, p.AfterLane != nil}
}

// laneListing is lanesSQL's row.
type laneListing struct {
	chans, eps []string
	prios      []int16
	listed     int
	last       LaneKey
}

func (l *laneListing) dest(now *time.Time) []any {
	return []any{now, &l.chans, &l.eps, &l.prios, &l.listed, &l.last.ChannelID, &l.last.Endpoint, &l.last.Priority}
}

func (l *laneListing) lanes() []lane { return toLanes(l.chans, l.eps, l.prios) }

// next is where the next listing starts: after the last lane listed when
// the listing was cut at max, from the first lane otherwise.
func (l *laneListing) next(max int) *LaneKey {
	if l.listed < max {
		return nil
	}
	last := l.last
	return &last
}

func maxLanes(p ClaimParams) int {
	if p.MaxLanes <= 0 {
		return DefaultMaxLanes
	}
	return p.MaxLanes
}

func toLanes(chans, eps []string, prios []int16) []lane {
	lanes := make([]lane, len(chans))
	for i := range chans {
		lanes[i] = lane{ChannelID: chans[i], Endpoint: eps[i], Priority: prios[i]}
	}
	return lanes
}

// laneQuota is how many rows a lane is asked for. Every lane may offer
// twice its equal share, so lanes with fewer due rows leave room for the
// others; replies offer a full batch, since they are never to wait.
func laneQuota(l lane, limit, lanes int) int {
	if l.Endpoint == EndpointReply {
		return limit
	}
	share := (2*limit + lanes - 1) / lanes
	return min(limit, max(share, 8))
}

// laneArgs are laneSQL's arguments for lanes, and each lane's quota.
func laneArgs(lanes []lane, limit int, dbNow time.Time) ([]any, []int32) {
	n := len(lanes)
	chans, eps := make([]string, n), make([]string, n)
	prios, quotas, ords := make([]int16, n), make([]int32, n), make([]int32, n)
	for i, l := range lanes {
		chans[i], eps[i], prios[i] = l.ChannelID, l.Endpoint, l.Priority
		quotas[i], ords[i] = int32(laneQuota(l, limit, n)), int32(i)
	}
	return []any{chans, eps, prios, quotas, ords, dbNow}, quotas
}

// maxHeldLanes bounds the endpoint buckets a claim locks before it reads
// its lanes' rows. Locked up front, a bucket is held even when its lane
// gives the claim no row (its rows not yet due, or taken by another
// replica), and a replica claiming another channel waits for it. With
// more buckets than this the claim reads the rows first and locks only
// what they need, one round trip later.
const maxHeldLanes = 16

// selectCandidates reads the rows one claim considers, ranked, and
// reports whether any lane had more due rows than it offered. When the
// claim's lanes are few and their buckets are all their rows can debit
// (replies, or pushes with no recipient cap), it locks those buckets in
// the round trip that reads the rows (held), so the claim needs no round
// trip of its own to lock them while its rows wait.
func selectCandidates(ctx context.Context, tx batcher, p ClaimParams, pl Planner, next **LaneKey) ([]OutboxCandidate, *heldBuckets, bool, time.Time, error) {
	// Lanes and expired leases in one pipelined round trip.
	var b pgx.Batch
	b.Queue(lanesSQL, lanesArgs(p)...)
	b.Queue(expiredLeaseSQL, p.Limit, p.Horizon)
	br := tx.SendBatch(ctx, &b)
	var dbNow time.Time
	var ls laneListing
	if err := br.QueryRow().Scan(ls.dest(&dbNow)...); err != nil {
		br.Close()
		return nil, nil, false, dbNow, fmt.Errorf("listing outbox lanes: %w", err)
	}
	*next = ls.next(maxLanes(p))
	lanes := ls.lanes()
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, nil, false, dbNow, fmt.Errorf("selecting expired leases: %w", err)
	}
	expired, err := pgx.CollectRows(rows, scanLaneRow)
	if err == nil {
		err = br.Close()
	}
	if err != nil {
		return nil, nil, false, dbNow, fmt.Errorf("reading expired leases: %w", err)
	}
	more := len(expired) >= p.Limit
	var fresh []laneRow
	var held *heldBuckets
	if len(lanes) > 0 && len(expired) < p.Limit {
		var quotas []int32
		if fresh, quotas, held, err = readLaneRows(ctx, tx, p, pl, lanes, expired, dbNow); err != nil {
			return nil, nil, false, dbNow, err
		}
		got := map[[2]int]int{}
		for _, r := range fresh {
			got[[2]int{r.lane, r.branch}]++
		}
		for k, c := range got {
			if c >= int(quotas[k[0]]) {
				more = true
			}
		}
	}
	return rankCandidates(expired, fresh, p.Limit, p.Turn, len(lanes)), held, more || len(expired)+len(fresh) > p.Limit, dbNow, nil
}

// readLaneRows reads the lanes' due rows, after locking the lanes' (and
// the expired leases') buckets when selectCandidates says it may. Locked
// first, the buckets are read with the rows committed by the replica that
// held them before: its claimed rows are no longer due, and the ones it
// left are read rather than skipped.
func readLaneRows(ctx context.Context, tx batcher, p ClaimParams, pl Planner, lanes []lane, expired []laneRow, dbNow time.Time) (
	fresh []laneRow, quotas []int32, held *heldBuckets, err error,
) {
	set := map[RateKey]bool{}
	whole := true
	add := func(channelID, endpoint string) {
		keys, all := pl.LaneKeys(channelID, endpoint)
		whole = whole && all
		for _, k := range keys {
			set[k] = true
		}
	}
	for _, l := range lanes {
		add(l.ChannelID, l.Endpoint)
	}
	for _, r := range expired {
		add(r.ChannelID, r.Endpoint)
	}
	hold := whole && len(set) > 0 && len(set) <= maxHeldLanes
	var b pgx.Batch
	if hold {
		queueBucketLocks(&b, slices.Collect(maps.Keys(set)))
	}
	args, quotas := laneArgs(lanes, p.Limit, dbNow)
	b.Queue(laneSQL, args...)
	if hold {
		b.Queue(`SELECT clock_timestamp()`)
	}
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	if hold {
		held = &heldBuckets{tats: map[RateKey]time.Time{}}
		if err := readBucketLocks(br, held.tats); err != nil {
			return nil, nil, nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("selecting due rows: %w", err)
	}
	if fresh, err = pgx.CollectRows(rows, scanLaneRow); err != nil {
		return nil, nil, nil, fmt.Errorf("reading due rows: %w", err)
	}
	if hold {
		if err := br.QueryRow().Scan(&held.dbNow); err != nil {
			return nil, nil, nil, fmt.Errorf("reading database clock: %w", err)
		}
		held.localNow = time.Now()
	}
	if err := br.Close(); err != nil {
		return nil, nil, nil, fmt.Errorf("reading due rows: %w", err)
	}
	return fresh, quotas, held, nil
}

// rankCandidates orders what the lanes offered and keeps the first limit:
// expired leases first, then by priority (higher first); within a
// priority, rows with a deadline (replies, or not_after set) before the
// rest, earliest deadline first; the rest round-robin across lanes (every
// lane's first row, then every lane's second, ...), so a channel with a
// backlog shares the batch with a channel that has one fresh row.
func rankCandidates(expired, fresh []laneRow, limit, turn, lanes int) []OutboxCandidate {
	type ranked struct {
		laneRow
		deadline bool
		key      time.Time
		pos      int
	}
	rs := make([]ranked, 0, len(fresh))
	pos := map[int]int{}
	for _, r := range fresh {
		x := ranked{laneRow: r}
		switch {
		case r.NotAfter != nil:
			x.deadline, x.key = true, *r.NotAfter
		case r.Endpoint == EndpointReply:
			// The sender's reply token validity runs from created_at.
			x.deadline, x.key = true, r.CreatedAt
		}
		if !x.deadline {
			x.pos = pos[r.lane]
			pos[r.lane]++
		}
		rs = append(rs, x)
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if a.deadline != b.deadline {
			return a.deadline
		}
		if a.deadline {
			if !a.key.Equal(b.key) {
				return a.key.Before(b.key)
			}
			return a.ID < b.ID
		}
		if a.pos != b.pos {
			return a.pos < b.pos
		}
		return rotate(a.lane, turn, lanes) < rotate(b.lane, turn, lanes)
	})
	out := make([]OutboxCandidate, 0, min(limit, len(expired)+len(rs)))
	for _, r := range expired {
		if len(out) == limit {
			return out
		}
		out = append(out, r.OutboxCandidate)
	}
	for _, r := range rs {
		if len(out) == limit {
			break
		}
		out = append(out, r.OutboxCandidate)
	}
	return out
}

// rotate is lane's place in a claim's round when the round starts at
// lane turn (mod lanes). Lanes are listed in key order, so without the
// turn the first lane would win every tie: a claim of one row, the usual
// size when sends free their slots one by one, would always go to the
// same channel while others wait behind its backlog.
func rotate(lane, turn, lanes int) int {
	if lanes <= 0 || lane < 0 {
		return lane
	}
	turn %= lanes
	if turn < 0 {
		turn += lanes
	}
	return (lane - turn + lanes) % lanes
}

// ExplainClaim runs the statements of one claim under EXPLAIN (ANALYZE,
// BUFFERS) in a transaction it rolls back, and returns their plans: the
// evidence that a claim's cost does not grow with the backlog. They are
// planned as a sender plans them: with its settings (outboxPlanSettings),
// from prepared statements, so a setting that changes which plan the
// sender gets (a generic one, say) shows here too.
func ExplainClaim(ctx context.Context, db Beginner, p ClaimParams) (lanesPlan, rowsPlan string, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, outboxPlanSettings); err != nil {
		return "", "", err
	}
	explain := func(name, sql string, args ...any) (string, error) {
		// EXPLAIN EXECUTE takes no bound parameters: the values go as
		// literals, in Postgres's text form of each parameter's type.
		conn := tx.Conn()
		sd, err := conn.Prepare(ctx, name, sql)
		if err != nil {
			return "", err
		}
		defer conn.Deallocate(context.Background(), name)
		if len(sd.ParamOIDs) != len(args) {
			return "", fmt.Errorf("%s takes %d parameters, got %d", name, len(sd.ParamOIDs), len(args))
		}
		lits := make([]string, len(args))
		for i, oid := range sd.ParamOIDs {
			text, err := conn.TypeMap().Encode(oid, pgtype.TextFormatCode, args[i], nil)
			if err != nil {
				return "", err
			}
			lits[i] = "'" + strings.ReplaceAll(string(text), "'", "''") + "'"
		}
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) EXECUTE "+name+"("+strings.Join(lits, ", ")+")")
		if err != nil {
			return "", err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		return strings.Join(lines, "\n"), err
	}
	if lanesPlan, err = explain("linepipe_explain_lanes", lanesSQL, lanesArgs(p)...); err != nil {
		return "", "", fmt.Errorf("explaining lanes: %w", err)
	}
	lanes, dbNow, err := readLanes(ctx, tx, p)
	if err != nil {
		return "", "", err
	}
	args, _ := laneArgs(lanes, p.Limit, dbNow)
	if rowsPlan, err = explain("linepipe_explain_lane_rows", laneSQL, args...); err != nil {
		return "", "", fmt.Errorf("explaining lane rows: %w", err)
	}
	return lanesPlan, rowsPlan, nil
}
