package linefake

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The content side of the emulator: LINE's data API (api-data.line.me)
// for the media messages the emulator itself put in webhooks.
//
//   - GET /v2/bot/message/{messageId}/content answers 200 with the bytes
//     and a Content-Type, 202 while a video or audio is still being
//     prepared (Config.ContentPreparing after the event), 404 for an id it
//     never sent, 410 {"message":"The content is gone"} once unsent.
//   - GET /v2/bot/message/{messageId}/content/transcoding answers
//     {"status":"processing"|"succeeded"} (404 and 410 as above).
//
// The bytes are deterministic per message id (ContentReader), so an audit
// can recompute any content's SHA-256 without the emulator keeping it.
// Content faults (SetContentFaults) apply to both endpoints: 500s, 429s,
// latency, and "drop", which sends half the body and then cuts the
// connection, as a broken download does. Both endpoints are rate limited
// per channel, each with its own bucket at LINE's "Other API endpoints"
// rate (RateLimits.Other, 2,000/s), and answer 429 past it.

// DataPrefix is where the emulator serves LINE's data API. LINE serves it
// on a host of its own (api-data.line.me) and the sends and the token
// endpoint on api.line.me, so the emulator keeps the two apart under one
// listener: a content fetcher pointed at LINE_API_BASE_URL, or a send at
// LINE_DATA_API_BASE_URL, gets a 404 here as it would at LINE, instead of
// passing every test and failing in production.
const DataPrefix = "/data"

// DataURL is the data API's base URL of an emulator whose base URL is
// base: what LINE_DATA_API_BASE_URL is set to.
func DataURL(base string) string { return strings.TrimRight(base, "/") + DataPrefix }

// API paths of the data API.
const (
	PathContent     = DataPrefix + "/v2/bot/message/{messageId}/content"
	PathTranscoding = DataPrefix + "/v2/bot/message/{messageId}/content/transcoding"
)

// Endpoint names of the data API in Stats.
const (
	EndpointContent     = "content"
	EndpointTranscoding = "transcoding"
)

// DefaultContentSize is a media message's size when its builder is given 0.
const DefaultContentSize = 64 << 10

const msgContentGone = "The content is gone"

// contentEntry is one media message the emulator sent in a webhook.
type contentEntry struct {
	channel string
	typ     string
	size    int64
	readyAt time.Time // video and audio: when transcoding succeeds
	unsent  bool
}

type contents struct {
	mu      sync.Mutex
	entries map[string]*contentEntry
	faults  *chaos
	served  map[string]int // message id -> full bodies served
}

func newContents(f Faults, seed uint64) *contents {
	return &contents{entries: map[string]*contentEntry{}, faults: newChaos(f, seed^0x5bd1e995), served: map[string]int{}}
}

func (c *contents) add(id string, e *contentEntry) {
	c.mu.Lock()
	c.entries[id] = e
	c.mu.Unlock()
}

func (c *contents) get(id string) (contentEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return contentEntry{}, false
	}
	return *e, true
}

func (c *contents) unsend(id string) {
	c.mu.Lock()
	if e, ok := c.entries[id]; ok {
		e.unsent = true
	}
	c.mu.Unlock()
}

// ContentReader returns the bytes the emulator serves for messageID:
// size bytes from a ChaCha8 stream seeded with the id's SHA-256.
func ContentReader(messageID string, size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(sha256.Sum256([]byte("linefake-content:"+messageID))), size)
}

// ContentSHA256 is the SHA-256 (hex) of messageID's content of size bytes.
func ContentSHA256(messageID string, size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, ContentReader(messageID, size))
	return fmt.Sprintf("%x", h.Sum(nil))
}

func contentType(typ string) string {
	switch typ {
	case "image":
		return "image/jpeg"
	case "video":
		return "video/mp4"
	case "audio":
		return "audio/x-m4a"
	}
	return "application/octet-stream"
}

// MediaEvent builds a message event of type image, video, audio or file
// from userID whose content (contentProvider "line") the emulator serves:
// size bytes (0: DefaultContentSize). A video or audio is being prepared
// for Config.ContentPreparing after now.
func (s *Server) MediaEvent(channelID, userID, typ string, size int64) WebhookEvent {
	if size <= 0 {
		size = DefaultContentSize
	}
	e := s.baseEvent("message", userID)
	e.ReplyToken = s.IssueReplyToken(channelID)
	m := &EventMessage{ID: s.nextMessageID(), Type: typ, MarkAsReadToken: s.randomToken(16, b64Encoding)}
	entry := &contentEntry{channel: channelID, typ: typ, size: size, readyAt: s.now()}
	switch typ {
	case "image", "video":
		m.QuoteToken = s.randomToken(24, b64Encoding)
	}
	switch typ {
	case "video", "audio":
		m.ContentProvider = &ContentProvider{Type: "line"}
		m.Duration = 1000 + size/1024
		entry.readyAt = s.now().Add(s.cfg.ContentPreparing)
	case "image":
		m.ContentProvider = &ContentProvider{Type: "line"}
	case "file":
		m.FileName = "file-" + m.ID + ".bin"
		m.FileSize = size
	}
	e.Message = m
	s.content.add(m.ID, entry)
	return e
}

// SetContentFaults replaces the faults of the data API at once.
func (s *Server) SetContentFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.content.faults.set(f)
	return nil
}

// ContentServed is how many complete bodies were served for messageID.
func (s *Server) ContentServed(messageID string) int {
	s.content.mu.Lock()
	defer s.content.mu.Unlock()
	return s.content.served[messageID]
}

// contentRequest authenticates, applies the rate limit and faults, and
// finds the message. It answers and reports false when the request ends
// here. As for sends, every authenticated request counts against ep's
// bucket (RateLimits.Other), whatever it then gets: LINE counts retries
// and refused requests too.
func (s *Server) contentRequest(w http.ResponseWriter, r *http.Request, ep string) (contentEntry, string, outcome, bool) {
	delay := s.content.faults.delay()
	if err := sleep(r.Context(), delay); err != nil {
		setOutcome(w, "canceled")
		return contentEntry{}, "", 0, false
	}
	channel, ok := s.authenticate(w, r)
	if !ok {
		return contentEntry{}, "", 0, false
	}
	if !s.limiter.allow(channel, ep, s.rateClock(r, delay)) {
		writeError(w, http.StatusTooManyRequests, msgRateLimited)
		return contentEntry{}, "", 0, false
	}
	// Only push, multicast, narrowcast and broadcast take a retry key;
	// "any other API returns 400".
	if r.Header.Get(RetryKeyHeader) != "" {
		writeError(w, http.StatusBadRequest, msgKeyNotSupported)
		return contentEntry{}, "", 0, false
	}
	fate := s.content.faults.roll()
	switch fate {
	case outcomeFail:
		writeError(w, http.StatusInternalServerError, msgInternal)
		return contentEntry{}, "", 0, false
	case outcomeTooMany:
		writeError(w, http.StatusTooManyRequests, msgRateLimited)
		return contentEntry{}, "", 0, false
	}
	id := r.PathValue("messageId")
	e, ok := s.content.get(id)
	if !ok || e.channel != channel {
		writeError(w, http.StatusNotFound, "not found")
		return contentEntry{}, "", 0, false
	}
	if e.unsent {
		writeError(w, http.StatusGone, msgContentGone)
		return contentEntry{}, "", 0, false
	}
	return e, id, fate, true
}

func (s *Server) serveContent(w http.ResponseWriter, r *http.Request) {
	e, id, fate, ok := s.contentRequest(w, r, EndpointContent)
	if !ok {
		return
	}
	if s.now().Before(e.readyAt) {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Content-Type", contentType(e.typ))
	w.Header().Set("Content-Length", strconv.FormatInt(e.size, 10))
	w.WriteHeader(http.StatusOK)
	body := ContentReader(id, e.size)
	if fate == outcomeDrop {
		// Half the body, then the connection dies.
		_, _ = io.CopyN(w, body, e.size/2)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		setOutcome(w, "dropped")
		panic(http.ErrAbortHandler)
	}
	if _, err := io.Copy(w, body); err == nil {
		s.content.mu.Lock()
		s.content.served[id]++
		s.content.mu.Unlock()
	}
}

func (s *Server) serveTranscoding(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := s.contentRequest(w, r, EndpointTranscoding)
	if !ok {
		return
	}
	status := "succeeded"
	if s.now().Before(e.readyAt) {
		status = "processing"
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": status})
}
