package linefake

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The data API serves the bytes of the media messages the emulator sent,
// answers 202 while a video is prepared, 404 for unknown ids and 410 once
// unsent, and only to the channel's token.
func TestContentEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.ContentPreparing = time.Minute })
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	img := b.srv.MediaEvent(testChannel, userA, "image", 5000)
	vid := b.srv.MediaEvent(testChannel, userA, "video", 0)
	if img.Message.ContentProvider == nil || img.Message.ContentProvider.Type != "line" {
		t.Fatalf("image message %+v", img.Message)
	}

	res, err := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+img.Message.ID+"/content", nil, auth)
	if err != nil || res.status != 200 || res.header.Get("Content-Type") != "image/jpeg" || len(res.body) != 5000 {
		t.Fatalf("image: %v %d %q %d bytes", err, res.status, res.header.Get("Content-Type"), len(res.body))
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(res.body)); got != ContentSHA256(img.Message.ID, 5000) {
		t.Fatal("bytes differ from ContentSHA256")
	}
	if other := ContentSHA256(vid.Message.ID, 5000); other == ContentSHA256(img.Message.ID, 5000) {
		t.Fatal("two messages share their bytes")
	}

	res, _ = b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+vid.Message.ID+"/content", nil, auth)
	tr, _ := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+vid.Message.ID+"/content/transcoding", nil, auth)
	if res.status != http.StatusAccepted || string(tr.body) != "{\"status\":\"processing\"}\n" {
		t.Fatalf("preparing video: %d, transcoding %s", res.status, tr.body)
	}
	b.clock.Advance(time.Minute)
	tr, _ = b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+vid.Message.ID+"/content/transcoding", nil, auth)
	res, _ = b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+vid.Message.ID+"/content", nil, auth)
	if res.status != 200 || len(res.body) != DefaultContentSize || string(tr.body) != "{\"status\":\"succeeded\"}\n" {
		t.Fatalf("prepared video: %d, %d bytes, transcoding %s", res.status, len(res.body), tr.body)
	}

	if res, _ := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/123/content", nil, auth); res.status != 404 {
		t.Fatalf("unknown id: %d", res.status)
	}
	// The data API takes no retry key: "any other API returns 400".
	keyed := map[string]string{"Authorization": auth["Authorization"], RetryKeyHeader: "123e4567-e89b-42d3-a456-426614174000"}
	for _, path := range []string{"/content", "/content/transcoding"} {
		if res, _ := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+img.Message.ID+path, nil, keyed); res.status != http.StatusBadRequest {
			t.Fatalf("%s with a retry key: %d, want 400", path, res.status)
		}
	}
	if res, _ := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+img.Message.ID+"/content", nil, nil); res.status != 401 {
		t.Fatalf("no token: %d", res.status)
	}
	b.srv.UnsendEvent(userA, img.Message.ID)
	res, _ = b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+img.Message.ID+"/content", nil, auth)
	if res.status != http.StatusGone || res.errorBody(t).Message != "The content is gone" {
		t.Fatalf("unsent: %d %s", res.status, res.body)
	}
}

// A dropped download sends half the body and cuts the connection.
func TestContentDropCutsBody(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.ContentFaults = Faults{DropRate: 1} })
	img := b.srv.MediaEvent(testChannel, userA, "image", 100000)
	_, err := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+img.Message.ID+"/content", nil,
		map[string]string{"Authorization": "Bearer " + testToken})
	if err == nil {
		t.Fatal("a dropped download read cleanly")
	}
	if b.srv.ContentServed(img.Message.ID) != 0 {
		t.Fatal("a dropped download counted as served")
	}
}

// The data API is rate limited as LINE limits it: per channel and per
// endpoint at the "Other API endpoints" rate. Past it, content and
// transcoding answer 429 with LINE's message, each from its own bucket,
// and the bucket refills on the emulator's clock.
func TestContentRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.RateLimits.Other = Limit{Requests: 3, Per: time.Second}
		c.Channels = append(c.Channels, Channel{ID: "2234567890", Secret: testSecret, AccessTokens: []string{"static-token-2"}})
	})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	img := b.srv.MediaEvent(testChannel, userA, "image", 100)
	get := func(path string, h map[string]string) response {
		t.Helper()
		res, err := b.do(http.MethodGet, path, nil, h)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	content := DataPrefix + "/v2/bot/message/" + img.Message.ID + "/content"
	for range 3 {
		wantStatus(t, get(content, auth), http.StatusOK)
	}
	r := get(content, auth)
	wantStatus(t, r, http.StatusTooManyRequests)
	if msg := r.errorBody(t).Message; msg != msgRateLimited {
		t.Fatalf("429 message %q", msg)
	}
	// Transcoding is another endpoint with its own bucket; another
	// channel has its own buckets. Unknown ids count too: every
	// authenticated request does.
	for range 3 {
		wantStatus(t, get(content+"/transcoding", auth), http.StatusOK)
	}
	wantStatus(t, get(content+"/transcoding", auth), http.StatusTooManyRequests)
	wantStatus(t, get("/v2/bot/message/1/content", map[string]string{"Authorization": "Bearer static-token-2"}), http.StatusNotFound)
	// A third of a second refills one token at 3/s.
	b.clock.Advance(334 * time.Millisecond)
	wantStatus(t, get(content, auth), http.StatusOK)
	wantStatus(t, get(content, auth), http.StatusTooManyRequests)

	st := b.srv.Stats()
	if st.Count(EndpointContent, 200) != 4 || st.Count(EndpointContent, 429) != 2 ||
		st.Count(EndpointTranscoding, 200) != 3 || st.Count(EndpointTranscoding, 429) != 1 {
		t.Fatalf("counts %v", st.Requests)
	}
	if w := st.Window(testChannel, EndpointContent); w.MaxAttempts != 6 || w.MaxAdmitted != 4 {
		t.Fatalf("content window %+v, want 6 attempts, 4 admitted in the busiest second", w)
	}
	if b.srv.ContentServed(img.Message.ID) != 4 {
		t.Fatalf("served %d bodies, want 4: a 429 serves nothing", b.srv.ContentServed(img.Message.ID))
	}
}

// By default the data API allows LINE's 2,000 requests a second per
// channel and endpoint: the 2,001st within one instant is refused.
func TestContentDefaultRateIs2000PerSecond(t *testing.T) {
	t.Parallel()
	srv := New(Config{Channels: []Channel{{ID: testChannel, Secret: testSecret, AccessTokens: []string{testToken}}},
		Clock: newFakeClock().Now, Seed: 1})
	vid := srv.MediaEvent(testChannel, userA, "video", 100)
	call := func(path string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	tr := DataPrefix + "/v2/bot/message/" + vid.Message.ID + "/content/transcoding"
	for i := range 2000 {
		if code := call(tr); code != http.StatusOK {
			t.Fatalf("transcoding request %d: %d within the limit", i+1, code)
		}
	}
	if code := call(tr); code != http.StatusTooManyRequests {
		t.Fatalf("request 2001: %d, want 429", code)
	}
	if code := call(DataPrefix + "/v2/bot/message/" + vid.Message.ID + "/content"); code != http.StatusOK {
		t.Fatalf("content after transcoding's bucket ran dry: %d, want 200 from its own bucket", code)
	}
}

// The data API and the Messaging API are on separate hosts at LINE, so
// here under separate bases: content asked of the API base, or a send
// posted to the data base, is not found, as it would not be at LINE.
func TestDataAPIHasItsOwnBase(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	img := b.srv.MediaEvent(testChannel, userA, "image", 100)
	if res, _ := b.do(http.MethodGet, DataPrefix+"/v2/bot/message/"+img.Message.ID+"/content", nil, auth); res.status != http.StatusOK {
		t.Fatalf("content on the data base: %d, want 200", res.status)
	}
	if res, _ := b.do(http.MethodGet, "/v2/bot/message/"+img.Message.ID+"/content", nil, auth); res.status != http.StatusNotFound {
		t.Errorf("content on the API base: %d, want 404", res.status)
	}
	push := []byte(`{"to":"` + userA + `","messages":[{"type":"text","text":"hi"}]}`)
	if res, _ := b.do(http.MethodPost, DataPrefix+PathPush, push, auth); res.status != http.StatusNotFound {
		t.Errorf("a push on the data base: %d, want 404", res.status)
	}
	if got := DataURL("http://emu:8090/"); got != "http://emu:8090/data" {
		t.Errorf("DataURL = %q", got)
	}
}
