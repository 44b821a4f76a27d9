package linefake

import (
	"crypto/sha256"
	"fmt"
	"net/http"
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

	res, err := b.do(http.MethodGet, "/v2/bot/message/"+img.Message.ID+"/content", nil, auth)
	if err != nil || res.status != 200 || res.header.Get("Content-Type") != "image/jpeg" || len(res.body) != 5000 {
		t.Fatalf("image: %v %d %q %d bytes", err, res.status, res.header.Get("Content-Type"), len(res.body))
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(res.body)); got != ContentSHA256(img.Message.ID, 5000) {
		t.Fatal("bytes differ from ContentSHA256")
	}
	if other := ContentSHA256(vid.Message.ID, 5000); other == ContentSHA256(img.Message.ID, 5000) {
		t.Fatal("two messages share their bytes")
	}

	res, _ = b.do(http.MethodGet, "/v2/bot/message/"+vid.Message.ID+"/content", nil, auth)
	tr, _ := b.do(http.MethodGet, "/v2/bot/message/"+vid.Message.ID+"/content/transcoding", nil, auth)
	if res.status != http.StatusAccepted || string(tr.body) != "{\"status\":\"processing\"}\n" {
		t.Fatalf("preparing video: %d, transcoding %s", res.status, tr.body)
	}
	b.clock.Advance(time.Minute)
	tr, _ = b.do(http.MethodGet, "/v2/bot/message/"+vid.Message.ID+"/content/transcoding", nil, auth)
	res, _ = b.do(http.MethodGet, "/v2/bot/message/"+vid.Message.ID+"/content", nil, auth)
	if res.status != 200 || len(res.body) != DefaultContentSize || string(tr.body) != "{\"status\":\"succeeded\"}\n" {
		t.Fatalf("prepared video: %d, %d bytes, transcoding %s", res.status, len(res.body), tr.body)
	}

	if res, _ := b.do(http.MethodGet, "/v2/bot/message/123/content", nil, auth); res.status != 404 {
		t.Fatalf("unknown id: %d", res.status)
	}
	if res, _ := b.do(http.MethodGet, "/v2/bot/message/"+img.Message.ID+"/content", nil, nil); res.status != 401 {
		t.Fatalf("no token: %d", res.status)
	}
	b.srv.UnsendEvent(userA, img.Message.ID)
	res, _ = b.do(http.MethodGet, "/v2/bot/message/"+img.Message.ID+"/content", nil, auth)
	if res.status != http.StatusGone || res.errorBody(t).Message != "The content is gone" {
		t.Fatalf("unsent: %d %s", res.status, res.body)
	}
}

// A dropped download sends half the body and cuts the connection.
func TestContentDropCutsBody(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.ContentFaults = Faults{DropRate: 1} })
	img := b.srv.MediaEvent(testChannel, userA, "image", 100000)
	_, err := b.do(http.MethodGet, "/v2/bot/message/"+img.Message.ID+"/content", nil,
		map[string]string{"Authorization": "Bearer " + testToken})
	if err == nil {
		t.Fatal("a dropped download read cleanly")
	}
	if b.srv.ContentServed(img.Message.ID) != 0 {
		t.Fatal("a dropped download counted as served")
	}
}
