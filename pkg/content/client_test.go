package content

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestGetErrorHidesBaseURLCredentials: a GET that cannot be built on the
// base URL fails, unsent, with an error (the row's last error) that does
// not show the URL's credentials.
func TestGetErrorHidesBaseURLCredentials(t *testing.T) {
	t.Parallel()
	_, err := get(context.Background(), http.DefaultClient, "https://gw-user:Qz9/gw-pass@egress.example/line?key=gw-key",
		"/v2/bot/message/1/content", "tok")
	if err == nil {
		t.Fatal("a request was built on a URL that does not parse")
	}
	for _, secret := range []string{"Qz9", "gw-pass", "gw-key"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
	if !errors.Is(err, errNotSent) {
		t.Errorf("error %q does not say no request was sent", err)
	}
}
