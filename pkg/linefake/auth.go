package linefake

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// LINE's 401 messages, as its API returns them.
const (
	msgNoAuthHeader = "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'"
	msgBadToken     = "Authentication failed. Confirm that the access token in the authorization header is valid."
)

// TokenResponse is the body of a successful POST /oauth2/v3/token.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// OAuthError is the channel-access-token endpoints' error body
// (channel-access-token.yml ErrorResponse), answered with 400.
type OAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// authenticate resolves the request's Bearer token to a channel, or
// answers 401 with LINE's error body.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		writeError(w, http.StatusUnauthorized, msgNoAuthHeader)
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		writeError(w, http.StatusUnauthorized, msgNoAuthHeader)
		return "", false
	}
	id, ok := s.channels.authenticate(strings.TrimSpace(token), s.now())
	if !ok {
		writeError(w, http.StatusUnauthorized, msgBadToken)
		return "", false
	}
	return id, true
}

// issueToken is POST /oauth2/v3/token with client_id and client_secret.
// The JWT-assertion form is answered 400: the emulator has no registered
// assertion keys. LINE's exact error codes for a wrong secret are not in
// the OpenAPI file; the emulator uses the OAuth 2.0 (RFC 6749) names with
// the 400 status LINE's token endpoints document.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, OAuthError{"invalid_request", "some parameters missed or invalid"})
		return
	}
	f := r.PostForm
	switch {
	case r.Header.Get(RetryKeyHeader) != "":
		// LINE: any API other than push, multicast, narrowcast and
		// broadcast answers 400 to X-Line-Retry-Key.
		writeJSON(w, http.StatusBadRequest, OAuthError{"invalid_request", "X-Line-Retry-Key is not supported by this API"})
		return
	case f.Get("grant_type") != "client_credentials":
		writeJSON(w, http.StatusBadRequest, OAuthError{"unsupported_grant_type", "grant_type must be client_credentials"})
		return
	case f.Get("client_assertion") != "":
		writeJSON(w, http.StatusBadRequest, OAuthError{"invalid_request", "client_assertion is not supported by this emulator"})
		return
	case f.Get("client_id") == "" || f.Get("client_secret") == "":
		writeJSON(w, http.StatusBadRequest, OAuthError{"invalid_request", "some parameters missed or invalid"})
		return
	}
	tok, err := s.channels.issue(f.Get("client_id"), f.Get("client_secret"), s.now())
	if errors.Is(err, ErrUnknownChannel) {
		writeJSON(w, http.StatusBadRequest, OAuthError{"invalid_client", "invalid client_id or client_secret"})
		return
	}
	writeJSON(w, http.StatusOK, TokenResponse{AccessToken: tok, ExpiresIn: int(s.cfg.StatelessTokenTTL.Seconds()), TokenType: "Bearer"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorBody{Message: msg})
}
