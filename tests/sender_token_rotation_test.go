package tests

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// holdTransport holds the push request whose body contains match: with
// fake set it answers 200 itself without calling LINE once released;
// otherwise it forwards the request and holds LINE's answer until released.
type holdTransport struct {
	next    http.RoundTripper
	match   atomic.Value // string
	fake    bool
	held    chan struct{} // closed when the matching request is held
	release chan struct{}
}

func (h *holdTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	m, _ := h.match.Load().(string)
	if r.URL.Path != linefake.PathPush || m == "" {
		return h.next.RoundTrip(r)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !strings.Contains(string(body), m) {
		return h.next.RoundTrip(r)
	}
	var res *http.Response
	if !h.fake {
		var err error
		if res, err = h.next.RoundTrip(r); err != nil {
			return nil, err
		}
	}
	close(h.held)
	select {
	case <-h.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	if h.fake {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"sentMessages":[{"id":"1"}]}`)), Request: r}, nil
	}
	return res, nil
}

// After an operator rotates a channel's static token, the retry of a row
// LINE answered 401 is sent with the token channels now holds, whichever
// replica claims it (docs/OUTBOX.md: "401: cached token dropped, retrying
// at once with a fresh token"). Only the replica that got the 401 dropped
// its cached token; another replica that cached the revoked one used to
// resend with it, get a second 401 and fail the row for good.
func TestTokenRotationRetryOnAnotherReplicaUsesFreshToken(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	ctx := context.Background()
	secret := "s3cr3t-" + t.Name()
	if err := b.line.AddChannel(linefake.Channel{ID: b.channel, Secret: secret, AccessTokens: []string{"token-one"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool.Exec(ctx, `UPDATE channels SET access_token = 'token-one' WHERE channel_id = $1`, b.channel); err != nil {
		t.Fatal(err)
	}
	cfg := func(owner string, tr http.RoundTripper) func() {
		c := b.config(owner)
		c.Concurrency, c.BatchSize = 1, 1
		c.RequestTimeout, c.Lease = 10*time.Second, 30*time.Second
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: tr}
		return b.start(t, c)
	}
	// Replica Y uses token-one, then has its only request slot held.
	ty := &holdTransport{next: http.DefaultTransport, fake: true,
		held: make(chan struct{}), release: make(chan struct{})}
	ty.match.Store("BLOCK")
	cfg("Y", ty)
	b.waitStatus(t, b.insert(t, "push", pushBody(userID(1), "warm Y")), "delivered")
	block := b.insert(t, "push", pushBody(userID(2), "BLOCK"))
	<-ty.held
	// Replica X uses token-one too.
	tx := &holdTransport{next: http.DefaultTransport, held: make(chan struct{}), release: make(chan struct{})}
	stopX := cfg("X", tx)
	b.waitStatus(t, b.insert(t, "push", pushBody(userID(3), "warm X")), "delivered")
	// Y's cached token-one is older than tokenRecheckAge (1 s) by the time
	// it claims the retry, as a token cached before a rotation is.
	time.Sleep(1200 * time.Millisecond)

	// The operator rotates the static token: LINE revokes token-one.
	if err := b.line.AddChannel(linefake.Channel{ID: b.channel, Secret: secret, AccessTokens: []string{"token-two"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Pool.Exec(ctx, `UPDATE channels SET access_token = 'token-two' WHERE channel_id = $1`, b.channel); err != nil {
		t.Fatal(err)
	}
	// X sends the row with token-one and LINE answers 401.
	tx.match.Store("R1")
	id := b.insert(t, "push", pushBody(userID(4), "R1"))
	<-tx.held
	// X is shut down (it records the 401, then claims nothing more); Y
	// gets its slot back.
	go stopX()
	time.Sleep(200 * time.Millisecond)
	close(ty.release)
	b.waitStatus(t, block, "delivered")
	close(tx.release)

	r := b.waitFinished(t, id)
	var codes []int
	rows, err := b.db.Pool.Query(ctx, `SELECT status FROM api_log WHERE outbox_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c int
		_ = rows.Scan(&c)
		codes = append(codes, c)
	}
	if r.Status != "delivered" || len(codes) != 2 || codes[0] != http.StatusUnauthorized || codes[1] != http.StatusOK {
		t.Fatalf("after a token rotation the row ended %s (api_log %v), want delivered with the fresh token in channels", r.Status, codes)
	}
}
