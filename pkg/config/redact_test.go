package config

import (
	"net/http"
	"strings"
	"testing"
)

// TestRedactURL: a base URL is printed without anything that may be a
// credential (password, lone user name, query, fragment), and one that
// does not parse is not printed at all.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"https://api.line.me", "https://api.line.me"},
		{"http://127.0.0.1:8080/line", "http://127.0.0.1:8080/line"},
		{"https://gw-user:gw-pass@egress.example/line?key=gw-key&x=1", "https://gw-user:xxxxx@egress.example/line"},
		{"https://gw-token@egress.example", "https://xxxxx@egress.example"},
		{"https://egress.example/line?gw-key", "https://egress.example/line"},
		{"https://egress.example/line?", "https://egress.example/line"},
		{"https://egress.example/line#gw-key", "https://egress.example/line"},
		{"http:gw-user:gw-pass@egress.example", "<redacted>"},    // opaque
		{"https://gw-user:gw pass@egress.example", "<redacted>"}, // does not parse
		{"https://gw-user:gw-\x7fpass@egress.example", "<redacted>"},
	}
	for _, c := range cases {
		got := RedactURL(c.in)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, secret := range []string{"gw-pass", "gw-key", "gw-token", "gw pass"} {
			if strings.Contains(got, secret) {
				t.Errorf("RedactURL(%q) = %q: shows %q", c.in, got, secret)
			}
		}
	}
}

// TestRedactURLError: the error of a request built on a base URL that
// does not parse shows neither the URL nor the parser's reason, which
// quotes the password as a port here.
func TestRedactURLError(t *testing.T) {
	t.Parallel()
	_, err := http.NewRequest(http.MethodGet, "https://gw-user:Qz9/gw-pass@egress.example/v2/bot/info", nil)
	if err == nil {
		t.Fatal("the URL parsed")
	}
	if !strings.Contains(err.Error(), "Qz9") {
		t.Fatalf("the test's premise: %v does not quote the password", err)
	}
	got := RedactURLError(err).Error()
	if strings.Contains(got, "Qz9") || strings.Contains(got, "gw-pass") || !strings.Contains(got, "not a valid URL") {
		t.Fatalf("redacted error %q", got)
	}
	if e := RedactURLError(http.ErrNotSupported); e != http.ErrNotSupported {
		t.Fatalf("an error without a URL changed: %v", e)
	}
}
