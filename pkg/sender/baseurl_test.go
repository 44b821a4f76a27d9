package sender

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// gatewayURL is a base URL carrying an egress gateway's credentials, with
// a password that makes it fail to parse: net/url then quotes "Qz9" as a
// port.
const gatewayURL = "https://gw-user:Qz9/gw-pass@egress.example/line?key=gw-key"

// shows reports which of the credentials in gatewayURL s shows.
func shows(s string) []string {
	var out []string
	for _, secret := range []string{"Qz9", "gw-pass", "gw-key"} {
		if strings.Contains(s, secret) {
			out = append(out, secret)
		}
	}
	return out
}

// TestConfigErrorHidesBaseURLCredentials: a LINE_API_BASE_URL refused at
// start is named in the error without its password or query.
func TestConfigErrorHidesBaseURLCredentials(t *testing.T) {
	t.Parallel()
	cfg := Config{BaseURL: "ftp://gw-user:gw-pass@egress.example/line?key=gw-key"}
	cfg.setDefaults()
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "LINE_API_BASE_URL") {
		t.Fatalf("Validate: %v, want LINE_API_BASE_URL refused", err)
	}
	if s := shows(err.Error()); s != nil {
		t.Fatalf("config error %q shows %v", err, s)
	}
}

// TestRequestErrorsHideBaseURLCredentials: a send or token request that
// cannot be built on the base URL fails with an error (the row's
// last_error) that does not show the URL's credentials.
func TestRequestErrorsHideBaseURLCredentials(t *testing.T) {
	t.Parallel()
	_, err := messageRequest(context.Background(), gatewayURL, "push", []byte(`{}`), "")
	if err == nil {
		t.Fatal("a push request was built on a URL that does not parse")
	}
	if s := shows(err.Error()); s != nil {
		t.Fatalf("push request error %q shows %v", err, s)
	}

	var logged []store.APILogEntry
	ts := newTokenSource(channels(map[string]store.Channel{"c1": {ID: "c1", Secret: "sec"}}), http.DefaultClient,
		gatewayURL, func() time.Time { return time.Unix(1_700_000_000, 0) }, func(e store.APILogEntry, _ error) { logged = append(logged, e) })
	_, err = ts.Get(context.Background(), "c1")
	if err == nil {
		t.Fatal("a token was issued through a URL that does not parse")
	}
	if s := shows(err.Error()); s != nil {
		t.Fatalf("token request error %q shows %v", err, s)
	}
	for _, e := range logged {
		if s := shows(e.Error); s != nil {
			t.Fatalf("api_log error %q shows %v", e.Error, s)
		}
	}
}
