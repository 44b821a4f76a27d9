package loadgen

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"testing"
	"time"
)

func runOK(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// replyTokenTypes are the generated types that carry a reply token.
var replyTokenTypes = map[string]bool{"message": true, "follow": true, "postback": true}

func TestRunSignsAndShapesEveryEvent(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	fake, srv := newFakeIngest(t, chans, nil)
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 4, Requests: 200, EventsPerRequest: 3,
		GroupShare: 0.3, Seed: 7,
	})
	reqs := fake.snapshot()
	if len(reqs) != 200 {
		t.Fatalf("server saw %d requests, want 200", len(reqs))
	}
	ids := map[string]bool{}
	perChannel := map[string]int{}
	groups := 0
	for _, r := range reqs {
		perChannel[r.ChannelID]++
		if !userRE.MatchString(r.Destination) {
			t.Errorf("destination %q is not a bot user ID", r.Destination)
		}
		if len(r.Events) != 3 {
			t.Errorf("request has %d events, want 3", len(r.Events))
		}
		for _, e := range r.Events {
			if !ulidRE.MatchString(e.WebhookEventID) {
				t.Errorf("webhookEventId %q is not a ULID", e.WebhookEventID)
			}
			if ids[e.WebhookEventID] {
				t.Errorf("webhookEventId %q sent twice", e.WebhookEventID)
			}
			ids[e.WebhookEventID] = true
			if e.Mode != "active" || e.Timestamp < time.Now().Add(-time.Hour).UnixMilli() || e.DeliveryContext == nil || e.DeliveryContext.IsRedelivery {
				t.Errorf("bad common fields: %+v", e)
			}
			if !userRE.MatchString(e.Source.UserID) {
				t.Errorf("source userId %q", e.Source.UserID)
			}
			switch e.Source.Type {
			case "user":
			case "group":
				groups++
				if !groupRE.MatchString(e.Source.GroupID) {
					t.Errorf("groupId %q", e.Source.GroupID)
				}
			default:
				t.Errorf("source type %q", e.Source.Type)
			}
			if (e.ReplyToken != "") != replyTokenTypes[e.Type] {
				t.Errorf("%s event: replyToken %q", e.Type, e.ReplyToken)
			}
			if e.Message != nil && !digitsRE.MatchString(e.Message.ID) {
				t.Errorf("message id %q is not a numeric string", e.Message.ID)
			}
			if e.Type == KindFutureThing && (len(e.FutureThing) == 0 || e.RolloutStage == "") {
				t.Errorf("futureThing event lacks its extra fields")
			}
		}
	}
	if perChannel[chans[0].ID] != 100 || perChannel[chans[1].ID] != 100 {
		t.Errorf("channels not round-robin: %v", perChannel)
	}
	if groups == 0 {
		t.Errorf("no group sources with GroupShare 0.3")
	}
	if rep.Webhooks != 200 || rep.Requests != 200 || rep.Status["200"] != 200 || rep.WebhooksAccepted != 200 {
		t.Errorf("report counts %+v do not match the 200 requests the server answered 200", rep)
	}
	if rep.EventsSent != 600 || rep.EventsAccepted != 600 || len(rep.Record.Accepted) != 600 {
		t.Errorf("events sent %d accepted %d recorded %d, want 600", rep.EventsSent, rep.EventsAccepted, len(rep.Record.Accepted))
	}
	for _, a := range rep.Record.Accepted {
		if !ids[a.WebhookEventID] {
			t.Errorf("recorded accepted event %s the server never saw", a.WebhookEventID)
		}
	}
}

func TestRunHonoursMix(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	fake, srv := newFakeIngest(t, chans, nil)
	mix := Mix{KindText: 40, KindSticker: 10, KindImage: 10, KindFollow: 5, KindUnfollow: 5, KindPostback: 10, KindUnsend: 10, KindFutureThing: 10}
	rep := runOK(t, Config{BaseURL: srv.URL, Channels: chans, Concurrency: 8, Requests: 2000, EventsPerRequest: 5, Mix: mix, Seed: 11})
	seen := map[string]int{}
	total := 0
	for _, r := range fake.snapshot() {
		for _, e := range r.Events {
			seen[e.kind()]++
			total++
		}
	}
	if total != 10000 {
		t.Fatalf("server saw %d events, want 10000", total)
	}
	// Unsends that found nothing accepted yet went out as text; put them
	// back where the mix asked for them.
	sub := int(rep.UnsendsSubstituted)
	if sub > 200 {
		t.Errorf("%d unsends substituted; only the first requests should lack a target", sub)
	}
	seen[KindText] -= sub
	seen[KindUnsend] += sub
	for k, w := range mix {
		want := float64(w) / 100
		got := float64(seen[k]) / float64(total)
		// 10,000 draws: one standard deviation is at most 0.005.
		if math.Abs(got-want) > 0.025 {
			t.Errorf("kind %s: share %.3f, want %.3f", k, got, want)
		}
		if rep.EventsByKind[k] != int64(seen[k]) && k != KindText && k != KindUnsend {
			t.Errorf("report counts %d %s events, server saw %d", rep.EventsByKind[k], k, seen[k])
		}
	}
}

func TestUnsendsTakeBackAcceptedMessagesOnly(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	// Every third request is refused, without redelivery, so its messages
	// were never accepted; the fake fails the test if one is unsent.
	n := 0
	var decideMu = make(chan struct{}, 1)
	fake, srv := newFakeIngest(t, chans, func(*seenRequest, *http.Request) int {
		decideMu <- struct{}{}
		defer func() { <-decideMu }()
		n++
		if n%3 == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 4, Requests: 600, EventsPerRequest: 2,
		Mix: Mix{KindText: 50, KindSticker: 10, KindUnsend: 40}, Retries: -1, Seed: 3,
	})
	reqs := fake.snapshot()
	texts := map[string]string{}
	unsendOK := map[string]bool{}
	for _, r := range reqs {
		for _, e := range r.Events {
			if e.Message != nil {
				texts[e.Message.ID] = e.Message.Text
			}
			if e.Unsend != nil && r.Status == http.StatusOK {
				unsendOK[e.Unsend.MessageID] = true
			}
		}
	}
	if len(unsendOK) < 50 {
		t.Fatalf("only %d unsends accepted", len(unsendOK))
	}
	if rep.UnsendsAccepted != int64(len(unsendOK)) || len(rep.Record.Unsent) != len(unsendOK) {
		t.Errorf("report %d / record %d unsends, server accepted %d", rep.UnsendsAccepted, len(rep.Record.Unsent), len(unsendOK))
	}
	for _, u := range rep.Record.Unsent {
		if !unsendOK[u.MessageID] {
			t.Errorf("recorded unsent %s the server did not accept", u.MessageID)
		}
		if texts[u.MessageID] != u.Text {
			t.Errorf("recorded text of %s differs from what was sent", u.MessageID)
		}
	}
	if len(rep.Record.UnsendUnconfirmed) == 0 || len(rep.Record.Failed) == 0 {
		t.Errorf("refused requests should leave failed events and unconfirmed unsends in the record")
	}
	if rep.Status["500"] != 200 || rep.WebhooksFailed != 200 || rep.Redeliveries != 0 {
		t.Errorf("status %v failed %d redeliveries %d, want 200 refused, no redelivery", rep.Status, rep.WebhooksFailed, rep.Redeliveries)
	}
}

func TestRedeliveryAfter503KeepsEventIDs(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	fake, srv := newFakeIngest(t, chans, func(r *seenRequest, _ *http.Request) int {
		if !r.Redelivery {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 4, Requests: 100, EventsPerRequest: 2,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Seed: 5,
	})
	reqs := fake.snapshot()
	first := map[string]*seenRequest{}
	for _, r := range reqs {
		if !r.Redelivery {
			first[r.Events[0].WebhookEventID] = r
		}
	}
	redelivered := 0
	for _, r := range reqs {
		if !r.Redelivery {
			continue
		}
		redelivered++
		orig := first[r.Events[0].WebhookEventID]
		if orig == nil {
			t.Fatalf("redelivery of events never first sent")
		}
		for i, e := range r.Events {
			if !e.DeliveryContext.IsRedelivery {
				t.Errorf("event %d of a redelivery has isRedelivery=false", i)
			}
			o := orig.Events[i]
			if e.WebhookEventID != o.WebhookEventID || e.ReplyToken != o.ReplyToken || e.Timestamp != o.Timestamp {
				t.Errorf("redelivered event differs: %+v vs %+v", e, o)
			}
		}
		// Nothing but the flag may change.
		want := bytes.ReplaceAll(orig.Body, []byte(`"isRedelivery":false`), []byte(`"isRedelivery":true`))
		if !bytes.Equal(want, r.Body) {
			t.Errorf("redelivered body differs beyond isRedelivery")
		}
	}
	if len(first) != 100 || redelivered != 100 {
		t.Fatalf("saw %d first attempts and %d redeliveries, want 100 each", len(first), redelivered)
	}
	if rep.Redeliveries != 100 || rep.Status["503"] != 100 || rep.Status["200"] != 100 || rep.WebhooksAccepted != 100 || rep.Requests != 200 {
		t.Errorf("report does not match the server: %+v", rep)
	}
	if rep.FirstAttempt.Count != 100 || rep.Latency.Count != 200 {
		t.Errorf("latency counts %d first / %d all, want 100 / 200", rep.FirstAttempt.Count, rep.Latency.Count)
	}
}

func TestRedeliveryGivesUpAfterRetries(t *testing.T) {
	t.Parallel()
	chans := testChannels()[:1]
	fake, srv := newFakeIngest(t, chans, func(*seenRequest, *http.Request) int { return http.StatusInternalServerError })
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 2, Requests: 10, Retries: 2,
		Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
	})
	if got := len(fake.snapshot()); got != 30 {
		t.Errorf("server saw %d attempts, want 10 x (1 + 2 retries)", got)
	}
	if rep.WebhooksFailed != 10 || rep.Redeliveries != 20 || len(rep.Record.Failed) != 10 || len(rep.Record.Accepted) != 0 {
		t.Errorf("report %+v: want 10 failed webhooks after 20 redeliveries", rep)
	}
}

func TestTimeoutCountsAsErrorAndIsRedelivered(t *testing.T) {
	t.Parallel()
	chans := testChannels()[:1]
	fake, srv := newFakeIngest(t, chans, func(r *seenRequest, req *http.Request) int {
		if !r.Redelivery {
			<-req.Context().Done() // never answer: the client times out
		}
		return http.StatusOK
	})
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 2, Requests: 6, Timeout: 50 * time.Millisecond,
		Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
	})
	fake.snapshot()
	if rep.Status[StatusError] != 6 || rep.Status["200"] != 6 || rep.WebhooksAccepted != 6 {
		t.Errorf("status %v accepted %d: want 6 timeouts then 6 accepted redeliveries", rep.Status, rep.WebhooksAccepted)
	}
}

func TestRatePacingOffersTheTarget(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	fake, srv := newFakeIngest(t, chans, nil)
	const rate, dur = 200.0, time.Second
	rep := runOK(t, Config{BaseURL: srv.URL, Channels: chans, Rate: rate, Duration: dur})
	got := len(fake.snapshot())
	// The schedule starts at most rate*t+1 requests by time t; allow the
	// timer to overshoot the duration a little. A slow machine only
	// lowers the count, so the lower bound is merely "not zero".
	if limit := int(rate*dur.Seconds()*1.2) + 5; got > limit || got == 0 {
		t.Errorf("server saw %d requests in %s at %v/s, want 1..%d", got, dur, rate, limit)
	}
	if rep.Webhooks != int64(got) || rep.Mode != "rate" {
		t.Errorf("report says %d webhooks in mode %s, server saw %d", rep.Webhooks, rep.Mode, got)
	}
}

func TestRatePacingIgnoresSlowServer(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	// Each answer takes 300 ms. Closed loop with one sender would manage
	// about 4 requests in the second; open loop must keep offering.
	fake, srv := newFakeIngest(t, chans, func(*seenRequest, *http.Request) int {
		time.Sleep(300 * time.Millisecond)
		return http.StatusOK
	})
	rep := runOK(t, Config{BaseURL: srv.URL, Channels: chans, Rate: 50, Duration: time.Second})
	got := len(fake.snapshot())
	if got < 15 || got > 50*1.2+5 {
		t.Errorf("server saw %d requests at 50/s for 1s with a 300ms server, want 15..65", got)
	}
	if rep.FirstAttempt.P50 < 300*time.Millisecond {
		t.Errorf("p50 %s is below the server's 300ms", rep.FirstAttempt.P50)
	}
}

func TestRateModeStopsAtRequestCount(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	fake, srv := newFakeIngest(t, chans, nil)
	rep := runOK(t, Config{BaseURL: srv.URL, Channels: chans, Rate: 1000, Requests: 50})
	if got := len(fake.snapshot()); got != 50 || rep.Webhooks != 50 {
		t.Errorf("server saw %d, report %d; want 50", got, rep.Webhooks)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	_, srv := newFakeIngest(t, chans, func(*seenRequest, *http.Request) int { return http.StatusServiceUnavailable })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Report, 1)
	go func() {
		rep, _ := Run(ctx, Config{BaseURL: srv.URL, Channels: chans, Concurrency: 2, Duration: time.Hour, Backoff: time.Hour})
		done <- rep
	}()
	time.Sleep(100 * time.Millisecond) // let some requests start; not an assertion
	cancel()
	select {
	case rep := <-done:
		if rep.Webhooks == 0 || rep.WebhooksFailed != rep.Webhooks {
			t.Errorf("after cancel: %d webhooks, %d failed; pending redeliveries must end as failed", rep.Webhooks, rep.WebhooksFailed)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRecordFileMatchesMemory(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	n := 0
	mu := make(chan struct{}, 1)
	_, srv := newFakeIngest(t, chans, func(*seenRequest, *http.Request) int {
		mu <- struct{}{}
		defer func() { <-mu }()
		n++
		if n%4 == 0 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	var buf bytes.Buffer
	rep := runOK(t, Config{
		BaseURL: srv.URL, Channels: chans, Concurrency: 1, Requests: 200, Retries: -1,
		Mix: Mix{KindText: 1, KindUnsend: 1}, RecordWriter: &buf,
	})
	got, err := ReadRecord(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Accepted) != len(rep.Record.Accepted) || len(got.Failed) != len(rep.Record.Failed) ||
		len(got.Unsent) != len(rep.Record.Unsent) || len(got.UnsendUnconfirmed) != len(rep.Record.UnsendUnconfirmed) {
		t.Fatalf("file record differs from memory")
	}
	for i := range got.Unsent {
		if got.Unsent[i] != rep.Record.Unsent[i] {
			t.Errorf("unsent %d: file %+v memory %+v", i, got.Unsent[i], rep.Record.Unsent[i])
		}
	}
	if len(got.Accepted) != 150 || len(got.Failed) != 50 || len(got.Unsent) == 0 {
		t.Errorf("record has %d accepted, %d failed, %d unsent; want 150, 50, some", len(got.Accepted), len(got.Failed), len(got.Unsent))
	}
}
