package linefake

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestRateLimitReturns429AndRefills(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.RateLimits.Push = Limit{Requests: 5, Per: time.Second} })
	for i := range 5 {
		if r := b.send(PathPush, push(userA, text("x")), ""); r.status != http.StatusOK {
			t.Fatalf("request %d: status %d within the limit", i, r.status)
		}
	}
	r := b.send(PathPush, push(userA, text("x")), "")
	wantStatus(t, r, http.StatusTooManyRequests)
	if msg := r.errorBody(t).Message; msg != "The API rate limit has been exceeded. Try again later." {
		t.Fatalf("message %q", msg)
	}
	// Other endpoints and channels have their own buckets.
	wantStatus(t, b.send(PathMulticast, map[string]any{"to": []string{userA}, "messages": texts(1)}, ""), http.StatusOK)

	b.clock.Advance(200 * time.Millisecond) // refills one token at 5/s
	wantStatus(t, b.send(PathPush, push(userA, text("x")), ""), http.StatusOK)
	wantStatus(t, b.send(PathPush, push(userA, text("x")), ""), http.StatusTooManyRequests)

	st := b.srv.Stats()
	if st.Count("push", 200) != 6 || st.Count("push", 429) != 2 {
		t.Fatalf("push counts %v, want 6x200 and 2x429", st.Requests["push"])
	}
	if n := len(b.srv.Accepted()); n != 7 {
		t.Fatalf("accepted %d, want 7 (rate-limited requests send nothing)", n)
	}
}

// LINE's narrowcast and broadcast allow 60 requests an hour by default.
func TestDefaultBroadcastRateIs60PerHour(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := map[string]any{"messages": texts(1)}
	for i := range 60 {
		if r := b.send(PathBroadcast, body, ""); r.status != http.StatusOK {
			t.Fatalf("broadcast %d: status %d", i, r.status)
		}
	}
	wantStatus(t, b.send(PathBroadcast, body, ""), http.StatusTooManyRequests)
	b.clock.Advance(time.Minute)
	wantStatus(t, b.send(PathBroadcast, body, ""), http.StatusOK)
	wantStatus(t, b.send(PathBroadcast, body, ""), http.StatusTooManyRequests)
}

func TestMaxRequestsPerSecondWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.RateLimits.Push = Limit{Requests: 4, Per: time.Second} })
	sendN := func(n int) {
		for range n {
			b.send(PathPush, push(userA, text("x")), "")
		}
	}
	sendN(3) // t=0: 3 admitted
	b.clock.Advance(500 * time.Millisecond)
	sendN(3) // t=0.5: bucket 1+2 = 3 tokens, all admitted: 6 admitted, 6 attempts in [0, 1s)
	b.clock.Advance(600 * time.Millisecond)
	sendN(2) // t=1.1: the t=0 requests left the window; 5 in (0.1, 1.1]
	w := b.srv.Stats().Window(testChannel, EndpointPush)
	if w.MaxAttempts != 6 || w.MaxAdmitted != 6 {
		t.Fatalf("window %+v, want 6 attempts and 6 admitted in the busiest second", w)
	}
	sendN(4) // t=1.1: 0.4 tokens left, so all four get 429; attempts in (0.1, 1.1] reach 9
	w = b.srv.Stats().Window(testChannel, EndpointPush)
	if w.MaxAttempts != 9 || w.MaxAdmitted != 6 {
		t.Fatalf("window %+v, want 9 attempts and still 6 admitted", w)
	}
	if n := b.srv.Stats().Count("push", 429); n != 4 {
		t.Fatalf("%d 429s, want 4", n)
	}
	if w := b.srv.Stats().Window(testChannel, EndpointReply); w.MaxAttempts != 0 {
		t.Fatalf("reply window %+v without any reply", w)
	}
}

func TestSameUserCap(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.UserCap = UserCap{Messages: 3, Per: time.Hour} })
	wantStatus(t, b.send(PathPush, push(userA, text("1"), text("2")), ""), http.StatusOK)
	r := b.send(PathPush, push(userA, text("3"), text("4")), "")
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.errorBody(t).Message != "A large number of messages were sent to the same user" {
		t.Fatalf("body %s", r.body)
	}
	wantStatus(t, b.send(PathPush, push(userA, text("3")), ""), http.StatusOK)
	wantStatus(t, b.send(PathPush, push(userB, text("1")), ""), http.StatusOK)
	b.clock.Advance(time.Hour)
	wantStatus(t, b.send(PathPush, push(userA, text("5"), text("6"), text("7")), ""), http.StatusOK)
	if n := len(b.srv.Accepted()); n != 4 {
		t.Fatalf("accepted %d, want 4", n)
	}
}

func TestUserCapOffByDefault(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for i := range 50 {
		if r := b.send(PathPush, push(userA, texts(5)...), ""); r.status != http.StatusOK {
			t.Fatalf("push %d: %d", i, r.status)
		}
	}
}

// BusiestSecond counts as the emulator's own windows do: a window is the
// second ending at a time, and a time exactly one second earlier is out.
func TestBusiestSecond(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1700000000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	for _, c := range []struct {
		ms   []int
		want int
	}{
		{nil, 0},
		{[]int{0}, 1},
		{[]int{0, 999}, 2},
		{[]int{0, 1000}, 1},
		{[]int{0, 100, 900, 1050, 1100, 1200, 3000}, 4},
		{[]int{0, 10, 20, 2000, 2001, 2002, 2003}, 4},
	} {
		if got := BusiestSecond(at(c.ms...)); got != c.want {
			t.Errorf("BusiestSecond(%v ms) = %d, want %d", c.ms, got, c.want)
		}
	}
}

// Requests timed by their arrival reach the windows out of time order
// (one that arrived first may be handled second). Counted in whatever
// order, up to a second late, the busiest second is that of the sorted
// times.
func TestBusiestSecondOutOfOrder(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(7, 11))
	t0 := time.Unix(1700000000, 0)
	for round := range 200 {
		n := 50 + rnd.IntN(400)
		ts := make([]time.Time, n)
		for i := range ts {
			// Bursts and gaps, so the busiest second moves about.
			ts[i] = t0.Add(time.Duration(rnd.IntN(3000+round*10)) * time.Millisecond / 2)
		}
		sorted := slices.SortedFunc(slices.Values(ts), time.Time.Compare)
		want := 0
		for j := range sorted {
			k := 0
			for sorted[j].Sub(sorted[k]) >= time.Second {
				k++
			}
			want = max(want, j-k+1)
		}
		// Arrival order: each time handled up to 900 ms after it arrived.
		order := slices.Clone(sorted)
		handled := map[time.Time]time.Duration{}
		for _, x := range order {
			handled[x] = time.Duration(rnd.IntN(900)) * time.Millisecond
		}
		slices.SortStableFunc(order, func(a, b time.Time) int { return a.Add(handled[a]).Compare(b.Add(handled[b])) })
		if got := BusiestSecond(order); got != want {
			t.Fatalf("round %d: %d times out of order counted %d in the busiest second, sorted %d", round, n, got, want)
		}
	}
}
