package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/store"
)

// maxAnswerBytes bounds how much of an answer is read: LINE's answers are
// small JSON documents, and error bodies are stored in last_error.
const maxAnswerBytes = 64 << 10

// newHTTPClient sets every timeout, unlike http.DefaultClient, so a stuck
// connection ends as a retryable "no answer" well inside the row's lease.
// Redirects are not followed: the Messaging API does not redirect, and a
// followed POST could be replayed somewhere else.
func newHTTPClient(timeout time.Duration, conns int) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   conns, // one per request in flight: no dial in the path of a timed send
		// Requests are a few hundred bytes of headers and a small body,
		// answers a few hundred bytes: 1 KiB buffers instead of 4 KiB
		// take 6 MiB off the live heap with hundreds of connections open.
		// A larger body is written past the buffer.
		WriteBufferSize:   1 << 10,
		ReadBufferSize:    1 << 10,
		ForceAttemptHTTP2: true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// do sends one request. A non-nil error means no HTTP answer arrived.
// The Authorization header is set here and goes nowhere else.
func do(ctx context.Context, c *http.Client, req *http.Request, token string) (apiResponse, error) {
	if req.Context() != ctx {
		req = req.WithContext(ctx)
	}
	if token != "" {
		req.Header["Authorization"] = []string{"Bearer " + token}
	}
	res, err := c.Do(req)
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, config.WithoutURL(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
	out := apiResponse{
		Status:            res.StatusCode,
		RequestID:         answerID(res.Header.Get("X-Line-Request-Id")),
		AcceptedRequestID: answerID(res.Header.Get("X-Line-Accepted-Request-Id")),
		Body:              body,
	}
	if err != nil {
		// The status arrived, so LINE decided; a torn body only loses
		// details (e.g. sentMessages).
		out.Body = nil
	}
	return out, nil
}

// maxAnswerID bounds an id taken from LINE's answer: a request id is a
// UUID, a message id a number of under twenty digits.
const maxAnswerID = 256

// answerID is an id from LINE's answer as it can be written: completions
// are grouped into one statement (store.CompleteOutboxBatch), so a NUL or
// a byte that is not UTF-8, which Postgres refuses, would fail every row
// of the group and have them all sent again after their leases.
func answerID(s string) string { return store.SanitizeText(s, maxAnswerID) }

// messageRequest builds the POST for an outbox row: the stored bytes,
// unchanged, and the retry key where LINE accepts one. Its headers are
// written in canonical form, straight into the map: one map per send
// and nothing else.
func messageRequest(ctx context.Context, baseURL, endpoint string, body []byte, retryKey string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v2/bot/message/"+endpoint, bytes.NewReader(body))
	if err != nil {
		// It ends in last_error: never the base URL's credentials.
		return nil, fmt.Errorf("building %s request: %w", endpoint, config.RedactURLError(err))
	}
	req.Header = make(http.Header, 4) // with Authorization (do)
	req.Header["Content-Type"] = contentTypeJSON
	if retryKey != "" {
		req.Header["X-Line-Retry-Key"] = []string{retryKey}
	}
	return req, nil
}

// contentTypeJSON is shared by every request's header map; net/http never
// writes into a header's values, and an append would copy.
var contentTypeJSON = []string{"application/json"}
