package linefake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func (b *bundle) issueToken(form url.Values) response {
	b.t.Helper()
	return b.must(http.MethodPost, PathToken, []byte(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func TestStaticTokenAuthenticates(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := b.send(PathPush, push(userA, text("hi")), "")
	wantStatus(t, r, http.StatusOK)
	if got := b.srv.Accepted(); len(got) != 1 || got[0].Channel != testChannel {
		t.Fatalf("accepted %+v, want one send on %s", got, testChannel)
	}
}

func TestMissingOrUnknownTokenIs401(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := mustJSON(t, push(userA, text("hi")))
	cases := map[string]map[string]string{
		"missing":     nil,
		"not bearer":  {"Authorization": "Basic " + testToken},
		"unknown":     {"Authorization": "Bearer nope"},
		"forged lf3":  {"Authorization": "Bearer lf3.AAAA.BBBB"},
		"empty token": {"Authorization": "Bearer "},
	}
	for name, h := range cases {
		r := b.must(http.MethodPost, PathPush, body, h)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, r.status)
			continue
		}
		if msg := r.errorBody(t).Message; msg == "" {
			t.Errorf("%s: 401 without LINE's message", name)
		}
	}
	if n := len(b.srv.Accepted()); n != 0 {
		t.Fatalf("%d sends accepted without a valid token", n)
	}
	if got := b.srv.Stats().Count("push", 401); got != len(cases) {
		t.Fatalf("stats count %d 401s, want %d", got, len(cases))
	}
}

func TestStatelessTokenIssueUseAndExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := b.issueToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {testChannel}, "client_secret": {testSecret}})
	wantStatus(t, r, http.StatusOK)
	var tok TokenResponse
	if err := json.Unmarshal(r.body, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn != 900 || tok.TokenType != "Bearer" || tok.AccessToken == "" {
		t.Fatalf("token response %+v, want expires_in 900, Bearer", tok)
	}
	auth := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	body := mustJSON(t, push(userA, text("hi")))

	b.clock.Advance(15*time.Minute - time.Second)
	wantStatus(t, b.must(http.MethodPost, PathPush, body, auth), http.StatusOK)

	b.clock.Advance(time.Second)
	wantStatus(t, b.must(http.MethodPost, PathPush, body, auth), http.StatusUnauthorized)

	// A token whose sealed payload is altered must not pass.
	tampered := tok.AccessToken[:len(tok.AccessToken)-2] + "xx"
	wantStatus(t, b.must(http.MethodPost, PathPush, body, map[string]string{"Authorization": "Bearer " + tampered}), http.StatusUnauthorized)
	if n := len(b.srv.Accepted()); n != 1 {
		t.Fatalf("accepted %d sends, want 1 (only before expiry)", n)
	}
}

func TestTokenEndpointErrorsAreOAuthStyle400(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	cases := []struct {
		name string
		form url.Values
		code string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {testChannel}, "client_secret": {"bad"}}, "invalid_client"},
		{"unknown channel", url.Values{"grant_type": {"client_credentials"}, "client_id": {"999"}, "client_secret": {testSecret}}, "invalid_client"},
		{"missing secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {testChannel}}, "invalid_request"},
		{"grant type", url.Values{"grant_type": {"password"}, "client_id": {testChannel}, "client_secret": {testSecret}}, "unsupported_grant_type"},
		{"jwt assertion", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"x.y.z"}}, "invalid_request"},
	}
	for _, c := range cases {
		r := b.issueToken(c.form)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", c.name, r.status)
			continue
		}
		var e OAuthError
		if err := json.Unmarshal(r.body, &e); err != nil || e.Error != c.code || e.Description == "" {
			t.Errorf("%s: body %s, want error %q with a description", c.name, r.body, c.code)
		}
		if strings.Contains(string(r.body), testSecret) {
			t.Errorf("%s: error body leaks the channel secret", c.name)
		}
	}
}

func TestTokenIsBoundToItsChannel(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Channels = append(c.Channels, Channel{ID: "2000", Secret: "s2"})
	})
	tok, err := b.srv.IssueAccessToken("2000")
	if err != nil {
		t.Fatal(err)
	}
	r := b.must(http.MethodPost, PathPush, mustJSON(t, push(userA, text("hi"))), map[string]string{"Authorization": "Bearer " + tok})
	wantStatus(t, r, http.StatusOK)
	if got := b.srv.Accepted(); len(got) != 1 || got[0].Channel != "2000" {
		t.Fatalf("accepted %+v, want the send on channel 2000", got)
	}
	if _, err := b.srv.IssueAccessToken("nope"); err == nil {
		t.Fatal("issued a token for an unknown channel")
	}
}
