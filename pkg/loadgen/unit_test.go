package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileIsExactNearestRank(t *testing.T) {
	t.Parallel()
	var data []time.Duration
	for i := 1; i <= 100; i++ {
		data = append(data, ms(i))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(data), func(i, j int) { data[i], data[j] = data[j], data[i] })
	s := Summarize(data)
	if s.Count != 100 || s.P50 != ms(50) || s.P90 != ms(90) || s.P99 != ms(99) || s.Max != ms(100) {
		t.Errorf("1..100ms: got %+v, want p50 50ms p90 90ms p99 99ms max 100ms", s)
	}
	if s.Mean != 50500*time.Microsecond {
		t.Errorf("mean %s, want 50.5ms", s.Mean)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{29, ms(29)}, {0.1, ms(1)}, {1, ms(1)}, {100, ms(100)}, {57, ms(57)}, {99.9, ms(100)}} {
		if got := Percentile(data, c.p); got != c.want {
			t.Errorf("p%v = %s, want %s", c.p, got, c.want)
		}
	}
	ten := []time.Duration{ms(10), ms(20), ms(30), ms(40), ms(50), ms(60), ms(70), ms(80), ms(90), ms(1000)}
	if got := Percentile(ten, 50); got != ms(50) {
		t.Errorf("p50 of 10 = %s, want the 5th sample", got)
	}
	if got := Percentile(ten, 90); got != ms(90) {
		t.Errorf("p90 of 10 = %s, want the 9th sample", got)
	}
	if got := Percentile(ten, 99); got != ms(1000) {
		t.Errorf("p99 of 10 = %s, want the 10th sample", got)
	}
	if got := Percentile([]time.Duration{ms(7)}, 50); got != ms(7) {
		t.Errorf("single sample: %s", got)
	}
	if got := Summarize(nil); got != (LatencySummary{}) {
		t.Errorf("no samples: %+v", got)
	}
}

func TestBackoffDoublesWithJitterUpToMax(t *testing.T) {
	t.Parallel()
	base, maxD := 100*time.Millisecond, time.Second
	for n, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		if lo := backoffDelay(base, maxD, n, 0); lo != full/2 {
			t.Errorf("redelivery %d, no jitter: %s, want %s", n, lo, full/2)
		}
		if hi := backoffDelay(base, maxD, n, 0.999999); hi > full || hi < full*99/100 {
			t.Errorf("redelivery %d, most jitter: %s, want just under %s", n, hi, full)
		}
	}
}

func TestULIDsAreOrderedAndEncodeTheClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g := newULIDGen(clock, newLockedRand(1, 1))
	prev := ""
	for i := 0; i < 1000; i++ {
		if i == 500 {
			now = now.Add(time.Millisecond)
		}
		id := g.New()
		if !ulidRE.MatchString(id) {
			t.Fatalf("%q is not a ULID", id)
		}
		if id <= prev {
			t.Fatalf("ULID %q not after %q", id, prev)
		}
		prev = id
		ts, ok := events.ULIDTime(id)
		if !ok || !ts.Equal(now) {
			t.Fatalf("ULID %q decodes to %v, want %v", id, ts, now)
		}
	}
}

func TestSentPoolIsBoundedAndTakesOnce(t *testing.T) {
	t.Parallel()
	p := newSentPool(10, newLockedRand(1, 1))
	for i := 0; i < 100; i++ {
		p.add(&sentMessage{messageID: string(rune('a' + i%26))})
	}
	if p.len() != 10 {
		t.Fatalf("pool holds %d, want its bound 10", p.len())
	}
	for i := 0; i < 10; i++ {
		if p.take() == nil {
			t.Fatal("take from a non-empty pool returned nil")
		}
	}
	if p.take() != nil {
		t.Fatal("take from an empty pool returned a message")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{BaseURL: "http://127.0.0.1:1/", Channels: testChannels()}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if ok.Concurrency != DefaultConcurrency || ok.Duration != DefaultDuration || ok.Timeout != 2*time.Second ||
		ok.Retries != DefaultRetries || ok.EventsPerRequest != 1 || len(ok.Mix) != len(Kinds) || ok.BaseURL != "http://127.0.0.1:1" {
		t.Errorf("defaults not applied: %+v", ok)
	}
	none := Config{BaseURL: "http://x", Channels: testChannels(), Retries: -1, GroupShare: -1}
	for range 2 {
		if err := none.Validate(); err != nil || none.Retries >= 0 || none.GroupShare >= 0 {
			t.Fatalf("negative retries and group share must stay \"none\" across Validate calls: %+v, %v", none, err)
		}
	}
	for name, c := range map[string]Config{
		"no url":         {Channels: testChannels()},
		"no channels":    {BaseURL: "http://x"},
		"rate and conc":  {BaseURL: "http://x", Channels: testChannels(), Rate: 10, Concurrency: 2},
		"bad channel id": {BaseURL: "http://x", Channels: []Channel{{ID: "a/b", Secret: "s"}}},
		"no secret":      {BaseURL: "http://x", Channels: []Channel{{ID: "a"}}},
		"unknown kind":   {BaseURL: "http://x", Channels: testChannels(), Mix: Mix{"things": 1}},
		"zero mix":       {BaseURL: "http://x", Channels: testChannels(), Mix: Mix{KindText: 0}},
		"too many":       {BaseURL: "http://x", Channels: testChannels(), EventsPerRequest: 501},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestParseMixAndChannels(t *testing.T) {
	t.Parallel()
	m, err := ParseMix("text=60, sticker=10,futureThing=2")
	if err != nil || m[KindText] != 60 || m[KindSticker] != 10 || m[KindFutureThing] != 2 || len(m) != 3 {
		t.Errorf("ParseMix = %v, %v", m, err)
	}
	if m.String() != "text=60,sticker=10,futureThing=2" {
		t.Errorf("String = %q", m.String())
	}
	for _, bad := range []string{"text", "text=x", "nope=1", "text=-1", ""} {
		if _, err := ParseMix(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseMix(%q) = %v", bad, err)
		}
	}
	chs, err := ParseChannels("111:secretA,222:secret:with:colons")
	if err != nil || len(chs) != 2 || chs[1].Secret != "secret:with:colons" {
		t.Errorf("ParseChannels = %v, %v", chs, err)
	}
	for _, bad := range []string{"", "111", "111:", "1:a,1:b"} {
		_, err := ParseChannels(bad)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseChannels(%q) = %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") && strings.Contains(bad, ":a") {
			t.Errorf("error echoes a secret: %v", err)
		}
	}
}

func TestNoopServer(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	s, err := StartNoopServer("127.0.0.1:0", chans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })

	body := []byte(`{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}`)
	post := func(path, sig string, b []byte) int {
		req, _ := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(b))
		req.Header.Set("x-line-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// LINE's documented test vector is accepted.
	if got := post("/webhook/"+chans[0].ID, "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=", body); got != http.StatusOK {
		t.Errorf("LINE's test vector: %d, want 200", got)
	}
	if got := post("/webhook/"+chans[1].ID, events.Sign(chans[0].Secret, body), body); got != http.StatusUnauthorized {
		t.Errorf("another channel's signature: %d, want 401", got)
	}
	if got := post("/webhook/"+chans[0].ID, "", body); got != http.StatusUnauthorized {
		t.Errorf("missing signature: %d, want 401", got)
	}
	if got := post("/webhook/999", events.Sign("x", body), body); got != http.StatusNotFound {
		t.Errorf("unknown channel: %d, want 404", got)
	}
	big := bytes.Repeat([]byte("x"), NoopMaxBodyBytes+1)
	if got := post("/webhook/"+chans[0].ID, events.Sign(chans[0].Secret, big), big); got != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", got)
	}
	resp, err := http.Get(s.URL + "/webhook/" + chans[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}

	// Driven by the generator, every request is accepted.
	before := s.Handler.Accepted()
	rep := runOK(t, Config{BaseURL: s.URL, Channels: chans, Concurrency: 4, Requests: 100, EventsPerRequest: 5})
	if rep.Status["200"] != 100 || s.Handler.Accepted()-before != 100 {
		t.Errorf("noop server accepted %d of 100; report %v", s.Handler.Accepted()-before, rep.Status)
	}
}

func TestReportFormats(t *testing.T) {
	t.Parallel()
	chans := testChannels()
	_, srv := newFakeIngest(t, chans, func(r *seenRequest, _ *http.Request) int {
		if !r.Redelivery {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	rep := runOK(t, Config{BaseURL: srv.URL, Channels: chans, Concurrency: 2, Requests: 20, Backoff: time.Millisecond})
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"closed loop, concurrency 2", "first attempts", "all attempts", "p99", "503", "redeliveries 20"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		ElapsedSeconds float64          `json:"elapsedSeconds"`
		Requests       int64            `json:"requests"`
		Status         map[string]int64 `json:"status"`
		FirstAttempt   struct {
			Count int     `json:"count"`
			P99Ms float64 `json:"p99Ms"`
		} `json:"firstAttempt"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, js.String())
	}
	if got.Requests != 40 || got.Status["503"] != 20 || got.FirstAttempt.Count != 20 || got.ElapsedSeconds <= 0 || got.FirstAttempt.P99Ms <= 0 {
		t.Errorf("JSON report: %+v", got)
	}
}
