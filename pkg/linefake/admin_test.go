package linefake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestAdminAddChannelThenIssueAndSend(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := b.must(http.MethodPost, PathAdminChannels, []byte(`{"id":"777","secret":"sec777","accessTokens":["tok777"]}`), nil)
	wantStatus(t, r, http.StatusCreated)
	if strings.Contains(string(r.body), "sec777") || strings.Contains(string(r.body), "tok777") {
		t.Fatalf("admin answer %s echoes credentials", r.body)
	}
	wantStatus(t, b.must(http.MethodPost, PathPush, mustJSON(t, push(userA, text("x"))), map[string]string{"Authorization": "Bearer tok777"}), http.StatusOK)
	tr := b.issueToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {"777"}, "client_secret": {"sec777"}})
	wantStatus(t, tr, http.StatusOK)
	var tok TokenResponse
	_ = json.Unmarshal(tr.body, &tok)
	wantStatus(t, b.must(http.MethodPost, PathPush, mustJSON(t, push(userA, text("y"))), map[string]string{"Authorization": "Bearer " + tok.AccessToken}), http.StatusOK)
	ds := b.srv.Accepted()
	if len(ds) != 2 || ds[0].Channel != "777" || ds[1].Channel != "777" || b.srv.AcceptedCount() != 2 {
		t.Fatalf("deliveries %+v, want two on channel 777", ds)
	}
	// Replacing a channel drops its old static tokens.
	wantStatus(t, b.must(http.MethodPost, PathAdminChannels, []byte(`{"id":"777","secret":"sec777","accessTokens":["tok777b"]}`), nil), http.StatusCreated)
	wantStatus(t, b.must(http.MethodPost, PathPush, mustJSON(t, push(userA, text("x"))), map[string]string{"Authorization": "Bearer tok777"}), http.StatusUnauthorized)
	for _, bad := range []string{`{"id":"","secret":"s"}`, `{"id":"1","secret":""}`, `{"id":"1","secret":"s","botUserId":"x"}`, `{"id":"1","secret":"s","extra":1}`} {
		if r := b.must(http.MethodPost, PathAdminChannels, []byte(bad), nil); r.status != http.StatusBadRequest {
			t.Errorf("channel %s: status %d, want 400", bad, r.status)
		}
	}
}

func TestAdminDeliveriesDuplicatesStatsReset(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	key := uuid.NewString()
	wantStatus(t, b.send(PathPush, push(userA, text("order-1")), key), http.StatusOK)
	b.clock.Advance(25 * time.Hour)
	wantStatus(t, b.send(PathPush, push(userA, text("order-1")), key), http.StatusOK) // a duplicate LINE let through
	wantStatus(t, b.send(PathPush, push(userA, text("order-2")), uuid.NewString()), http.StatusOK)
	wantStatus(t, b.send(PathBroadcast, map[string]any{"messages": texts(1)}, ""), http.StatusOK)

	var ds []Delivery
	getJSON(t, b, PathAdminDeliveries+"?endpoint=push", &ds)
	if len(ds) != 3 || ds[0].RetryKey != key || ds[1].RetryKeyReuse != 1 || ds[2].RetryKeyReuse != 0 {
		t.Fatalf("push deliveries %+v", ds)
	}
	var body struct{ Messages []struct{ Text string } }
	if err := json.Unmarshal(ds[2].Body, &body); err != nil || body.Messages[0].Text != "order-2" {
		t.Fatalf("delivery body %s not kept as sent", ds[2].Body)
	}
	ds = nil // Unmarshal would reuse elements, keeping omitted fields
	getJSON(t, b, PathAdminDeliveries+"?since=2", &ds)
	if len(ds) != 2 || ds[0].Seq != 3 || ds[1].Endpoint != "broadcast" {
		t.Fatalf("since=2 gave %+v, want deliveries 3 and 4", ds)
	}
	ds = nil
	getJSON(t, b, PathAdminDeliveries+"?channel=nope", &ds)
	if len(ds) != 0 {
		t.Fatalf("channel filter let %d through", len(ds))
	}

	var groups []DuplicateGroup
	getJSON(t, b, PathAdminDuplicates+"?by=retryKey", &groups)
	if len(groups) != 1 || len(groups[0].Deliveries) != 2 || groups[0].Deliveries[0].RetryKey != key {
		t.Fatalf("duplicates by key %+v", groups)
	}
	groups = nil
	getJSON(t, b, PathAdminDuplicates+"?path=messages.0.text", &groups)
	if len(groups) != 1 || groups[0].Key != testChannel+`|"order-1"` {
		t.Fatalf("duplicates by text %+v", groups)
	}
	wantStatus(t, b.must(http.MethodGet, PathAdminDuplicates, nil, nil), http.StatusBadRequest)

	var st Stats
	getJSON(t, b, PathAdminStats, &st)
	if st.Accepted != 4 || st.Count("push", 200) != 3 || st.Count("broadcast", 200) != 1 || len(st.RateWindows) != 2 {
		t.Fatalf("stats %+v", st)
	}

	wantStatus(t, b.must(http.MethodPost, PathAdminReset, nil, nil), http.StatusNoContent)
	if n := len(b.srv.Accepted()); n != 0 || b.srv.AcceptedCount() != 0 || len(b.srv.Stats().Requests) != 0 {
		t.Fatalf("after reset: %d deliveries, stats %+v", n, b.srv.Stats())
	}
	// Reset forgets retry keys too, and keeps the channel.
	wantStatus(t, b.send(PathPush, push(userA, text("order-1")), key), http.StatusOK)
}

func getJSON(t *testing.T, b *bundle, path string, v any) {
	t.Helper()
	r := b.must(http.MethodGet, path, nil, nil)
	wantStatus(t, r, http.StatusOK)
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, r.body)
	}
}

func TestAdminWebhookSendAndRedeliver(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	rc := newReceiver(t, http.StatusOK)
	req := WebhookRequest{URL: rc.srv.URL, ChannelID: testChannel, Specs: []EventSpec{
		{Type: "text", UserID: userA, Text: "hi"}, {Type: "follow", UserID: userB}, {Type: "unfollow", UserID: userB},
		{Type: "unsend", UserID: userA, MessageID: "325708"},
	}}
	r := b.must(http.MethodPost, PathAdminWebhooks, mustJSON(t, req), nil)
	wantStatus(t, r, http.StatusOK)
	var res WebhookResult
	if err := json.Unmarshal(r.body, &res); err != nil || res.Status != 200 || len(res.Events) != 4 {
		t.Fatalf("result %s: %v", r.body, err)
	}
	body, h := rc.last(t)
	evs := verify(t, body, h)
	if len(evs) != 4 || evs[3].MessageID() != "325708" || evs[0].ReplyToken != res.Events[0].ReplyToken {
		t.Fatalf("sent events %+v do not match the answer", evs)
	}
	redo := WebhookRequest{URL: rc.srv.URL, ChannelID: testChannel, Redeliver: true, Events: res.Events[:1]}
	r = b.must(http.MethodPost, PathAdminWebhooks, mustJSON(t, redo), nil)
	wantStatus(t, r, http.StatusOK)
	body, h = rc.last(t)
	again := verify(t, body, h)
	if len(again) != 1 || !again[0].DeliveryContext.IsRedelivery || again[0].WebhookEventID != evs[0].WebhookEventID {
		t.Fatalf("redelivered %+v", again)
	}
	bad := WebhookRequest{URL: rc.srv.URL, ChannelID: testChannel, Specs: []EventSpec{{Type: "nope"}}}
	wantStatus(t, b.must(http.MethodPost, PathAdminWebhooks, mustJSON(t, bad), nil), http.StatusBadRequest)
	wantStatus(t, b.must(http.MethodPost, PathAdminWebhooks, []byte(`{"url":"`+rc.srv.URL+`","channelId":"nope"}`), nil), http.StatusBadRequest)
}

// Every response, errors included, carries its own x-line-request-id
// (bundle.do checks the UUID format of each).
func TestRequestIDOnEveryResponse(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.RateLimits.Push = Limit{Requests: 1, Per: time.Hour} })
	key := uuid.NewString()
	rs := []response{
		b.send(PathPush, push(userA, text("x")), key),        // 200
		b.send(PathPush, push(userA, text("x")), key),        // 429 (limit 1/h)
		b.send(PathMulticast, map[string]any{"to": 1}, ""),   // 400
		b.send(PathReply, reply("nope", text("x")), ""),      // 400 invalid token
		b.must(http.MethodPost, PathPush, nil, nil),          // 401
		b.must(http.MethodGet, PathPush, nil, nil),           // 405
		b.must(http.MethodGet, "/v2/bot/unknown", nil, nil),  // 404
		b.must(http.MethodGet, "/healthz", nil, nil),         // 200
		b.must(http.MethodGet, PathAdminStats, nil, nil),     // 200
		b.issueToken(url.Values{"grant_type": {"password"}}), // 400
	}
	seen := map[string]bool{}
	for i, r := range rs {
		id := r.header.Get(RequestIDHeader)
		if seen[id] {
			t.Fatalf("response %d (%d) repeats request id %s", i, r.status, id)
		}
		seen[id] = true
	}
	if rs[1].status != http.StatusTooManyRequests || rs[5].status != http.StatusMethodNotAllowed || rs[6].status != http.StatusNotFound {
		t.Fatalf("statuses %d %d %d", rs[1].status, rs[5].status, rs[6].status)
	}
}
