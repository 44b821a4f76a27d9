package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestClientIPTakesRightmostUntrustedHop(t *testing.T) {
	t.Parallel()
	custom, err := ParseTrustedProxies("203.0.113.7, 198.51.100.0/24")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		peer   string
		xff    []string
		trust  bool
		custom bool
		want   string
	}{
		{name: "no trust: peer, header ignored", peer: "192.0.2.1:5000", xff: []string{"1.2.3.4"}, want: "192.0.2.1"},
		{name: "trusted peer, one hop", peer: "10.0.0.5:5000", xff: []string{"192.0.2.9"}, trust: true, want: "192.0.2.9"},
		{name: "client-forged leftmost entry is not believed", peer: "10.0.0.5:5000",
			xff: []string{"6.6.6.6, 192.0.2.9"}, trust: true, want: "192.0.2.9"},
		{name: "chain of trusted proxies is skipped", peer: "127.0.0.1:5000",
			xff: []string{"6.6.6.6, 192.0.2.9, 10.1.1.1", "172.16.0.3"}, trust: true, want: "192.0.2.9"},
		{name: "untrusted peer cannot speak for anyone", peer: "192.0.2.200:5000", xff: []string{"1.2.3.4"},
			trust: true, want: "192.0.2.200"},
		{name: "garbage hop stops the walk", peer: "10.0.0.5:5000", xff: []string{"6.6.6.6, bogus, 10.0.0.9"},
			trust: true, want: "10.0.0.9"},
		{name: "all hops trusted: leftmost", peer: "10.0.0.5:5000", xff: []string{"10.0.0.8, 10.0.0.9"},
			trust: true, want: "10.0.0.8"},
		{name: "no header: peer", peer: "10.0.0.5:5000", trust: true, want: "10.0.0.5"},
		{name: "IPv6 peer and hop", peer: "[::1]:5000", xff: []string{"2001:db8::1"}, trust: true, want: "2001:db8::1"},
		{name: "custom list: default private range is not trusted", peer: "10.0.0.5:5000", xff: []string{"1.2.3.4"},
			trust: true, custom: true, want: "10.0.0.5"},
		{name: "custom list", peer: "203.0.113.7:5000", xff: []string{"6.6.6.6, 1.2.3.4, 198.51.100.9"},
			trust: true, custom: true, want: "1.2.3.4"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/webhook/1", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		h := &Handler{Config: Config{TrustProxy: c.trust}}
		if c.custom {
			h.Config.TrustedProxies = custom
		}
		if got := h.remoteIP(r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8, nonsense"); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// A client sending webhooks for random channel ids cannot grow the
// negative cache without bound, and an evicted entry only costs a query.
func TestNegativeCacheIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := NewSecrets(nil, nil, zap.NewNop(), func() time.Time { return now })
	s.mu.Lock()
	for i := 0; i < 3*maxMissing; i++ {
		s.rememberMissing(fmt.Sprintf("bogus-%d", i))
	}
	n := len(s.missing)
	s.mu.Unlock()
	if n > maxMissing {
		t.Fatalf("negative cache holds %d ids, cap %d", n, maxMissing)
	}
	if _, err := s.Secret(context.Background(), "bogus-1"); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("unknown channel after eviction: %v", err)
	}
	if s.MissingCached() > maxMissing {
		t.Fatal("cap exceeded")
	}
}
