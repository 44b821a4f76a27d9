package linefake

import (
	"errors"
	"io"
	"net/http"
	"strings"
)

// Messages LINE answers with. Texts marked UNCONFIRMED are not in LINE's
// documentation; clients must branch on the status code, as LINE advises.
const (
	msgRateLimited     = "The API rate limit has been exceeded. Try again later."
	msgSameUser        = "A large number of messages were sent to the same user"
	msgInvalidReply    = "Invalid reply token"
	msgKeyAccepted     = "The retry key is already accepted"
	msgInternal        = "Internal server error"                               // UNCONFIRMED text
	msgTooLarge        = "Request Entity Too Large"                            // UNCONFIRMED text
	msgKeyNotSupported = "The retry key is not supported by this API"          // UNCONFIRMED text
	msgKeyNotUUID      = "The value of X-Line-Retry-Key must be a UUID string" // UNCONFIRMED text
)

// sendCall is one send request on its way through the pipeline.
type sendCall struct {
	ep, channel, key, requestID string
	body                        []byte
	req                         *sendRequest
	fate                        outcome
}

// send handles one send endpoint. The order mirrors what a client can
// observe at LINE: authentication, the rate limit (every authenticated
// request counts, retries and bad requests included), header checks, size
// and body validation, then the retry-key registry, and only then
// acceptance. Injected latency comes first, as network delay would.
func (s *Server) send(ep string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := sendCall{ep: ep, requestID: requestID(r)}
		delay := s.chaos.delay()
		if err := sleep(r.Context(), delay); err != nil {
			setOutcome(w, "canceled")
			return
		}
		var ok bool
		if c.channel, ok = s.authenticate(w, r); !ok {
			return
		}
		if !s.limiter.allow(c.channel, ep, s.rateClock(r, delay)) {
			writeError(w, http.StatusTooManyRequests, msgRateLimited)
			return
		}
		if c.key, ok = retryKeyOf(w, r, ep); !ok {
			return
		}
		if c.body, ok = s.readBody(w, r); !ok {
			return
		}
		var verr *ErrorBody
		if c.req, verr = validate(ep, c.body); verr != nil {
			writeJSON(w, http.StatusBadRequest, verr)
			return
		}
		switch c.fate = s.chaos.roll(); c.fate {
		case outcomeFail:
			writeError(w, http.StatusInternalServerError, msgInternal)
			return
		case outcomeTooMany:
			writeError(w, http.StatusTooManyRequests, msgRateLimited)
			return
		}
		s.accept(w, r, c)
	}
}

// retryKeyOf reads X-Line-Retry-Key. An empty value counts as absent
// (UNCONFIRMED how LINE treats it): the official Go SDK always sets the
// header and sends it empty when the caller passes no key, and its README
// does so for push. Any other value must be a UUID, and only push,
// multicast, narrowcast and broadcast accept one.
func retryKeyOf(w http.ResponseWriter, r *http.Request, ep string) (string, bool) {
	key := strings.TrimSpace(r.Header.Get(RetryKeyHeader))
	if key == "" {
		return "", true
	}
	if ep == epReply {
		writeError(w, http.StatusBadRequest, msgKeyNotSupported)
		return "", false
	}
	if !uuidPattern.MatchString(key) {
		writeError(w, http.StatusBadRequest, msgKeyNotUUID)
		return "", false
	}
	return key, true
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, msgTooLarge)
		return nil, false
	case err != nil:
		setOutcome(w, "canceled")
		return nil, false
	}
	return body, true
}

// accept runs a valid request through the retry-key registry and, if it
// wins, delivers it. The key stays reserved until the outcome is known,
// so a concurrent request with the same key waits and then sees a 409.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, c sendCall) {
	var res *reservation
	if c.key != "" {
		prior, rsv, err := s.keys.reserve(r.Context(), c.channel, c.key, s.now)
		if err != nil {
			setOutcome(w, "canceled")
			return
		}
		if prior != nil {
			s.conflict(w, c.ep, prior)
			return
		}
		res = rsv
	}
	if s.beforeDeliver != nil {
		s.beforeDeliver(c)
	}
	d, status, msg := s.deliver(c)
	if res != nil {
		res.finish(status < 300, c.requestID, d.SentMessages, d.At)
	}
	if msg != "" {
		writeError(w, status, msg)
		return
	}
	switch c.fate {
	case outcomeDrop:
		s.dropConnection(w, c.ep)
		return
	case outcomeAcceptedFail:
		writeError(w, http.StatusInternalServerError, msgInternal)
		return
	}
	switch c.ep {
	case epPush, epReply:
		writeJSON(w, status, struct {
			SentMessages []SentMessage `json:"sentMessages"`
		}{d.SentMessages})
	default:
		writeJSON(w, status, struct{}{})
	}
}

// conflict is LINE's 409 for a retry key already accepted: the accepted
// request's id in x-line-accepted-request-id, and for push only the
// sentMessages of that request.
func (s *Server) conflict(w http.ResponseWriter, ep string, prior *acceptedKey) {
	w.Header().Set(AcceptedRequestIDHeader, prior.RequestID)
	body := ErrorBody{Message: msgKeyAccepted}
	if ep == epPush {
		body.SentMessages = prior.Sent
	}
	writeJSON(w, http.StatusConflict, body)
}

// deliver applies the checks that consume something (reply token, the
// per-user cap) and records the send. It returns the success status, or
// an error status and message with nothing recorded.
func (s *Server) deliver(c sendCall) (Delivery, int, string) {
	now := s.now()
	switch c.ep {
	case epReply:
		if err := s.replies.consume(c.req.replyToken, c.channel, now); err != nil {
			return Delivery{}, http.StatusBadRequest, msgInvalidReply
		}
	case epPush:
		if !s.limiter.takeUserCap(c.channel, c.req.recipients[0], len(c.req.messageTypes), now) {
			return Delivery{}, http.StatusTooManyRequests, msgSameUser
		}
	}
	d := Delivery{
		Channel: c.channel, Endpoint: c.ep, RetryKey: c.key, RequestID: c.requestID, At: now,
		Body: append([]byte(nil), c.body...), Recipients: c.req.recipients,
		ReplyToken: c.req.replyToken, Dropped: c.fate == outcomeDrop,
	}
	if c.ep == epPush || c.ep == epReply {
		for _, t := range c.req.messageTypes {
			m := SentMessage{ID: s.nextMessageID()}
			if quotable[t] {
				m.QuoteToken = s.randomToken(24, b64Encoding)
			}
			d.SentMessages = append(d.SentMessages, m)
		}
	}
	d = s.ledger.record(d)
	if c.ep == epNarrowcast {
		return d, http.StatusAccepted, ""
	}
	return d, http.StatusOK, ""
}

// dropConnection closes the TCP connection without writing a response:
// LINE accepted the send but the client never learns it. The drop is
// counted before the close, so stats are exact by the time the client
// sees its error. Where hijacking is impossible (HTTP/2) the handler
// aborts, which resets the stream.
func (s *Server) dropConnection(w http.ResponseWriter, ep string) {
	setOutcome(w, "dropped")
	s.ledger.count(ep, "dropped")
	if rec, ok := w.(*recorder); ok {
		rec.counted = true
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
