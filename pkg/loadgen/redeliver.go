package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/linepipe/linepipe/pkg/events"
)

// sender delivers webhooks the way LINE does with redelivery on: one
// attempt, and for a non-2xx answer, a transport error or a timeout, the
// same events again after a backoff with isRedelivery=true.
type sender struct {
	cfg     *Config
	client  *http.Client
	rnd     *lockedRand
	stats   *collector
	rec     *recorder
	builder *builder
	// pending counts webhooks not yet finished, including those waiting
	// for a redelivery, so the run can drain them.
	pending sync.WaitGroup
}

// deliver makes the first attempt of w and returns when it has answered;
// redeliveries, if needed, continue in the background until they succeed,
// run out, or ctx ends. Closed-loop senders therefore pace on first
// attempts only, as LINE's own redelivery queue is separate from new
// traffic.
func (s *sender) deliver(ctx context.Context, w *webhook) {
	s.stats.generated(w)
	if s.attempt(w, 0) {
		s.finish(w, true)
		return
	}
	if s.cfg.Retries <= 0 {
		s.finish(w, false)
		return
	}
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		s.redeliver(ctx, w)
	}()
}

func (s *sender) redeliver(ctx context.Context, w *webhook) {
	for n := 1; n <= s.cfg.Retries; n++ {
		t := time.NewTimer(backoffDelay(s.cfg.Backoff, s.cfg.MaxBackoff, n, s.rnd.Float64()))
		select {
		case <-ctx.Done():
			// The run was stopped: the webhook stays unacknowledged and is
			// recorded as failed, never silently dropped.
			t.Stop()
			s.finish(w, false)
			return
		case <-t.C:
		}
		s.stats.redelivery()
		if s.attempt(w, n) {
			s.finish(w, true)
			return
		}
	}
	s.finish(w, false)
}

// backoffDelay is the wait before redelivery n (1-based): base doubled per
// earlier redelivery, capped at maxDelay, then "equal jitter" (between
// half and all of it, by jitter in [0,1)) so failed requests from a burst
// do not return in lockstep.
func backoffDelay(base, maxDelay time.Duration, n int, jitter float64) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// attempt sends w once (n is the attempt number, 0 for the first) and
// reports whether the server answered 2xx. The attempt has its own
// timeout and is not cut short by the run's context: once sent, an
// answer is worth waiting for, and the timeout bounds the wait.
func (s *sender) attempt(w *webhook, n int) bool {
	if n > 0 && s.cfg.ReplyTokens != nil {
		for i := range w.events {
			if tok := w.events[i].wire.ReplyToken; tok != "" {
				s.cfg.ReplyTokens.Redelivered(tok)
			}
		}
	}
	body, err := w.body(n > 0)
	if err != nil {
		s.stats.attempt(0, n == 0, StatusError)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.BaseURL+"/webhook/"+w.channel.ID, bytes.NewReader(body))
	if err != nil {
		s.stats.attempt(0, n == 0, StatusError)
		return false
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(events.SignatureHeader, events.Sign(w.channel.Secret, body))
	start := time.Now()
	resp, err := s.client.Do(req)
	code := 0
	if err == nil {
		// Drain a bounded amount so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		code = resp.StatusCode
	}
	s.stats.attempt(time.Since(start), n == 0, statusKey(code, err))
	return err == nil && code >= 200 && code < 300
}

// finish records a webhook's final outcome. Messages of an accepted
// webhook become candidates for later unsends.
func (s *sender) finish(w *webhook, ok bool) {
	if ok {
		s.builder.accepted(w)
	}
	s.stats.finished(w, ok)
	s.rec.webhookDone(w, ok)
}
