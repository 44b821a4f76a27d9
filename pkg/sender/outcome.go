package sender

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
)

// apiResponse is what one call to LINE answered. Status 0 means no HTTP
// answer (timeout, network error).
type apiResponse struct {
	Status            int
	RequestID         string
	AcceptedRequestID string
	Body              []byte
}

// outcome is what one attempt means for its row.
type outcome struct {
	Status         string // store.Outbox* status the row moves to
	Ambiguous      bool   // LINE may have accepted the request
	RefreshToken   bool   // drop the cached access token
	Backoff        bool   // retry after exponential backoff, else at once
	Error          string // for last_error
	SentMessageIDs []string
}

// usesRetryKey reports whether LINE accepts X-Line-Retry-Key on endpoint:
// push, multicast, narrowcast and broadcast do; reply answers 400.
func usesRetryKey(endpoint string) bool {
	return endpoint != store.EndpointReply && store.KnownEndpoint(endpoint)
}

// classify applies LINE's retry table (retrying-api-request): 2xx and a
// 409 on a retry key are success; 5xx, timeouts and network errors are
// retried with the same key; other 4xx are final. 429 is retried later,
// since LINE sends nothing on an error answer. 401 refreshes the token
// once. A reply has no key, so a refusal after an attempt that may have
// gone through cannot tell "delivered" from "refused": uncertain
// (maybeRefused).
func classify(row store.OutboxCandidate, maybeDelivered bool, r apiResponse, callErr error) outcome {
	out := classifyCall(row, r, callErr)
	if out.Status == store.OutboxFailed && row.Endpoint == store.EndpointReply && maybeDelivered {
		return maybeRefused(out)
	}
	return out
}

// maybeRefused is the end of a reply whose retry LINE refused for good
// after an earlier attempt got no answer. That attempt may have been
// delivered and used the token: the retry's 400 ("Invalid reply token")
// says as much, and a 403 or a second 401 says nothing about it. Failed
// would tell operators the user never got it.
func maybeRefused(out outcome) outcome {
	out.Status = store.OutboxUncertain
	out.Error = "reply refused after an earlier attempt got no answer; it may have been delivered: " + out.Error
	return out
}

// classifyCall is classify for any row, as if no earlier attempt could
// have been delivered.
func classifyCall(row store.OutboxCandidate, r apiResponse, callErr error) outcome {
	switch {
	case callErr != nil:
		return outcome{Status: store.OutboxRetrying, Ambiguous: true, Backoff: true, Error: callErr.Error()}
	case r.Status >= 200 && r.Status < 300:
		return outcome{Status: store.OutboxDelivered, SentMessageIDs: sentMessageIDs(r.Body)}
	case r.Status == http.StatusConflict && usesRetryKey(row.Endpoint):
		return outcome{Status: store.OutboxDelivered, SentMessageIDs: sentMessageIDs(r.Body),
			Error: "retry key already accepted (409): " + string(r.Body)}
	case r.Status >= 500:
		return outcome{Status: store.OutboxRetrying, Ambiguous: true, Backoff: true, Error: string(r.Body)}
	case r.Status == http.StatusTooManyRequests:
		return outcome{Status: store.OutboxRetrying, Backoff: true, Error: string(r.Body)}
	case r.Status == http.StatusUnauthorized:
		if row.LastStatusCode == http.StatusUnauthorized {
			return outcome{Status: store.OutboxFailed, RefreshToken: true,
				Error: "access token rejected again after a refresh (401): " + string(r.Body)}
		}
		return outcome{Status: store.OutboxRetrying, RefreshToken: true, Error: string(r.Body)}
	default:
		return outcome{Status: store.OutboxFailed, Error: fmt.Sprintf("LINE refused (%d): %s", r.Status, r.Body)}
	}
}

// sentMessageIDs reads sentMessages[].id from a push or reply answer (and
// a push 409). LINE documents the id as a string; a number is kept too.
func sentMessageIDs(body []byte) []string {
	ids, ok := sentIDsPlain(body)
	if !ok {
		ids = sentIDsDecoded(body)
	}
	for i, id := range ids {
		ids[i] = answerID(id)
	}
	return ids
}

// sentIDsDecoded is sentMessageIDs by a full decode of any answer.
func sentIDsDecoded(body []byte) []string {
	var b struct {
		SentMessages []struct {
			ID json.RawMessage `json:"id"`
		} `json:"sentMessages"`
	}
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	var ids []string
	for _, m := range b.SentMessages {
		var s string
		if json.Unmarshal(m.ID, &s) != nil {
			s = string(m.ID)
		}
		ids = append(ids, s)
	}
	return ids
}

// backoff is the wait before retry number attempt (1 = after the first
// attempt): base * 2^(attempt-1) capped at max, then "equal jitter" (half
// fixed, half random) so replicas retrying together spread out while the
// wait still grows. rnd returns [0,1).
func backoff(attempt int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(rnd()*float64(d/2))
}
