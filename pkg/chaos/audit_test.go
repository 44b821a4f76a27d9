package chaos

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

func TestCountTokensFindsOnlyUnsentTokens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "svc.log")
	log := `{"msg":"stored","text":"lg-0a1b2c3d4e5f hello"}
{"msg":"other","text":"lg-ffffffffffff kept"}
{"msg":"twice","a":"lg-0a1b2c3d4e5f","b":"lg-0a1b2c3d4e5f"}
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := countTokens(path, map[string]bool{"lg-0a1b2c3d4e5f": true})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("found %d occurrences, want 3", n)
	}
}

func TestAuditOKFailsOnEveryKindOfProblem(t *testing.T) {
	t.Parallel()
	replied := ReplyAudit{Expected: 2, Accepted: 1, Uncertain: 1}
	if !(Audit{Replies: replied}).OK() {
		t.Fatal("a clean audit is not OK")
	}
	bad := []Audit{{EventsLost: 1}, {EventsDuplicated: 1}, {StreamUnstored: 1}, {ConsumerOpen: 1}, {OutboxOpen: 1},
		{OutboxPushesLost: 1}, {OutboxFailed: 1}, {DeliveredMissing: 1}, {DeliveredTwice: 1}, {RepliesTwice: 1}, {UnknownDeliveries: 1},
		{UnsentLeaks: []string{"events.raw: 1"}},
		{Replies: ReplyAudit{Expected: 1, Lost: 1}}, {Replies: ReplyAudit{Expected: 1, Accepted: 1, Late: 1}},
	}
	// A run with no reply to audit did not audit replies.
	bad = append(bad, Audit{})
	for i, a := range bad {
		if i < len(bad)-1 && a.Replies.Expected == 0 {
			a.Replies = replied
		}
		if a.OK() {
			t.Errorf("case %d: %+v passes", i, a)
		}
	}
	// The worker removes what it stored: messages left after the drain
	// keep data an unsend cannot reach, even when their events are stored.
	if (Audit{StreamLeft: 3, StreamUnsent: 1, Replies: replied}).OK() {
		t.Error("stored messages left on the stream pass the run")
	}
	// A retried reply LINE refuses is the sender finding out it may have
	// been delivered (uncertain), not a failure by itself.
	if !(Audit{Replies: ReplyAudit{Expected: 1, Uncertain: 1, Refused: 1}}).OK() {
		t.Error("a refused retry of an uncertain reply fails the run")
	}
}

func TestProxyAlternatesAndAnswers502ForADeadBackend(t *testing.T) {
	t.Parallel()
	var hits [2]atomic.Int64
	mk := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			_, _ = io.WriteString(w, r.URL.Path)
		}))
	}
	a, b := mk(0), mk(1)
	defer a.Close()
	p, err := StartProxy([]string{a.Listener.Addr().String(), b.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 4; i++ {
		resp, err := http.Get(p.URL + "/webhook/1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "/webhook/1" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	}
	if hits[0].Load() != 2 || hits[1].Load() != 2 {
		t.Fatalf("hits %d and %d, want 2 each", hits[0].Load(), hits[1].Load())
	}
	b.Close()
	codes := map[int]int{}
	for i := 0; i < 4; i++ {
		resp, err := http.Get(p.URL + "/webhook/1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[200] != 2 || codes[502] != 2 {
		t.Fatalf("with one backend down got %v, want 2 x 200 and 2 x 502", codes)
	}
}
