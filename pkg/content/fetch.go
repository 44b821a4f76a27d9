package content

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// attempt is one fetch of one claimed row.
type attempt struct {
	f        *Fetcher
	c        store.ContentClaim
	token    string
	progress *atomic.Int64 // body bytes read so far, for the heartbeat
}

// fetch makes one attempt: poll transcoding if LINE was still preparing
// the content, then download it into the bucket. The download adds the
// bytes it reads to progress.
func (f *Fetcher) fetch(ctx context.Context, c store.ContentClaim, objs *Objects, progress *atomic.Int64) store.ContentOutcome {
	a := &attempt{f: f, c: c, progress: progress}
	tok, err := f.tokens.Get(ctx, c.ChannelID)
	if err != nil {
		return a.retry(0, "access token: "+err.Error())
	}
	a.token = tok
	if c.Transcoding == "processing" {
		if out, done := a.pollTranscoding(ctx); done {
			return out
		}
	}
	// The row is ours, but an unsend may have committed since the claim:
	// an unsent message is never downloaded.
	if st, owner, err := store.ContentStatus(ctx, f.db, c.MessageKey); err == nil && (st != store.ContentProcessing || owner == nil || *owner != c.ClaimID) {
		return store.ContentOutcome{Status: store.ContentPending, Error: "row changed before the download (" + st + ")"}
	}
	return a.download(ctx, objs)
}

func (a *attempt) path(suffix string) string {
	return "/v2/bot/message/" + url.PathEscape(a.c.MessageID) + "/content" + suffix
}

// errNotSent marks a call that failed before its request was sent: its
// rate slot could not be reserved, the context ended while it waited for
// the slot, or the request could not be built. LINE saw nothing, so it is
// no call to log: an api_log row with status 0 would read as a request
// LINE never answered.
var errNotSent = errors.New("no request sent")

// call reserves a rate slot in the channel's shared bucket and sends GET.
// An error wrapping errNotSent means no request left.
func (a *attempt) call(ctx context.Context, bucket, path string) (*http.Response, time.Time, error) {
	f := a.f
	if f.cfg.RateLimit > 0 {
		wait, err := store.ReserveRateSlot(ctx, f.db, store.RateKey{ChannelID: a.c.ChannelID, Bucket: bucket},
			f.cfg.RatePer/time.Duration(f.cfg.RateLimit))
		if err != nil {
			return nil, time.Now(), fmt.Errorf("%w (%w)", err, errNotSent)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, time.Now(), fmt.Errorf("waiting for a %s rate slot: %w (%w)", bucket, ctx.Err(), errNotSent)
			case <-t.C:
			}
		}
	}
	start := time.Now()
	res, err := get(ctx, f.client, f.cfg.BaseURL, path, a.token)
	return res, start, err
}

// logCall records one call in api_log and the log, never the token.
func (a *attempt) logCall(path string, start time.Time, status int, requestID, errText string) {
	f := a.f
	took := time.Since(start)
	ep := "content"
	if len(path) > len("/transcoding") && path[len(path)-len("/transcoding"):] == "/transcoding" {
		ep = "transcoding"
	}
	f.m.calls.WithLabelValues(ep, strconv.Itoa(status)).Inc()
	f.cfg.Log.Info("line api call", zap.String("channel_id", a.c.ChannelID), zap.String("method", http.MethodGet),
		zap.String("endpoint", path), zap.Int("status", status), zap.String("request_id", requestID),
		zap.Int("attempt", a.c.Attempts+1), zap.Duration("duration", took))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := store.APILogEntry{CalledAt: start, Method: http.MethodGet, Endpoint: path, Status: status,
		RequestID: requestID, ChannelID: a.c.ChannelID, Duration: took, Error: errText}
	if err := store.InsertAPILog(ctx, f.db, e); err != nil {
		f.cfg.Log.Warn("writing api_log", zap.Error(err))
	}
}

// unanswered is the outcome of a call that got no answer, retried with
// backoff. It is logged as a call with status 0 only if its request was
// sent.
func (a *attempt) unanswered(path string, start time.Time, err error) store.ContentOutcome {
	if !errors.Is(err, errNotSent) {
		a.logCall(path, start, 0, "", err.Error())
	}
	return a.retry(0, err.Error())
}

// pollTranscoding asks whether LINE has prepared the video or audio. It
// reports done with an outcome unless the content is ready to download.
func (a *attempt) pollTranscoding(ctx context.Context) (store.ContentOutcome, bool) {
	p := a.path("/transcoding")
	res, start, err := a.call(ctx, bucketTranscoding, p)
	if err != nil {
		return a.unanswered(p, start, err), true
	}
	defer res.Body.Close()
	rid := res.Header.Get("X-Line-Request-Id")
	if res.StatusCode != http.StatusOK {
		msg := errorText(res)
		a.logCall(p, start, res.StatusCode, rid, msg)
		return a.byStatus(res.StatusCode, msg), true
	}
	var body struct {
		Status string `json:"status"`
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 4<<10)).Decode(&body)
	a.logCall(p, start, res.StatusCode, rid, "")
	switch {
	case err != nil:
		return a.retry(res.StatusCode, "unreadable transcoding status"), true
	case body.Status == "succeeded":
		return store.ContentOutcome{}, false
	case body.Status == "failed":
		return store.ContentOutcome{Status: store.ContentFailed, Transcoding: "failed", StatusCode: res.StatusCode,
			Error: "LINE failed to prepare the content (transcoding failed)"}, true
	default:
		return a.preparing(res.StatusCode), true
	}
}

// preparing reschedules a poll of the transcoding status.
func (a *attempt) preparing(code int) store.ContentOutcome {
	f := a.f
	return store.ContentOutcome{Status: store.ContentPending, Transcoding: "processing", StatusCode: code,
		Error: "LINE is preparing the content", RetryIn: backoff(a.c.Attempts+1, f.cfg.PollBase, f.cfg.PollMax, f.cfg.Rand)}
}

// download streams the content into the bucket.
func (a *attempt) download(ctx context.Context, objs *Objects) store.ContentOutcome {
	f := a.f
	p := a.path("")
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, start, err := a.call(dctx, bucketContent, p)
	if err != nil {
		return a.unanswered(p, start, err)
	}
	defer res.Body.Close()
	rid := res.Header.Get("X-Line-Request-Id")
	switch {
	case res.StatusCode == http.StatusAccepted:
		a.logCall(p, start, res.StatusCode, rid, "")
		return a.preparing(res.StatusCode)
	case res.StatusCode != http.StatusOK:
		msg := errorText(res)
		a.logCall(p, start, res.StatusCode, rid, msg)
		return a.byStatus(res.StatusCode, msg)
	case res.ContentLength > f.cfg.MaxBytes:
		a.logCall(p, start, res.StatusCode, rid, "")
		return a.tooLarge(res.ContentLength)
	}
	ctype := res.Header.Get("Content-Type")
	body := newIdleReader(res.Body, f.cfg.HTTPTimeout, cancel, a.progress)
	// The put outlives the request's context: a stall, the lease's end or
	// loss, or a shutdown cancels the request, which fails the body's next
	// read, and the object store then purges the partial chunks with a
	// context that still works. (A cancelled put context would skip that
	// purge.) The put's own context ends the safety margin after the
	// request's, so a put stuck on NATS cannot outlast the lease either.
	putCtx, putCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer putCancel()
	stopPutCut := context.AfterFunc(dctx, func() { time.AfterFunc(f.safety(), putCancel) })
	w, err := objs.Put(putCtx, ObjectName(a.c.ChannelID, a.c.MessageID), ctype, body, f.cfg.MaxBytes)
	stopPutCut()
	stalled := body.stop()
	switch {
	case errors.Is(err, ErrTooLarge):
		a.logCall(p, start, res.StatusCode, rid, "")
		return a.tooLarge(-1)
	case err != nil:
		msg := err.Error()
		switch cause := context.Cause(ctx); {
		case stalled:
			msg = fmt.Sprintf("download stalled for %s", f.cfg.HTTPTimeout)
		case errors.Is(cause, errLeaseEnded), errors.Is(cause, store.ErrContentClaimLost):
			msg = cause.Error()
		}
		// The answer was 200 but the bytes did not all arrive (or could
		// not be stored): log the call with the reason, retry.
		a.logCall(p, start, res.StatusCode, rid, msg)
		return a.retry(res.StatusCode, msg)
	case res.ContentLength >= 0 && w.Size != res.ContentLength:
		_ = objs.Delete(ctx, ObjectName(a.c.ChannelID, a.c.MessageID))
		a.logCall(p, start, res.StatusCode, rid, "short body")
		return a.retry(res.StatusCode, fmt.Sprintf("got %d of %d bytes", w.Size, res.ContentLength))
	}
	a.logCall(p, start, res.StatusCode, rid, "")
	f.m.bytes.Add(float64(w.Size))
	return store.ContentOutcome{Status: store.ContentStored, Transcoding: transcodingAfter(a.c.Transcoding),
		ContentType: ctype, Size: w.Size, SHA256: w.SHA256, StatusCode: res.StatusCode}
}

func transcodingAfter(t string) string {
	if t != "" {
		return "succeeded"
	}
	return ""
}

func (a *attempt) tooLarge(n int64) store.ContentOutcome {
	msg := fmt.Sprintf("content larger than CONTENT_MAX_BYTES (%d)", a.f.cfg.MaxBytes)
	if n >= 0 {
		msg = fmt.Sprintf("content of %d bytes is larger than CONTENT_MAX_BYTES (%d)", n, a.f.cfg.MaxBytes)
	}
	return store.ContentOutcome{Status: store.ContentFailed, StatusCode: http.StatusOK, Error: msg}
}

// byStatus maps an error answer of either endpoint to an outcome.
func (a *attempt) byStatus(code int, msg string) store.ContentOutcome {
	switch {
	case code == http.StatusNotFound:
		return store.ContentOutcome{Status: store.ContentMissing, StatusCode: code, Error: msg}
	case code == http.StatusGone:
		// LINE answers 410 for an unsent message; its unsend event
		// follows and ends the row deleted.
		return store.ContentOutcome{Status: store.ContentMissing, StatusCode: code, Error: "gone at LINE (unsent): " + msg}
	case code == http.StatusUnauthorized:
		a.f.tokens.Invalidate(a.c.ChannelID, a.token)
		out := a.retry(code, msg)
		if out.Status == store.ContentPending {
			out.RetryIn = 0 // a fresh token, at once
		}
		return out
	case code == http.StatusTooManyRequests || code >= 500:
		return a.retry(code, msg)
	}
	return store.ContentOutcome{Status: store.ContentFailed, StatusCode: code, Error: msg}
}

// retry reschedules with backoff, or fails the row once attempts run out.
func (a *attempt) retry(code int, msg string) store.ContentOutcome {
	f := a.f
	n := a.c.Attempts + 1
	if n >= f.cfg.MaxAttempts {
		return store.ContentOutcome{Status: store.ContentFailed, Transcoding: a.c.Transcoding, StatusCode: code,
			Error: fmt.Sprintf("gave up after %d attempts: %s", n, msg)}
	}
	return store.ContentOutcome{Status: store.ContentPending, Transcoding: a.c.Transcoding, StatusCode: code,
		Error: msg, RetryIn: backoff(n, f.cfg.BackoffBase, f.cfg.BackoffMax, f.cfg.Rand)}
}
