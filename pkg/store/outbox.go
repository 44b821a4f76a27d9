package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Outbox endpoints: the Messaging API send endpoint a row goes to.
const (
	EndpointReply      = "reply"
	EndpointPush       = "push"
	EndpointMulticast  = "multicast"
	EndpointNarrowcast = "narrowcast"
	EndpointBroadcast  = "broadcast"
)

// Outbox statuses. docs/OUTBOX.md says what each means and what an
// operator may do in it.
const (
	OutboxPending   = "pending"
	OutboxInFlight  = "in_flight"
	OutboxRetrying  = "retrying"
	OutboxDelivered = "delivered"
	OutboxFailed    = "failed"
	OutboxExpired   = "expired"
	OutboxSkipped   = "skipped"
	OutboxCancelled = "cancelled"
	OutboxUncertain = "uncertain"
)

// KnownEndpoint reports whether e is an endpoint the outbox sends to.
func KnownEndpoint(e string) bool {
	switch e {
	case EndpointReply, EndpointPush, EndpointMulticast, EndpointNarrowcast, EndpointBroadcast:
		return true
	}
	return false
}

// ErrUnknownEndpoint is returned by EnqueueOutbox for an endpoint the
// sender would refuse anyway.
var ErrUnknownEndpoint = errors.New("store: unknown outbox endpoint")

// OutboxInsert is one message request for the sender. Body is the exact
// JSON body LINE expects; it is stored and sent byte for byte.
type OutboxInsert struct {
	ChannelID       string
	Endpoint        string
	Body            []byte
	SourceMessageID string     // the user message it derives from, so an unsend can scrub it
	NotAfter        *time.Time // never send after this (reply: the token's validity); rows with one go first
	Priority        int16      // higher goes first; 0 by default
}

// EnqueueOutbox inserts a row for the sender and returns its id. Bot
// logic calls it inside its own transaction, so the message is queued if
// and only if the work that produced it commits; the insert's trigger
// wakes the senders when it does.
func EnqueueOutbox(ctx context.Context, q Querier, in OutboxInsert) (int64, error) {
	if !KnownEndpoint(in.Endpoint) {
		return 0, fmt.Errorf("enqueueing %q: %w", in.Endpoint, ErrUnknownEndpoint)
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO outbox (channel_id, endpoint, body, source_message_id, not_after, priority)
		VALUES ($1, $2, $3::text::json, nullif($4, ''), $5, $6) RETURNING id`,
		in.ChannelID, in.Endpoint, string(in.Body), in.SourceMessageID, in.NotAfter, in.Priority).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("enqueueing %s to channel %s: %w", in.Endpoint, in.ChannelID, err)
	}
	return id, nil
}

// EnqueueOutboxRows inserts rows for the sender in one statement: the
// worker queues what a transaction's handlers enqueue and writes it just
// before commit, where a statement per reply was the largest share of
// Postgres time per webhook under load.
func EnqueueOutboxRows(ctx context.Context, q Querier, ins []OutboxInsert) error {
	args, err := outboxRowsArgs(ins)
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, enqueueOutboxRowsSQL, args...); err != nil {
		return fmt.Errorf("enqueueing %d outbox rows: %w", len(ins), err)
	}
	return nil
}

const enqueueOutboxRowsSQL = `INSERT INTO outbox (channel_id, endpoint, body, source_message_id, not_after, priority)
	SELECT c, e, b::json, nullif(s, ''), na, p
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::smallint[]) AS t(c, e, b, s, na, p)`

// outboxRowsArgs is enqueueOutboxRowsSQL's arguments for ins.
func outboxRowsArgs(ins []OutboxInsert) ([]any, error) {
	n := len(ins)
	chans, eps, bodies, sources := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	notAfter, prios := make([]*time.Time, n), make([]int16, n)
	for i, in := range ins {
		if !KnownEndpoint(in.Endpoint) {
			return nil, fmt.Errorf("enqueueing %q: %w", in.Endpoint, ErrUnknownEndpoint)
		}
		chans[i], eps[i], bodies[i], sources[i] = in.ChannelID, in.Endpoint, string(in.Body), in.SourceMessageID
		notAfter[i], prios[i] = in.NotAfter, in.Priority
	}
	return []any{chans, eps, bodies, sources, notAfter, prios}, nil
}

// OutboxCandidate is a due row as a claim sees it, before it is claimed.
type OutboxCandidate struct {
	ID             int64
	ChannelID      string
	Endpoint       string
	Body           []byte
	RetryKey       uuid.UUID
	Status         string // pending, retrying, or in_flight with an expired lease
	Scrubbed       bool
	Priority       int16
	NotAfter       *time.Time
	NextAttemptAt  time.Time
	CreatedAt      time.Time
	FirstAttemptAt *time.Time
	Attempts       int
	LastStatusCode int
	MaybeDelivered bool
	Recipient      string // push "to", "" otherwise
	Following      *bool  // followers.following for Recipient; nil when unknown
}

// RateKey names one shared rate bucket: a channel's endpoint ("push") or
// a recipient ("to:U...").
type RateKey struct{ ChannelID, Bucket string }

// OutboxFinish ends a candidate without calling LINE (invalid, expired,
// skipped).
type OutboxFinish struct {
	ID     int64
	Status string
	Error  string
}

// OutboxReserve claims a candidate for sending at SendAt.
type OutboxReserve struct {
	ID     int64
	SendAt time.Time
}

// ClaimPlan is what a Planner decided for one batch. Postponed rows get
// next_attempt_at = SendAt (no rate capacity before then); candidates in
// no list stay untouched.
type ClaimPlan struct {
	Finish   []OutboxFinish
	Send     []OutboxReserve
	Postpone []OutboxReserve
	Tats     map[RateKey]time.Time // new theoretical arrival times
}

// Planner decides, inside the claim transaction, what happens to each
// candidate. Keys names the buckets a send of c would debit (nil when c
// will not be sent); Plan gets those buckets' current tats, locked for the
// rest of the transaction, and the database clock. Every time decision
// (due, deadlines, key age, slots) is made on the database clock, so
// replicas whose clocks drift still agree.
//
// LaneKeys names the buckets every send from a lane (channel, endpoint)
// debits, whatever its rows hold (its endpoint's bucket), and whether they
// are all its rows can debit (no recipient's bucket). When they are, for
// every lane of a claim with few lanes, the claim locks them before it
// reads the rows, in the same round trip, and saves one.
type Planner interface {
	LaneKeys(channelID, endpoint string) (keys []RateKey, all bool)
	Keys(dbNow time.Time, c OutboxCandidate) []RateKey
	Plan(dbNow time.Time, cands []OutboxCandidate, tats map[RateKey]time.Time) ClaimPlan
}

// ClaimParams bound one claim.
type ClaimParams struct {
	Limit   int
	Owner   string // claimed_by, for operators
	Lease   time.Duration
	Horizon time.Duration // endpoints whose bucket is booked further ahead are not read
	// MaxLanes caps the lanes (channel, endpoint, priority) one claim
	// reads from; 0 means DefaultMaxLanes.
	MaxLanes int
	// AfterLane is where the listing of lanes starts: the previous
	// claim's NextLanes. Nil starts at the first lane.
	AfterLane *LaneKey
	// Turn rotates which lane wins a tie (equal priority, no deadline,
	// equal place in its lane): pass a number that grows by one per
	// claim, so lanes take turns even when a claim takes one row.
	Turn int
}

// OutboxClaimed is a row this claim owns until its lease ends.
type OutboxClaimed struct {
	OutboxCandidate
	ClaimID uuid.UUID
	SendAt  time.Time
	DBNow   time.Time // database clock when claimed; SendAt is on it
	// SendAtLocal is SendAt on this process's monotonic clock: the local
	// instant the database clock was read, plus the wait. It is taken as
	// the clock reading returns, so it is never early and late only by
	// that one-way latency, not by the rest of the transaction.
	SendAtLocal time.Time
}

// ClaimResult lists what one claim did.
type ClaimResult struct {
	Claimed  []OutboxClaimed
	Finished []OutboxFinish
	Seen     int // candidates considered (after the fair cut)
	// More reports that some lane had at least as many due rows as it
	// was asked for, so another claim right away will find work.
	More bool
	// NextDue is the earliest next_attempt_at a postponed row was given
	// (zero when none): the sender need not poll before it.
	NextDue time.Time
	// DBNow is the database clock when the claim began.
	DBNow time.Time
	// NextLanes is where the next claim's listing of lanes should start
	// (ClaimParams.AfterLane): after the last lane this claim listed when
	// there were more than MaxLanes, so every lane takes its turn; nil
	// when this claim listed every lane.
	NextLanes *LaneKey
	// Took is the time from reading the database clock for the slots to
	// the commit's return: what the planner's lead (how far after the
	// database's now it gives a limited row its first slot) has to cover.
	Took time.Duration
}

// Beginner starts transactions (a pool or a connection).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ClaimOutbox claims up to p.Limit due rows in one transaction. Rows
// whose lease expired come first; then each lane (channel, endpoint,
// priority) offers a fair share of its due rows, which are ranked by
// priority, deadline and round-robin across lanes (see rankCandidates) so
// that replies never wait behind pushes and no channel's backlog delays
// another channel. Rows are locked with FOR UPDATE SKIP LOCKED, so
// replicas never take the same row; the rate buckets they would debit are
// locked in a fixed order, so the planner's slots are globally
// consistent; then rows are flipped to in_flight with a fresh claim_id
// (the fencing token) or finished. Every time is the database's.
func ClaimOutbox(ctx context.Context, db Acquirer, p ClaimParams, pl Planner) (ClaimResult, error) {
	res, err := claimOutbox(ctx, db, p, pl)
	if err != nil {
		return ClaimResult{}, fmt.Errorf("claiming outbox rows: %w", err)
	}
	return res, nil
}

// claimOutbox is ClaimOutbox in three round trips: BEGIN with the lane
// listing, the lanes' rows, and the writes with COMMIT. A claim whose
// rows debit rate buckets locks them in a fourth before its writes,
// unless it could lock them with its rows (selectCandidates).
func claimOutbox(ctx context.Context, db Acquirer, p ClaimParams, pl Planner) (ClaimResult, error) {
	var res ClaimResult
	tx, done, err := beginOutboxTx(ctx, db)
	if err != nil {
		return res, err
	}
	defer done()
	cands, held, more, dbNow, err := selectCandidates(ctx, tx, p, pl, &res.NextLanes)
	if err != nil {
		return res, err
	}
	res.Seen, res.More, res.DBNow = len(cands), more, dbNow
	if len(cands) == 0 {
		return res, tx.commit(ctx, nil)
	}
	slotNow, localNow, tats, err := lockBuckets(ctx, tx, dbNow, cands, pl, held)
	if err != nil {
		return res, err
	}
	plan := pl.Plan(slotNow, cands, tats)
	// The writes and the commit go in one round trip: the buckets stay
	// locked until commit, so every round trip here is time other claims
	// wait.
	var w writes
	applyFinish(&w, plan.Finish)
	claimID := uuid.New()
	applyReserve(&w, p, claimID, plan.Send)
	applyPostpone(&w, plan.Postpone)
	saveTats(&w, plan.Tats)
	if err := tx.commit(ctx, &w); err != nil {
		return res, err
	}
	byID := make(map[int64]int, len(cands))
	for i, c := range cands {
		byID[c.ID] = i
	}
	res.Claimed = make([]OutboxClaimed, 0, len(plan.Send))
	for _, r := range plan.Send {
		res.Claimed = append(res.Claimed, OutboxClaimed{OutboxCandidate: cands[byID[r.ID]], ClaimID: claimID,
			SendAt: r.SendAt, DBNow: slotNow, SendAtLocal: localNow.Add(max(r.SendAt.Sub(slotNow), 0))})
	}
	for _, r := range plan.Postpone {
		if res.NextDue.IsZero() || r.SendAt.Before(res.NextDue) {
			res.NextDue = r.SendAt
		}
	}
	res.Finished = plan.Finish
	if len(res.Claimed) > 0 {
		res.Took = time.Since(localNow)
	}
	return res, nil
}

// heldBuckets are the rate buckets a claim locked before reading its
// rows, and the database clock read after those locks.
type heldBuckets struct {
	tats            map[RateKey]time.Time
	dbNow, localNow time.Time
}

// lockBuckets locks every bucket the batch needs that the claim does not
// hold yet, creating missing ones, and reads the database clock after
// the locks.
//
// With nothing left to lock, the clock reading that followed the last
// locks (or, with no bucket at all, the lane listing's) stands: there is
// no competing reservation it could precede, and a round trip is saved.
func lockBuckets(ctx context.Context, tx batcher, claimNow time.Time, cands []OutboxCandidate, pl Planner, held *heldBuckets) (dbNow, localNow time.Time, tats map[RateKey]time.Time, err error) {
	tats = map[RateKey]time.Time{}
	dbNow, localNow = claimNow, time.Now()
	if held != nil {
		maps.Copy(tats, held.tats)
		dbNow, localNow = held.dbNow, held.localNow
	}
	set := map[RateKey]bool{}
	for _, c := range cands {
		for _, k := range pl.Keys(claimNow, c) {
			if _, ok := tats[k]; !ok {
				set[k] = true
			}
		}
	}
	if len(set) == 0 {
		return dbNow, localNow, tats, nil
	}
	var b pgx.Batch
	queueBucketLocks(&b, slices.Collect(maps.Keys(set)))
	b.Queue(`SELECT clock_timestamp()`)
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	if err := readBucketLocks(br, tats); err != nil {
		return dbNow, localNow, nil, err
	}
	if err := br.QueryRow().Scan(&dbNow); err != nil {
		return dbNow, localNow, nil, fmt.Errorf("reading database clock: %w", err)
	}
	localNow = time.Now()
	if err := br.Close(); err != nil {
		return dbNow, localNow, nil, fmt.Errorf("locking rate buckets: %w", err)
	}
	return dbNow, localNow, tats, nil
}

// queueBucketLocks queues what creates keys' missing buckets and locks
// them all, sorted, so two replicas never deadlock on them: two
// statements, read by readBucketLocks. A clock reading queued after them
// follows the locks, since pipelined statements run in order: a slot
// computed from an earlier reading could fall before a competing
// replica's last slot.
func queueBucketLocks(b *pgx.Batch, keys []RateKey) {
	chans := make([]string, len(keys))
	buckets := make([]string, len(keys))
	for i, k := range keys {
		chans[i], buckets[i] = k.ChannelID, k.Bucket
	}
	b.Queue(`INSERT INTO outbox_rate (channel_id, bucket, tat)
		SELECT c, b, 'epoch' FROM unnest($1::text[], $2::text[]) AS k(c, b) ORDER BY c, b
		ON CONFLICT DO NOTHING`, chans, buckets)
	b.Queue(`SELECT r.channel_id, r.bucket, r.tat FROM outbox_rate r
		JOIN unnest($1::text[], $2::text[]) AS k(c, b) ON r.channel_id = k.c AND r.bucket = k.b
		ORDER BY r.channel_id, r.bucket FOR UPDATE OF r`, chans, buckets)
}

// readBucketLocks reads queueBucketLocks' results into tats.
func readBucketLocks(br pgx.BatchResults, tats map[RateKey]time.Time) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("creating rate buckets: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("locking rate buckets: %w", err)
	}
	var k RateKey
	var tat time.Time
	if _, err := pgx.ForEachRow(rows, []any{&k.ChannelID, &k.Bucket, &tat}, func() error {
		tats[k] = tat
		return nil
	}); err != nil {
		return fmt.Errorf("reading rate buckets: %w", err)
	}
	return nil
}

// writes are statements sent together in one pipelined round trip.
type writes struct {
	b      pgx.Batch
	labels []string
}

func (w *writes) add(label, sql string, args ...any) {
	w.b.Queue(sql, args...)
	w.labels = append(w.labels, label)
}

// addQueued adds a statement queued elsewhere; its result function, if
// it has one, reads its result.
func (w *writes) addQueued(label string, qq *pgx.QueuedQuery) {
	w.b.QueuedQueries = append(w.b.QueuedQueries, qq)
	w.labels = append(w.labels, label)
}

// commit sends w's statements (if any) and COMMIT in one round trip.
func (t *pipeTx) commit(ctx context.Context, w *writes) error {
	if w == nil {
		w = &writes{}
	}
	w.add("committing", "commit")
	br := t.SendBatch(ctx, &w.b)
	defer br.Close()
	for i, l := range w.labels {
		var err error
		if fn := w.b.QueuedQueries[i].Fn; fn != nil {
			err = fn(br)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", l, err)
		}
	}
	return br.Close()
}

func applyFinish(b *writes, fs []OutboxFinish) {
	if len(fs) == 0 {
		return
	}
	ids := make([]int64, len(fs))
	statuses := make([]string, len(fs))
	errs := make([]string, len(fs))
	for i, f := range fs {
		ids[i], statuses[i], errs[i] = f.ID, f.Status, f.Error
	}
	b.add("finishing unsendable rows", `UPDATE outbox o SET status = f.status, last_error = f.error, finished_at = clock_timestamp(),
			maybe_delivered = o.maybe_delivered OR o.status = 'in_flight',
			claim_id = NULL, claimed_by = NULL, lease_until = NULL
		FROM unnest($1::bigint[], $2::text[], $3::text[]) AS f(id, status, error)
		WHERE o.id = f.id AND o.id = ANY($1)`, ids, statuses, errs)
}

// applyReserve flips reserved rows to in_flight. The attempt is counted
// and first_attempt_at set before the request goes out, so a sender that
// dies mid-request still leaves the retry key's age on record. A row taken
// over from an expired lease may have reached LINE: maybe_delivered.
func applyReserve(b *writes, p ClaimParams, claimID uuid.UUID, rs []OutboxReserve) {
	if len(rs) == 0 {
		return
	}
	ids := make([]int64, len(rs))
	at := make([]time.Time, len(rs))
	for i, r := range rs {
		ids[i], at[i] = r.ID, r.SendAt
	}
	b.add("claiming rows", `UPDATE outbox o SET status = 'in_flight', claim_id = $3, claimed_by = $4,
			send_at = r.send_at, lease_until = greatest(r.send_at, clock_timestamp()) + $5::interval,
			maybe_delivered = o.maybe_delivered OR o.status = 'in_flight',
			attempts = o.attempts + 1, first_attempt_at = coalesce(o.first_attempt_at, r.send_at),
			last_attempt_at = r.send_at
		FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, send_at)
		WHERE o.id = r.id AND o.id = ANY($1)`, ids, at, claimID, p.Owner, p.Lease)
}

func applyPostpone(b *writes, rs []OutboxReserve) {
	if len(rs) == 0 {
		return
	}
	ids := make([]int64, len(rs))
	at := make([]time.Time, len(rs))
	for i, r := range rs {
		ids[i], at[i] = r.ID, r.SendAt
	}
	// A row taken from an expired lease leaves in_flight, so it is not
	// read again before it is due.
	b.add("postponing rate-limited rows", `UPDATE outbox o SET next_attempt_at = r.at,
			status = CASE WHEN o.status = 'in_flight' THEN 'retrying' ELSE o.status END,
			maybe_delivered = o.maybe_delivered OR o.status = 'in_flight',
			claim_id = NULL, claimed_by = NULL, lease_until = NULL
		FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, at) WHERE o.id = r.id AND o.id = ANY($1)`, ids, at)
}

func saveTats(b *writes, tats map[RateKey]time.Time) {
	if len(tats) == 0 {
		return
	}
	var chans, buckets []string
	var at []time.Time
	for k, t := range tats {
		chans, buckets, at = append(chans, k.ChannelID), append(buckets, k.Bucket), append(at, t)
	}
	// An upsert, not an update: the retention janitor may have deleted an
	// idle per-recipient bucket between lockBuckets' insert and its lock,
	// and the slots reserved here must be recorded all the same. greatest
	// keeps a tat from ever moving back.
	b.add("saving rate buckets", `INSERT INTO outbox_rate AS r (channel_id, bucket, tat)
		SELECT c, b, tat FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(c, b, tat) ORDER BY c, b
		ON CONFLICT (channel_id, bucket) DO UPDATE SET tat = greatest(r.tat, excluded.tat)`, chans, buckets, at)
}
