package linefake

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SentMessage is one entry of sentMessages in push and reply responses.
type SentMessage struct {
	ID         string `json:"id"`
	QuoteToken string `json:"quoteToken,omitempty"`
}

// Delivery is one send LINE accepted: what a user would have received.
type Delivery struct {
	Seq       int       `json:"seq"`
	Channel   string    `json:"channel"`
	Endpoint  string    `json:"endpoint"` // push, reply, multicast, narrowcast, broadcast
	RetryKey  string    `json:"retryKey,omitempty"`
	RequestID string    `json:"requestId"`
	At        time.Time `json:"at"`
	// Body is the request body exactly as received.
	Body json.RawMessage `json:"body"`
	// SentMessages are the ids given out (push and reply only).
	SentMessages []SentMessage `json:"sentMessages,omitempty"`
	// Recipients: the push target or multicast user ids; empty for reply,
	// narrowcast and broadcast, whose audience LINE resolves itself.
	Recipients []string `json:"recipients,omitempty"`
	ReplyToken string   `json:"replyToken,omitempty"`
	// Dropped: accepted, then the connection was closed with no response.
	Dropped bool `json:"dropped,omitempty"`
	// RetryKeyReuse counts earlier accepted sends with the same channel and
	// retry key. Above zero means the key was reused after LINE's window
	// and this send is a duplicate LINE delivered.
	RetryKeyReuse int `json:"retryKeyReuse,omitempty"`
}

// Stats counts requests by endpoint (the send endpoints, token, and the
// data API's content and transcoding) and status. Status is the HTTP code,
// or "dropped" for an accept-then-drop.
type Stats struct {
	Requests    map[string]map[string]int `json:"requests"`
	Accepted    int                       `json:"accepted"`
	Dropped     int                       `json:"dropped"`
	RateWindows []RateWindow              `json:"rateWindows"`
}

// Count is Requests[endpoint][status], for brevity in tests.
func (s Stats) Count(endpoint string, status int) int {
	return s.Requests[endpoint][strconv.Itoa(status)]
}

// Window is the one-second maxima for channel and endpoint; zero when
// that pair saw no request.
func (s Stats) Window(channel, endpoint string) RateWindow {
	for _, w := range s.RateWindows {
		if w.Channel == channel && w.Endpoint == endpoint {
			return w
		}
	}
	return RateWindow{Channel: channel, Endpoint: endpoint}
}

// ledger is the emulator's record of what it accepted and answered.
type ledger struct {
	mu         sync.Mutex
	deliveries []Delivery
	requests   map[string]map[string]int
	keyUses    map[string]int // channel|key -> accepted sends
}

func newLedger() *ledger {
	l := &ledger{}
	l.reset()
	return l
}

func (l *ledger) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries = nil
	l.requests = map[string]map[string]int{}
	l.keyUses = map[string]int{}
}

func (l *ledger) record(d Delivery) Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	d.Seq = len(l.deliveries) + 1
	if d.RetryKey != "" {
		k := d.Channel + "|" + strings.ToLower(d.RetryKey)
		d.RetryKeyReuse = l.keyUses[k]
		l.keyUses[k]++
	}
	l.deliveries = append(l.deliveries, d)
	return d
}

func (l *ledger) count(endpoint, status string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.requests[endpoint]
	if m == nil {
		m = map[string]int{}
		l.requests[endpoint] = m
	}
	m[status]++
}

// accepted is how many sends were accepted, without copying them.
func (l *ledger) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.deliveries)
}

func (l *ledger) snapshot() ([]Delivery, Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ds := append([]Delivery(nil), l.deliveries...)
	st := Stats{Requests: map[string]map[string]int{}, Accepted: len(ds)}
	for ep, m := range l.requests {
		c := make(map[string]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		st.Requests[ep] = c
	}
	for _, d := range ds {
		if d.Dropped {
			st.Dropped++
		}
	}
	return ds, st
}

// GroupBy groups deliveries by a key the caller extracts; a delivery for
// which key reports false is left out. Whether two accepted sends with the
// same body are duplicates is the caller's call, so the key is too.
func GroupBy(ds []Delivery, key func(Delivery) (string, bool)) map[string][]Delivery {
	out := map[string][]Delivery{}
	for _, d := range ds {
		if k, ok := key(d); ok {
			out[k] = append(out[k], d)
		}
	}
	return out
}

// Duplicates keeps only the groups of GroupBy with more than one delivery.
func Duplicates(ds []Delivery, key func(Delivery) (string, bool)) map[string][]Delivery {
	g := GroupBy(ds, key)
	for k, v := range g {
		if len(v) < 2 {
			delete(g, k)
		}
	}
	return g
}

// ByRetryKey is a key for GroupBy: channel and retry key, skipping sends
// made without one.
func ByRetryKey(d Delivery) (string, bool) {
	if d.RetryKey == "" {
		return "", false
	}
	return d.Channel + "|" + strings.ToLower(d.RetryKey), true
}

// BodyField returns a GroupBy key reading a value from the body by a
// dotted path: "messages.0.text", "to". Array elements are addressed by
// index. The key is the channel plus the value's JSON text, so strings,
// numbers and objects all work; sends without the field are skipped.
func BodyField(path string) func(Delivery) (string, bool) {
	parts := strings.Split(path, ".")
	return func(d Delivery) (string, bool) {
		cur := json.RawMessage(d.Body)
		for _, p := range parts {
			var obj map[string]json.RawMessage
			if json.Unmarshal(cur, &obj) == nil {
				v, ok := obj[p]
				if !ok {
					return "", false
				}
				cur = v
				continue
			}
			var arr []json.RawMessage
			i, err := strconv.Atoi(p)
			if json.Unmarshal(cur, &arr) != nil || err != nil || i < 0 || i >= len(arr) {
				return "", false
			}
			cur = arr[i]
		}
		return d.Channel + "|" + string(cur), true
	}
}

// sortedKeys is for stable admin output.
func sortedKeys(m map[string][]Delivery) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
