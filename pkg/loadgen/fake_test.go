package loadgen

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/linepipe/linepipe/pkg/events"
)

var (
	ulidRE   = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)
	userRE   = regexp.MustCompile(`^U[0-9a-f]{32}$`)
	groupRE  = regexp.MustCompile(`^C[0-9a-f]{32}$`)
	digitsRE = regexp.MustCompile(`^[1-9][0-9]{17,19}$`)
)

// seenEvent is an event as the fake ingest decoded it from the wire.
type seenEvent struct {
	Type           string `json:"type"`
	Mode           string `json:"mode"`
	Timestamp      int64  `json:"timestamp"`
	WebhookEventID string `json:"webhookEventId"`
	ReplyToken     string `json:"replyToken"`
	Source         struct {
		Type    string `json:"type"`
		UserID  string `json:"userId"`
		GroupID string `json:"groupId"`
	} `json:"source"`
	DeliveryContext *struct {
		IsRedelivery bool `json:"isRedelivery"`
	} `json:"deliveryContext"`
	Message *struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"message"`
	Unsend *struct {
		MessageID string `json:"messageId"`
	} `json:"unsend"`
	FutureThing  json.RawMessage `json:"futureThing"`
	RolloutStage string          `json:"rolloutStage"`
}

// kind maps a wire event back to the generator's kind name.
func (e seenEvent) kind() string {
	if e.Type == "message" && e.Message != nil {
		return e.Message.Type
	}
	return e.Type
}

// seenRequest is one request the fake ingest received.
type seenRequest struct {
	ChannelID   string
	Body        []byte
	Destination string
	Events      []seenEvent
	Redelivery  bool
	Status      int
}

// fakeIngest plays linepipe's ingest for the generator: it verifies every
// signature with events.VerifySignature and splits every body with
// events.ParseWebhook, then answers what decide says.
type fakeIngest struct {
	t       *testing.T
	secrets map[string]string
	// decide picks the status for a well-formed, correctly signed request;
	// nil means 200.
	decide func(r *seenRequest, r2 *http.Request) int

	mu       sync.Mutex
	requests []*seenRequest
	badSig   int
	problems []string
	// acceptedMsgs are message IDs (by channel) the fake answered 2xx for,
	// in the order it answered.
	acceptedMsgs map[string]map[string]seenEvent
}

func newFakeIngest(t *testing.T, channels []Channel, decide func(*seenRequest, *http.Request) int) (*fakeIngest, *httptest.Server) {
	f := &fakeIngest{t: t, secrets: map[string]string{}, decide: decide, acceptedMsgs: map[string]map[string]seenEvent{}}
	for _, c := range channels {
		f.secrets[c.ID] = c.Secret
		f.acceptedMsgs[c.ID] = map[string]seenEvent{}
	}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeIngest) problem(format string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, format)
}

func (f *fakeIngest) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/webhook/")
	secret, known := f.secrets[id]
	if r.Method != http.MethodPost || !ok || !known {
		f.problem("unexpected " + r.Method + " " + r.URL.Path)
		http.Error(w, "no", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		f.problem("content type " + ct)
	}
	body, _ := io.ReadAll(r.Body)
	if err := events.VerifySignature(secret, r.Header.Get("x-line-signature"), body); err != nil {
		f.mu.Lock()
		f.badSig++
		f.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	wh, err := events.ParseWebhook(body)
	if err != nil {
		f.problem("parse: " + err.Error())
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	sr := &seenRequest{ChannelID: id, Body: body, Destination: wh.Destination}
	for _, ev := range wh.Events {
		var e seenEvent
		if err := json.Unmarshal(ev.Raw, &e); err != nil {
			f.problem("event: " + err.Error())
		}
		sr.Events = append(sr.Events, e)
		if e.DeliveryContext != nil && e.DeliveryContext.IsRedelivery {
			sr.Redelivery = true
		}
	}
	sr.Status = http.StatusOK
	if f.decide != nil {
		sr.Status = f.decide(sr, r)
	}
	f.mu.Lock()
	f.requests = append(f.requests, sr)
	for _, e := range sr.Events {
		// An unsend must name a message this channel already accepted,
		// from the same chat and user.
		if e.Unsend == nil {
			continue
		}
		orig, ok := f.acceptedMsgs[id][e.Unsend.MessageID]
		if !ok {
			f.problems = append(f.problems, "unsend of never-accepted message "+e.Unsend.MessageID)
		} else if orig.Source != e.Source {
			f.problems = append(f.problems, "unsend from another source than message "+e.Unsend.MessageID)
		}
	}
	if sr.Status/100 == 2 {
		for _, e := range sr.Events {
			if e.Message != nil {
				f.acceptedMsgs[id][e.Message.ID] = e
			}
		}
	}
	f.mu.Unlock()
	w.WriteHeader(sr.Status)
}

// snapshot returns what the fake saw, failing the test on any problem.
func (f *fakeIngest) snapshot() []*seenRequest {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.badSig != 0 {
		f.t.Errorf("%d requests had a bad signature", f.badSig)
	}
	for _, p := range f.problems {
		f.t.Errorf("fake ingest: %s", p)
	}
	return append([]*seenRequest(nil), f.requests...)
}

func testChannels() []Channel {
	return []Channel{
		{ID: "1656000001", Secret: "8c570fa6dd201bb328f1c1eac23a96d8"},
		{ID: "1656000002", Secret: "0123456789abcdef0123456789abcdef"},
	}
}
