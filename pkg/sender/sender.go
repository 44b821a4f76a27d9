// Package sender delivers the outbox to the LINE Messaging API exactly
// once: rows are claimed under a fenced lease, each keyed request carries
// the row's X-Line-Retry-Key on every attempt, and every replica draws
// rate-limit slots from buckets shared in Postgres. See docs/OUTBOX.md.
package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/store"
)

// leaseSafety is how long before its lease ends a claim stops working on
// a row, covering commit latency and clock drift between the sender and
// the database that measured the lease.
const leaseSafety = 5 * time.Second

// claimLead is how far ahead of the database's now a claim starts its
// slots: twice the recent time from its clock reading to its commit's
// return (an exponentially weighted average), at least the late
// tolerance and at most half the horizon. Slots given for "now" would be
// missed by every row of a batch by the time the commit returned, and
// each would take a fresh slot in turn.
func (s *Sender) claimLead() time.Duration {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	return min(max(2*s.claimTook+2*s.startLate, s.lateTolerance()), s.cfg.RateHorizon/2)
}

// urgentLead is the lead of a row with a deadline: the claim's recent
// commit time plus half the late tolerance, so the row starts about on
// its slot unless the commit runs more than that over its average; a row
// late past the tolerance costs a shift or a fresh slot, a transaction
// each. Rows with no deadline take claimLead, twice as long and more: it
// also covers how late deliveries have lately been reaching their slots,
// so that every row of a large claim on a busy host is on time.
func (s *Sender) urgentLead() time.Duration {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	return min(s.claimTook+s.lateTolerance()/2, s.cfg.RateHorizon/2)
}

// observeStart folds how late a claimed row's delivery reached its slot
// into claimLead: on a busy host goroutines wake late, and a lead that
// covers only the claim's commit would leave whole claims late, each row
// then taking a fresh slot on the bucket's lock, which is dearer than
// starting a few milliseconds later.
func (s *Sender) observeStart(late time.Duration) {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	s.startLate += (max(late, 0) - s.startLate) / 16
}

func (s *Sender) observeClaim(took time.Duration) {
	if took <= 0 {
		return
	}
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	s.claimTook += (took - s.claimTook) / 4
}

// claimCooldown is the pause between claims while a backlog drains.
const claimCooldown = 5 * time.Millisecond

// Sender drains the outbox. Run it on any number of replicas.
type Sender struct {
	cfg    Config
	db     *pgxpool.Pool
	tokens *tokenSource
	m      *metrics
	log    *zap.Logger
	calls  *zap.Logger   // the line per API call (ops.AccessLog)
	slots  chan struct{} // one per request in flight
	// unwritten holds one per completion handed in and not yet written.
	unwritten chan struct{}
	wg        sync.WaitGroup
	done      *completer

	leadMu    sync.Mutex
	claimTook time.Duration  // recent claim latency, for claimLead
	startLate time.Duration  // recent lateness of deliveries reaching their slot, for claimLead
	turn      atomic.Int64   // claims so far: whose lane goes first (store.ClaimParams.Turn)
	nextLanes *store.LaneKey // where the next claim lists lanes from (store.ClaimResult.NextLanes); the claim loop alone uses it
	reslots   chan reslotReq // late rows waiting for fresh slots (runReslots)
	// now is the clock awaitSlot checks slots against: time.Now, except
	// in tests that set it ahead to play a replica so overloaded that it
	// reaches every slot late, which no real timing does reliably.
	now func() time.Time
}

// New builds a Sender; cfg's zero values take the defaults.
func New(cfg Config, db *pgxpool.Pool) (*Sender, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sender config: %w", err)
	}
	s := &Sender{cfg: cfg, db: db, m: newMetrics(cfg.Registerer), log: cfg.Log,
		calls:     ops.AccessLog(cfg.Log),
		slots:     make(chan struct{}, cfg.Concurrency),
		unwritten: make(chan struct{}, cfg.Concurrency), reslots: make(chan reslotReq), now: time.Now}
	s.done = newCompleter(db, cfg.Concurrency, s.m, func() int { return len(s.slots) })
	lookup := func(ctx context.Context, id string) (store.Channel, error) {
		c, err := store.GetChannel(ctx, db, id)
		if err != nil {
			return c, err
		}
		return c.Opened(cfg.Keys)
	}
	s.tokens = newTokenSource(lookup, cfg.HTTPClient, cfg.BaseURL, cfg.Clock, s.logTokenCall)
	return s, nil
}

// Run claims and sends until ctx ends. Then it stops claiming, lets every
// claimed row finish its request and records the result, and returns.
// Sends do not use ctx: a request cut off mid-flight would leave a row
// whose fate only a later 409 can tell.
//
// It claims again at once while lanes have more due rows, when a
// notification says a row was committed, when a postponed row falls due,
// and otherwise every PollInterval, the fallback for a notification lost
// with a dropped connection.
func (s *Sender) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.done.run(); close(done) }()
	rctx, stopReslots := context.WithCancel(context.Background())
	reslotsDone := make(chan struct{})
	go func() { s.runReslots(rctx); close(reslotsDone) }()
	defer func() {
		s.wg.Wait() // every delivery has handed in its completion
		stopReslots()
		<-reslotsDone
		s.done.close()
		<-done
		s.tokens.wait()
	}()
	wake := make(chan struct{}, 1)
	lctx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	go s.listen(lctx, wake)

	backoff := s.cfg.PollInterval
	for {
		n := s.reserve(ctx)
		if n == 0 {
			return nil
		}
		res, err := s.claimThrough(ctx, n)
		lastClaim := time.Now()
		for i := len(res.Claimed); i < n; i++ {
			<-s.slots
		}
		wait := s.cfg.PollInterval
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			// Database trouble: back off (to 5s) so a restart or failover
			// is not met with a storm of claims and log lines.
			s.log.Warn("claiming outbox rows", zap.Error(err), zap.Duration("retry_in", backoff))
			wait = backoff
			backoff = min(2*backoff, max(5*time.Second, s.cfg.PollInterval))
		case res.More || res.Seen >= n:
			// More rows are due now. A short pause lets sends finish and
			// free their slots, so the next claim takes a batch rather
			// than the one slot just freed: claims hold the channel's
			// rate buckets, and many tiny ones would contend for them.
			// A full batch means a backlog: with another batch of slots
			// already free there is nothing to wait for. Smaller claims
			// keep the pause, or two replicas' claims of a few rows each
			// take turns on the rate bucket's lock without a break.
			backoff = s.cfg.PollInterval
			if n == s.cfg.BatchSize && len(res.Claimed) == n && cap(s.slots)-len(s.slots) >= s.cfg.BatchSize {
				continue
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(claimCooldown):
			}
			continue
		default:
			backoff = s.cfg.PollInterval
			if !res.NextDue.IsZero() {
				wait = min(wait, max(res.NextDue.Sub(res.DBNow), time.Millisecond))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			s.m.wakeups.Inc()
			// Under load every worker commit notifies, and every replica
			// wakes for each: claiming at once would be hundreds of
			// claims a second, most finding nothing the other replica
			// had not taken. A notification that follows a claim by
			// less than claimCooldown waits out the rest, and the next
			// claim takes whatever gathered meanwhile.
			if d := claimCooldown - time.Since(lastClaim); d > 0 {
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-time.After(d):
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// reserve blocks until at least one request slot is free and takes up to
// BatchSize of them, so a claim never takes rows it cannot start at once
// (a claimed row waiting for a worker would miss its rate slot).
func (s *Sender) reserve(ctx context.Context) int {
	select {
	case <-ctx.Done():
		return 0
	case s.slots <- struct{}{}:
	}
	if ctx.Err() != nil {
		// Both were ready and select took the slot: the stop wins. A
		// claim is not cancelled by the stop (claimThrough), so none
		// may start after it.
		<-s.slots
		return 0
	}
	n := 1
	for n < s.cfg.BatchSize {
		select {
		case s.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// claimBound bounds a claim that a stop no longer cancels. A claim takes
// milliseconds; the bound only matters against a stalled Postgres, and
// LongestStop counts it.
const claimBound = 5 * time.Second

// claimThrough is claim, run to its end even when ctx ends meanwhile.
// The claim's writes and its COMMIT go in one round trip: cancelled while
// that is on the wire, Postgres may commit rows in_flight whose claim
// the sender never read, so none would be sent until their lease ended
// (with default settings a minute, past a reply token's life). Run to its
// end, the rows it claimed are delivered before Run returns.
func (s *Sender) claimThrough(ctx context.Context, n int) (store.ClaimResult, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimBound)
	defer cancel()
	return s.claim(cctx, n)
}

// claim takes up to n rows and starts a delivery for each one claimed.
func (s *Sender) claim(ctx context.Context, n int) (store.ClaimResult, error) {
	// The planner applies the lead, only to rows whose endpoint is limited.
	pl := &planner{cfg: &s.cfg, lead: s.claimLead(), urgentLead: s.urgentLead()}
	start := time.Now()
	res, err := store.ClaimOutbox(ctx, s.db, store.ClaimParams{
		Limit: n, Owner: s.cfg.Owner, Lease: s.cfg.Lease, Horizon: s.cfg.RateHorizon,
		Turn: int(s.turn.Add(1)), AfterLane: s.nextLanes,
	}, pl)
	s.nextLanes = res.NextLanes
	if err != nil {
		return res, err
	}
	if len(res.Claimed) > 0 || len(res.Finished) > 0 {
		// Only claims that took rows: with several replicas most claims
		// a notification starts find nothing (another replica took the
		// rows), and their single quick round trip would hide the
		// claims that rows wait for.
		s.m.claimTime.Observe(time.Since(start).Seconds())
	}
	s.observeClaim(res.Took)
	s.m.batch.Observe(float64(len(res.Claimed) + len(res.Finished)))
	for _, f := range res.Finished {
		s.m.rows.WithLabelValues(f.Status).Inc()
	}
	if len(res.Finished) > 0 || len(res.Claimed) > 0 {
		if ce := s.log.Check(zap.DebugLevel, "claimed outbox rows"); ce != nil {
			var oldest time.Duration
			for _, c := range res.Claimed {
				oldest = max(oldest, res.DBNow.Sub(c.CreatedAt))
			}
			ce.Write(zap.Int("seen", res.Seen), zap.Int("claimed", len(res.Claimed)),
				zap.Int("finished_without_call", len(res.Finished)), zap.Duration("oldest_waited", oldest))
		}
	}
	g := newClaimShift(res.Claimed, pl)
	for _, row := range res.Claimed {
		s.wg.Add(1)
		go s.deliver(row, pl, g)
	}
	return res, nil
}

// deliver makes one attempt for a claimed row and records it.
func (s *Sender) deliver(row store.OutboxClaimed, pl *planner, g *claimShift) {
	defer s.wg.Done()
	if !s.try(row, pl, g) {
		<-s.slots // handed back or lost: nothing to record
	}
}

// try makes the attempt and reports whether it handed in a completion
// (which frees the row's request slot; see complete).
func (s *Sender) try(row store.OutboxClaimed, pl *planner, g *claimShift) bool {
	target := row.SendAtLocal
	if row.LastStatusCode == http.StatusUnauthorized {
		s.tokens.Recheck(row.ChannelID)
	}
	// A token fetch is one HTTP call, bounded as a send is: LongestSend
	// counts it within the request timeout.
	token, err := s.tokens.GetBy(sendDeadline(s.cfg, target, time.Now()), row.ChannelID)
	if err != nil {
		status := store.OutboxRetrying
		if errors.Is(err, ErrUnknownChannel) {
			status = store.OutboxFailed
		}
		s.complete(row, outcome{Status: status, Backoff: true, Error: err.Error()}, apiResponse{}, nil)
		return true
	}
	target, ok := s.awaitSlot(row, target, pl, g)
	if !ok {
		return false
	}
	// The deadline is on the database clock; SendAtLocal maps SendAt onto
	// this process's monotonic clock.
	if dl := pl.deadline(row.OutboxCandidate); dl != nil && !time.Now().Before(row.SendAtLocal.Add(dl.Sub(row.SendAt))) {
		status, reason := pastDeadline(row.OutboxCandidate, *dl)
		s.complete(row, outcome{Status: status, Error: reason}, apiResponse{}, nil)
		return true
	}
	ctx, cancel := context.WithDeadline(context.Background(), sendDeadline(s.cfg, target, time.Now()))
	defer cancel()
	s.attempt(ctx, row, token)
	return true
}

// sendDeadline is when a send whose slot is target, starting at now,
// gives up. Never past the lease, less leaseSafety: after it another
// replica may take the row and send it again. The request's own timeout
// goes in the same deadline: the client then finds a context that ends
// first and adds no second one (a context and a timer per send).
func sendDeadline(cfg Config, target, now time.Time) time.Time {
	return earliest(target.Add(cfg.Lease-leaseSafety), now.Add(cfg.RequestTimeout))
}

// earliest is the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// attempt calls LINE once for row, logs the call and records its outcome.
func (s *Sender) attempt(ctx context.Context, row store.OutboxClaimed, token string) {
	key := ""
	if usesRetryKey(row.Endpoint) {
		key = row.RetryKey.String()
	}
	req, err := messageRequest(ctx, s.cfg.BaseURL, row.Endpoint, row.Body, key)
	if err != nil {
		s.complete(row, outcome{Status: store.OutboxFailed, Error: err.Error()}, apiResponse{}, nil)
		return
	}
	calledAt, start := s.cfg.Clock(), time.Now()
	s.m.sendDelay.WithLabelValues(row.Endpoint).Observe(sinceCreated(row, start).Seconds())
	resp, callErr := do(ctx, s.cfg.HTTPClient, req, token)
	took := time.Since(start)

	maybe := row.MaybeDelivered || row.Status == store.OutboxInFlight
	out := classify(row.OutboxCandidate, maybe, resp, callErr)
	if out.RefreshToken {
		s.tokens.Invalidate(row.ChannelID, token)
	}
	id, rk := row.ID, row.RetryKey
	entry := &store.APILogEntry{CalledAt: calledAt, Method: http.MethodPost, Endpoint: req.URL.Path,
		Status: resp.Status, RequestID: resp.RequestID, AcceptedRequestID: resp.AcceptedRequestID,
		ChannelID: row.ChannelID, OutboxID: &id, Duration: took}
	if key != "" {
		entry.RetryKey = &rk
	}
	if resp.Status < 200 || resp.Status >= 300 {
		entry.Error = out.Error
	}
	s.m.calls.WithLabelValues(row.Endpoint, strconv.Itoa(resp.Status)).Inc()
	s.m.latency.WithLabelValues(row.Endpoint).Observe(took.Seconds())
	// One line per call, as LINE's guideline asks: never the token, the
	// body or LINE's error text (which can quote the body).
	s.calls.Info("line api call", zap.Int64("outbox_id", row.ID), zap.String("channel_id", row.ChannelID),
		zap.String("method", http.MethodPost), zap.String("endpoint", req.URL.Path), zap.Int("status", resp.Status),
		zap.String("request_id", resp.RequestID), zap.String("accepted_request_id", resp.AcceptedRequestID),
		zap.String("retry_key", key), zap.Int("attempt", row.Attempts+1), zap.String("outcome", out.Status),
		zap.Duration("duration", took), zap.Bool("no_answer", callErr != nil))
	s.complete(row, out, resp, entry)
}

// sinceCreated is how long row has waited at local time now since its
// created_at. created_at is on the database's clock, which this process's
// clock may not match: SendAtLocal is SendAt on this process's clock, so
// the pair maps one onto the other.
func sinceCreated(row store.OutboxClaimed, now time.Time) time.Duration {
	return row.SendAt.Add(now.Sub(row.SendAtLocal)).Sub(row.CreatedAt)
}

// complete records an attempt's outcome, grouped with other sends'
// completions into one statement and commit (see completer), and frees
// the row's request slot. The call already happened, so its result is
// written even when the row's deadline has just passed.
func (s *Sender) complete(row store.OutboxClaimed, out outcome, resp apiResponse, entry *store.APILogEntry) {
	c := store.OutboxCompletion{ID: row.ID, ClaimID: row.ClaimID, Status: out.Status,
		StatusCode: resp.Status, Error: out.Error, RequestID: resp.RequestID,
		AcceptedRequestID: resp.AcceptedRequestID, SentMessageIDs: out.SentMessageIDs, Ambiguous: out.Ambiguous, Log: entry}
	if out.Backoff {
		c.Backoff = backoff(row.Attempts+1, s.cfg.BackoffBase, s.cfg.BackoffMax, s.cfg.Rand)
	}
	// The request is over, so its slot goes back to the claim loop while
	// the completion waits for its group's commit; unwritten bounds how
	// many completions may wait, so a slow database still holds claims
	// back.
	s.unwritten <- struct{}{}
	<-s.slots
	err := s.done.complete(c)
	<-s.unwritten
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		s.m.leaseLost.Inc()
		s.log.Warn("outbox lease lost before completion; the new owner's result stands",
			zap.Int64("outbox_id", row.ID), zap.String("outcome", out.Status))
	case err != nil:
		// The lease will expire and another claim will retry with the
		// same key; LINE's 409 then tells what happened.
		s.log.Error("recording outbox attempt", zap.Int64("outbox_id", row.ID), zap.Error(err))
	default:
		s.m.rows.WithLabelValues(out.Status).Inc()
	}
}

// lateTolerance is how late a send may start on its slot in a bucket with
// slack: a quarter of it. Any one-second window then holds at most
// (1s + slack/4) / spacing sends, leaving three quarters of the slack for
// requests that left on time to arrive bunched (on the wire, with two
// replicas on a busy host: up to 18 a second above the sending rate,
// PERFORMANCE-LOG.md).
func lateTolerance(slack time.Duration) time.Duration { return slack / 4 }

// lateTolerance is the tolerance of RateSlack, the one the claim's leads
// are sized by: a reply's wider one (ReplyRateSlack) only spares it a
// re-slot, it never makes it wait longer.
func (s *Sender) lateTolerance() time.Duration { return lateTolerance(s.cfg.RateSlack) }

// maxSlotMisses bounds re-slotting; a row that keeps missing its slot
// (an overloaded replica) is handed back for another claim.
const maxSlotMisses = 3

// awaitSlot waits until target, the row's rate slot. A send starting more
// than its bucket's late tolerance late could crowd the next window, so a late row
// takes a fresh slot in its endpoint's shared bucket (its lease extended)
// and waits again. It reports false when the row was handed back or its
// lease lost.
func (s *Sender) awaitSlot(row store.OutboxClaimed, target time.Time, pl *planner, g *claimShift) (time.Time, bool) {
	spec, limited := pl.endpointSpec(row.OutboxCandidate)
	base := target
	first := true
	reslotted := false // the row's send_at no longer is the claim's
	for misses := 0; ; {
		d := target.Sub(s.now())
		if d > 0 {
			time.Sleep(d) // at most RateHorizon
			continue
		}
		if first {
			// A row with a deadline is planned to start late
			// (urgentLead): its lateness says nothing about the lead.
			if pl.deadline(row.OutboxCandidate) == nil {
				s.observeStart(-d)
			}
			first = false
		}
		if !limited || -d <= spec.late {
			return target, true
		}
		if misses == 0 {
			// Late for the claim's plan: the whole claim moves once.
			if by := s.shift(g, row, spec, -d, pl.leadFor(row.OutboxCandidate)); by > 0 && target.Equal(base) {
				target = base.Add(by)
				if late := s.now().Sub(target); late <= spec.late {
					continue
				}
			}
		}
		s.m.slotMissed.Inc()
		if misses++; misses > maxSlotMisses {
			s.release(row, pl, g, reslotted)
			return target, false
		}
		r := s.reslot(row, spec)
		if err := r.Err; err != nil {
			s.log.Warn("re-slotting a late outbox row", zap.Int64("outbox_id", row.ID), zap.Error(err))
			if !errors.Is(err, store.ErrLeaseLost) {
				s.release(row, pl, g, reslotted)
			}
			return target, false
		}
		target, reslotted = r.SlotLocal, true
	}
}

// release hands row back unsent, refunding its rate reservations. Unless
// the row was re-slotted since, its claim's shift moved the buckets on
// from where its send_at booked them.
func (s *Sender) release(row store.OutboxClaimed, pl *planner, g *claimShift, reslotted bool) {
	s.m.released.Inc()
	var refunds []store.Refund
	for _, sp := range pl.specs(row.OutboxCandidate) {
		r := store.Refund{Key: sp.key, Amount: time.Duration(sp.weight) * sp.interval}
		if !reslotted {
			r.Shift = g.shiftOf(sp.key)
		}
		refunds = append(refunds, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.ReleaseOutbox(ctx, s.db, row.ID, row.ClaimID, refunds...); err != nil {
		s.log.Warn("releasing outbox row after a missed rate slot", zap.Int64("outbox_id", row.ID), zap.Error(err))
	}
}

// logTokenCall records a token issue in api_log and the zap log.
func (s *Sender) logTokenCall(e store.APILogEntry, callErr error) {
	s.m.calls.WithLabelValues("token", strconv.Itoa(e.Status)).Inc()
	s.calls.Info("line api call", zap.String("channel_id", e.ChannelID), zap.String("method", e.Method),
		zap.String("endpoint", e.Endpoint), zap.Int("status", e.Status), zap.String("request_id", e.RequestID),
		zap.Duration("duration", e.Duration), zap.Bool("no_answer", callErr != nil))
	if callErr != nil {
		e.Error = callErr.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.InsertAPILog(ctx, s.db, e); err != nil {
		s.log.Warn("writing api_log", zap.Error(err))
	}
}

// Ready reports whether the database answers.
func (s *Sender) Ready(ctx context.Context) error {
	return s.db.Ping(ctx)
}
