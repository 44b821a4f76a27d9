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
		// Credentials with an unescaped "/", "?" or "#" end the authority
		// early: they parse as a host and a path, query or fragment.
		{"https://gw/tok+en==@egress.example/line", "<redacted>"},
		{"https://gw-user:/gw-pass@egress.example", "<redacted>"},
		{"https://gw-user:12?gw-pass@egress.example", "<redacted>"},
		{"https://gw-user:12#gw-pass@egress.example", "<redacted>"},
	}
	for _, c := range cases {
		got := RedactURL(c.in)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, secret := range []string{"gw-pass", "gw-key", "gw-token", "gw pass", "tok+en", ":12"} {
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

// TestCheckBaseURL: a base URL that cannot work, or whose credentials
// would parse as a path, is refused at start, and the error shows it
// redacted.
func TestCheckBaseURL(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"https://api.line.me":                           true,
		"http://linefake:8090/data":                     true,
		"https://gw-user:gw-pass@egress.example/line":   true,
		"https://gw-user:gw%2Fpass@egress.example/line": true,
		"ftp://api.line.me":                             false,
		"api.line.me":                                   false,
		"https://":                                      false,
		"https://egress.example/line?key=gw-key":        false,
		"https://egress.example/line#gw-key":            false,
		"https://gw-user:gw/pass@egress.example":        false,
		"https://gw-user:gw?pass@egress.example":        false,
	} {
		err := CheckBaseURL("LINE_API_BASE_URL", in)
		if (err == nil) != ok {
			t.Errorf("CheckBaseURL(%q) = %v, want ok %v", in, err, ok)
		}
		if err != nil && (strings.Contains(err.Error(), "pass") || strings.Contains(err.Error(), "gw-key")) {
			t.Errorf("CheckBaseURL(%q): the error shows a credential: %v", in, err)
		}
	}
}
