package sender

import (
	"sync"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// planner decides, inside a claim's transaction, what happens to each due
// row: finish it without a call (invalid, expired, skipped), reserve a
// rate slot and send it, or postpone it until its buckets have room.
//
// Rate limits are GCRA buckets ("theoretical arrival time") in the
// outbox_rate table, locked by the claim, so every replica draws slots
// from the same schedule: a replica-local limiter could not keep N
// replicas under LINE's per-channel limits. Endpoint buckets allow no
// burst; their slots are (Per+slack)/Limit apart (RateSlack, or
// ReplyRateSlack for replies), so even a send that starts up to the slack
// after its slot keeps every window of Per under Limit. Recipient buckets
// count message objects and allow a burst of Limit.
//
// Every decision uses the database clock (dbNow), shared by all replicas:
// what is due, a retry key's age and a reply's validity.
//
// A row on a limited endpoint gets its first slot lead after the
// database's now: the claim still has to commit, and a slot given for
// "now" would be missed by every row of the batch. A row on an endpoint
// with no limit has no slot to miss, so it goes at once.
//
// A row with a deadline (a reply, or not_after) gets the shorter
// urgentLead instead: its slot may pass before the claim commits, as long
// as it starts within the late tolerance, so on a quiet bucket it goes as
// soon as the claim returns rather than after a lead sized for whole
// batches of pushes on a busy host.
type planner struct {
	cfg        *Config
	lead       time.Duration
	urgentLead time.Duration

	// checks is what each row's body says, read once per claim: the
	// claim's locks and its plan both decide every row, a push row's
	// buckets are asked for again by each send's wait and shift, and
	// deliveries ask concurrently. Decoding the body was the sender's
	// largest cost of its own after the HTTP call.
	checksMu sync.Mutex
	checks   map[int64]bodyCheck
}

// bodyCheck is what a row's body says for planning: whether LINE would
// refuse it, and how many message objects it holds.
type bodyCheck struct {
	invalid error
	weight  int
}

// check validates c's body and counts its messages, at most once per row
// and claim. A row's body cannot change inside its claim: the claim
// holds the row's lock until it commits, and an in_flight row is fenced.
func (p *planner) check(c store.OutboxCandidate) bodyCheck {
	p.checksMu.Lock()
	defer p.checksMu.Unlock()
	if b, ok := p.checks[c.ID]; ok {
		return b
	}
	if p.checks == nil {
		p.checks = map[int64]bodyCheck{}
	}
	n, err := checkRow(c.Endpoint, c.Body)
	b := bodyCheck{invalid: err, weight: n}
	p.checks[c.ID] = b
	return b
}

// weight is c's message objects (1 when its body cannot be read).
func (p *planner) weight(c store.OutboxCandidate) int { return p.check(c).weight }

type bucketSpec struct {
	key      store.RateKey
	interval time.Duration // one cell
	weight   int           // cells this send takes
	burst    time.Duration // how far ahead of tat a send may go
	late     time.Duration // how late after its slot a send may start (endpoint buckets)
}

func (p *planner) specs(c store.OutboxCandidate) []bucketSpec {
	var out []bucketSpec
	if r := p.cfg.Rates[c.Endpoint]; r.Limit > 0 {
		slack := p.cfg.slack(c.Endpoint)
		out = append(out, bucketSpec{
			key:      store.RateKey{ChannelID: c.ChannelID, Bucket: c.Endpoint},
			interval: (r.Per + slack) / time.Duration(r.Limit),
			weight:   1,
			late:     lateTolerance(slack),
		})
	}
	if r := p.cfg.RecipientCap; r.Limit > 0 && c.Recipient != "" {
		iv := r.Per / time.Duration(r.Limit)
		out = append(out, bucketSpec{
			key:      store.RateKey{ChannelID: c.ChannelID, Bucket: "to:" + c.Recipient},
			interval: iv,
			weight:   p.weight(c),
			burst:    time.Duration(r.Limit-1) * iv,
		})
	}
	return out
}

// endpointSpec is c's endpoint bucket, when its endpoint is limited.
func (p *planner) endpointSpec(c store.OutboxCandidate) (bucketSpec, bool) {
	for _, s := range p.specs(c) {
		if s.key.Bucket == c.Endpoint {
			return s, true
		}
	}
	return bucketSpec{}, false
}

// LaneKeys implements store.Planner: the lane's endpoint bucket, the one
// specs gives every row of the lane that is sent. Only a push names a
// recipient (outbox.recipient), whose bucket it may also debit.
func (p *planner) LaneKeys(channelID, endpoint string) ([]store.RateKey, bool) {
	all := endpoint != store.EndpointPush || p.cfg.RecipientCap.Limit <= 0
	if s, ok := p.endpointSpec(store.OutboxCandidate{ChannelID: channelID, Endpoint: endpoint}); ok {
		return []store.RateKey{s.key}, all
	}
	return nil, all
}

// Keys implements store.Planner.
func (p *planner) Keys(dbNow time.Time, c store.OutboxCandidate) []store.RateKey {
	if p.decide(dbNow, c) != nil {
		return nil
	}
	var keys []store.RateKey
	for _, s := range p.specs(c) {
		keys = append(keys, s.key)
	}
	return keys
}

// Plan implements store.Planner. Candidates come in due order; each send
// moves its buckets' tats on before the next is planned.
func (p *planner) Plan(dbNow time.Time, cands []store.OutboxCandidate, tats map[store.RateKey]time.Time) store.ClaimPlan {
	plan := store.ClaimPlan{Tats: map[store.RateKey]time.Time{}}
	horizon := dbNow.Add(p.cfg.RateHorizon)
	for _, c := range cands {
		if f := p.decide(dbNow, c); f != nil {
			plan.Finish = append(plan.Finish, *f)
			continue
		}
		specs := p.specs(c)
		slot := dbNow
		if len(specs) > 0 {
			slot = dbNow.Add(p.leadFor(c))
		}
		for _, s := range specs {
			tat := tats[s.key]
			if start := tat.Add(time.Duration(s.weight-1)*s.interval - s.burst); start.After(slot) {
				slot = start
			}
		}
		if slot.After(horizon) {
			// Not now: move it out of the due window so rows behind it
			// (other recipients, other channels) are not starved.
			plan.Postpone = append(plan.Postpone, store.OutboxReserve{ID: c.ID, SendAt: slot})
			continue
		}
		for _, s := range specs {
			tat := tats[s.key]
			if tat.Before(slot) {
				tat = slot
			}
			tats[s.key] = tat.Add(time.Duration(s.weight) * s.interval)
			plan.Tats[s.key] = tats[s.key]
		}
		plan.Send = append(plan.Send, store.OutboxReserve{ID: c.ID, SendAt: slot})
	}
	return plan
}

// leadFor is how long after the database's now c's first slot may be.
func (p *planner) leadFor(c store.OutboxCandidate) time.Duration {
	if p.deadline(c) != nil {
		return p.urgentLead
	}
	return p.lead
}

// decide returns how c ends without a call, or nil when it is to be sent.
func (p *planner) decide(now time.Time, c store.OutboxCandidate) *store.OutboxFinish {
	fin := func(status, msg string) *store.OutboxFinish {
		return &store.OutboxFinish{ID: c.ID, Status: status, Error: msg}
	}
	if c.Scrubbed {
		// A scrubbed row is claimed only after an unsend scrubbed it in
		// flight and its sender then lost the lease (it died, say), or an
		// operator requeued it. The unsend wins, as it does when an
		// attempt on it needs a retry (store.CompleteOutboxBatch), and
		// maybe_delivered keeps whether LINE may have it. Not `failed`:
		// nothing is wrong with the row, and a requeue could not send it.
		// So the body checks below never see a scrubbed row.
		return fin(store.OutboxCancelled, "not sent: its source message was unsent and its body scrubbed")
	}
	if err := p.check(c).invalid; err != nil {
		return fin(store.OutboxFailed, err.Error())
	}
	if usesRetryKey(c.Endpoint) && c.FirstAttemptAt != nil && now.Sub(*c.FirstAttemptAt) >= p.cfg.KeyMaxAge {
		return fin(store.OutboxExpired, "retry key first used at "+c.FirstAttemptAt.UTC().Format(time.RFC3339)+
			"; LINE keeps retry keys 24h, so resending it now could deliver twice")
	}
	if dl := p.deadline(c); dl != nil && !now.Before(*dl) {
		return fin(pastDeadline(c, *dl))
	}
	if !p.cfg.SendToUnfollowed && c.Endpoint == store.EndpointPush && c.Following != nil && !*c.Following &&
		userPattern.MatchString(c.Recipient) {
		return fin(store.OutboxSkipped, "recipient does not follow the account (followers.following = false)")
	}
	return nil
}

// pastDeadline is how c ends once its deadline dl has passed unsent: a
// reply an earlier attempt may have delivered (it got no answer, or its
// sender lost the lease mid-call) is uncertain, since its token may be
// used up and no retry can tell; anything else expired, never attempted
// or known not delivered. The claim and the check after the rate slot
// both end rows by it.
func pastDeadline(c store.OutboxCandidate, dl time.Time) (status, reason string) {
	if c.Endpoint == store.EndpointReply && (c.MaybeDelivered || c.Status == store.OutboxInFlight) {
		return store.OutboxUncertain, "reply token validity ended after an attempt that got no answer; it may have been delivered"
	}
	return store.OutboxExpired, "not sent before not_after " + dl.UTC().Format(time.RFC3339)
}

// deadline is the instant after which c must not be sent: not_after, or
// for a reply the reply token's validity.
func (p *planner) deadline(c store.OutboxCandidate) *time.Time {
	if c.NotAfter != nil {
		return c.NotAfter
	}
	if c.Endpoint == store.EndpointReply {
		t := c.CreatedAt.Add(p.cfg.ReplyTokenTTL)
		return &t
	}
	return nil
}
