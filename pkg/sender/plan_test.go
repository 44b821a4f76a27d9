package sender

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/linepipe/linepipe/pkg/store"
)

func testPlanner() *planner {
	cfg := Config{BaseURL: "http://line.test", Rates: map[string]Rate{"push": {Limit: 10, Per: time.Second}}}
	cfg.setDefaults()
	return &planner{cfg: &cfg}
}

func pushCand(id int64, to string) store.OutboxCandidate {
	return store.OutboxCandidate{ID: id, ChannelID: "c", Endpoint: "push", Recipient: to,
		Body: []byte(`{"to":"` + to + `","messages":[{"type":"text","text":"x"}]}`)}
}

// TestPlanNeverExceedsRate drives many claims at random moments, as
// replicas would, and checks LINE's view: in any one-second window, even
// with every send starting up to its bucket's slack after its slot (the
// push bucket's RateSlack, the reply bucket's wider ReplyRateSlack), at
// most Limit requests.
func TestPlanNeverExceedsRate(t *testing.T) {
	for _, ep := range []string{store.EndpointPush, store.EndpointReply} {
		t.Run(ep, func(t *testing.T) {
			t.Parallel()
			base := time.Unix(1_700_000_000, 0)
			p := testPlanner()
			p.cfg.Rates[store.EndpointReply] = Rate{Limit: 10, Per: time.Second}
			slack := p.cfg.slack(ep)
			tats := map[store.RateKey]time.Time{}
			rng := rand.New(rand.NewPCG(1, 2))
			var sends []time.Time
			now := base
			id := int64(0)
			for i := 0; i < 400; i++ {
				now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
				var cands []store.OutboxCandidate
				for j := rng.IntN(15); j >= 0; j-- {
					id++
					c := pushCand(id, "U"+strings.Repeat("a", 32))
					if ep == store.EndpointReply {
						c.Endpoint, c.Recipient, c.CreatedAt = ep, "", now
						c.Body = []byte(`{"replyToken":"r` + strconv.FormatInt(id, 10) + `","messages":[{"type":"text","text":"x"}]}`)
					}
					cands = append(cands, c)
				}
				plan := p.Plan(now, cands, tats)
				for _, s := range plan.Send {
					if s.SendAt.Before(now) || s.SendAt.After(now.Add(p.cfg.RateHorizon)) {
						t.Fatalf("slot %s outside [now, now+horizon]", s.SendAt)
					}
					late := time.Duration(rng.Int64N(int64(slack)))
					sends = append(sends, s.SendAt.Add(late))
				}
				if len(plan.Send)+len(plan.Postpone) != len(cands) {
					t.Fatalf("plan lost candidates: %d sent, %d postponed, %d finished of %d",
						len(plan.Send), len(plan.Postpone), len(plan.Finish), len(cands))
				}
			}
			sort.Slice(sends, func(i, j int) bool { return sends[i].Before(sends[j]) })
			peak, lo := 0, 0
			for hi := range sends {
				for sends[hi].Sub(sends[lo]) >= time.Second {
					lo++
				}
				peak = max(peak, hi-lo+1)
			}
			if peak > 10 || peak < 9 {
				t.Fatalf("peak %d sends in one second, want at most (and close to) 10", peak)
			}
		})
	}
}

// TestLateToleranceByEndpoint: a reply may start a quarter of
// ReplyRateSlack after its slot, a push a quarter of RateSlack; a reply
// within its tolerance goes at once, with no re-slot (which would need
// the database this sender does not have) and no missed slot counted.
func TestLateToleranceByEndpoint(t *testing.T) {
	t.Parallel()
	p := testPlanner()
	reply := store.OutboxCandidate{ID: 1, ChannelID: "c", Endpoint: store.EndpointReply,
		Body: []byte(`{"replyToken":"r","messages":[{"type":"text","text":"x"}]}`)}
	rs, ok := p.endpointSpec(reply)
	if !ok || rs.late != DefaultReplyRateSlack/4 || rs.interval != (time.Second+DefaultReplyRateSlack)/2000 {
		t.Fatalf("reply bucket: %+v (limited %v), want tolerance %s", rs, ok, DefaultReplyRateSlack/4)
	}
	ps, ok := p.endpointSpec(pushCand(2, "U"+strings.Repeat("a", 32)))
	if !ok || ps.late != DefaultRateSlack/4 {
		t.Fatalf("push bucket: %+v (limited %v), want tolerance %s", ps, ok, DefaultRateSlack/4)
	}

	// A wide reply slack keeps the test clear of a slow machine's stalls.
	reg := prometheus.NewRegistry()
	s, err := New(Config{BaseURL: "http://line.test", Registerer: reg, ReplyRateSlack: 4 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pl := &planner{cfg: &s.cfg}
	row := store.OutboxClaimed{OutboxCandidate: reply}
	late := time.Now().Add(-100 * time.Millisecond) // far past a push's tolerance, well within this reply's
	got, ok := s.awaitSlot(row, late, pl, newClaimShift(nil, pl))
	if !ok || !got.Equal(late) {
		t.Fatalf("a reply %s late was not sent on its slot (ok %v, slot moved by %s)", time.Since(late), ok, got.Sub(late))
	}
	if n := testutil.ToFloat64(s.m.slotMissed); n != 0 {
		t.Fatalf("slot missed counted %v times", n)
	}
}

func TestPlanRecipientBurstThenSpacing(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := testPlanner()
	p.cfg.RecipientCap = Rate{Limit: 3, Per: time.Minute}
	user := "U" + strings.Repeat("b", 32)
	var cands []store.OutboxCandidate
	for i := int64(1); i <= 5; i++ {
		cands = append(cands, pushCand(i, user))
	}
	plan := p.Plan(now, cands, map[store.RateKey]time.Time{})
	if len(plan.Send) != 3 || len(plan.Postpone) != 2 {
		t.Fatalf("burst of 3 allowed %d sends, postponed %d", len(plan.Send), len(plan.Postpone))
	}
	if d := plan.Postpone[0].SendAt.Sub(now); d < 19*time.Second || d > 21*time.Second {
		t.Fatalf("fourth message postponed %s, want one interval (20s)", d)
	}
}

func TestPlanDecide(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	no := false
	user := "U" + strings.Repeat("c", 32)
	reply := store.OutboxCandidate{ID: 1, Endpoint: "reply", CreatedAt: now.Add(-30 * time.Second),
		Body: []byte(`{"replyToken":"t","messages":[{"type":"text","text":"x"}]}`)}
	cases := []struct {
		name string
		mod  func(c *store.OutboxCandidate)
		base store.OutboxCandidate
		want string // "" = send
	}{
		{"fresh push", func(*store.OutboxCandidate) {}, pushCand(1, user), ""},
		{"key 22h59m old", func(c *store.OutboxCandidate) { c.FirstAttemptAt = ago(23*time.Hour - time.Minute) }, pushCand(1, user), ""},
		{"key 23h old", func(c *store.OutboxCandidate) { c.FirstAttemptAt = ago(23 * time.Hour) }, pushCand(1, user), "expired"},
		{"not_after passed", func(c *store.OutboxCandidate) { c.NotAfter = ago(time.Second) }, pushCand(1, user), "expired"},
		{"unfollowed", func(c *store.OutboxCandidate) { c.Following = &no }, pushCand(1, user), "skipped"},
		{"reply in time", func(*store.OutboxCandidate) {}, reply, ""},
		{"reply token past a minute", func(c *store.OutboxCandidate) { c.CreatedAt = now.Add(-time.Minute) }, reply, "expired"},
		{"reply past, maybe delivered", func(c *store.OutboxCandidate) { c.CreatedAt = now.Add(-2 * time.Minute); c.MaybeDelivered = true }, reply, "uncertain"},
		{"reply not_after wins", func(c *store.OutboxCandidate) {
			c.CreatedAt = now.Add(-time.Hour)
			f := now.Add(time.Second)
			c.NotAfter = &f
		}, reply, ""},
		{"reply keys never expire by age", func(c *store.OutboxCandidate) { c.FirstAttemptAt = ago(48 * time.Hour) }, reply, ""},
		{"scrubbed", func(c *store.OutboxCandidate) { c.Scrubbed = true }, pushCand(1, user), "cancelled"},
		{"scrubbed reply, maybe delivered", func(c *store.OutboxCandidate) { c.Scrubbed = true; c.MaybeDelivered = true }, reply, "cancelled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A planner lives for one claim, in which a row never
			// changes: each case, the same row id changed, is a claim.
			p := testPlanner()
			cand := c.base
			c.mod(&cand)
			f := p.decide(now, cand)
			got := ""
			if f != nil {
				got = f.Status
			}
			if got != c.want {
				t.Fatalf("decided %q (%+v), want %q", got, f, c.want)
			}
			if (len(p.Keys(now, cand)) > 0) != (c.want == "") {
				t.Fatalf("keys %v for decision %q", p.Keys(now, cand), got)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	short := Config{Lease: 10 * time.Second}
	short.setDefaults()
	if err := short.Validate(); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Fatalf("a lease shorter than a send passed: %v", err)
	}
	old := Config{KeyMaxAge: 24 * time.Hour}
	old.setDefaults()
	if err := old.Validate(); err == nil {
		t.Fatal("a key max age of 24h passed")
	}
	if r, err := ParseRate("60/1h"); err != nil || r.Limit != 60 || r.Per != time.Hour {
		t.Fatalf("ParseRate: %v %v", r, err)
	}
	if _, err := ParseRate("fast"); err == nil {
		t.Fatal("ParseRate accepted junk")
	}
}

// TestPlanDeadlineRowsTakeTheShortLead checks that a row with a deadline
// (a reply, or a push with not_after) is slotted urgentLead after now on
// an idle bucket, a push without one the full lead, and that the short
// lead never moves a slot before the bucket's tat.
func TestPlanDeadlineRowsTakeTheShortLead(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	p := testPlanner()
	p.cfg.Rates["reply"] = Rate{Limit: 10, Per: time.Second}
	p.lead, p.urgentLead = 30*time.Millisecond, 2*time.Millisecond
	reply := store.OutboxCandidate{ID: 1, ChannelID: "c", Endpoint: "reply", CreatedAt: now,
		Body: []byte(`{"replyToken":"t","messages":[{"type":"text","text":"x"}]}`)}
	push := pushCand(2, "U"+strings.Repeat("c", 32))
	notAfter := now.Add(time.Minute)
	urgentPush := pushCand(3, "U"+strings.Repeat("d", 32))
	urgentPush.NotAfter = &notAfter
	plan := p.Plan(now, []store.OutboxCandidate{reply, push}, map[store.RateKey]time.Time{})
	slots := map[int64]time.Duration{}
	for _, s := range plan.Send {
		slots[s.ID] = s.SendAt.Sub(now)
	}
	if slots[1] != p.urgentLead || slots[2] != p.lead {
		t.Fatalf("reply slotted %s and push %s after now, want %s and %s", slots[1], slots[2], p.urgentLead, p.lead)
	}
	// The push bucket is booked now: a push with a deadline may not go
	// before its tat, however short its lead.
	tat := plan.Tats[store.RateKey{ChannelID: "c", Bucket: "push"}]
	busy := p.Plan(now, []store.OutboxCandidate{urgentPush}, plan.Tats)
	if len(busy.Send) != 1 || !busy.Send[0].SendAt.Equal(tat) {
		t.Fatalf("push with not_after slotted %v, want the bucket's tat %s", busy.Send, tat)
	}
	idle := p.Plan(now, []store.OutboxCandidate{urgentPush}, map[store.RateKey]time.Time{})
	if len(idle.Send) != 1 || idle.Send[0].SendAt.Sub(now) != p.urgentLead {
		t.Fatalf("push with not_after on an idle bucket slotted %v, want %s after now", idle.Send, p.urgentLead)
	}
}
