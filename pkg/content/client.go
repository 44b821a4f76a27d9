package content

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
)

// Tokens hands out a channel's access token and drops one LINE refused.
// The sender's token source is one.
type Tokens interface {
	Get(ctx context.Context, channel string) (string, error)
	Invalidate(channel, token string)
}

// newHTTPClient bounds the wait for answer headers but not the body: a
// download may take long, and a stalled one is cut by idleReader.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   16,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends GET path with token. A nil error means an answer arrived;
// the caller closes its body. A request that could not be built was not
// sent (errNotSent).
func get(ctx context.Context, c *http.Client, baseURL, path, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path, nil)
	if err != nil {
		// It ends in the row's error: never the base URL's credentials.
		return nil, fmt.Errorf("building GET %s: %w (%w)", path, config.RedactURLError(err), errNotSent)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, config.WithoutURL(err))
	}
	return res, nil
}

// errorText reads a short error body (LINE's {"message"}) for last_error.
func errorText(res *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	return string(b)
}

// idleReader cancels a download whose body stops flowing for timeout,
// and counts the bytes read into progress (for the lease heartbeat).
type idleReader struct {
	r        io.Reader
	timer    *time.Timer
	d        time.Duration
	progress *atomic.Int64
	mu       sync.Mutex
	stalls   bool
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelFunc, progress *atomic.Int64) *idleReader {
	ir := &idleReader{r: r, d: d, progress: progress}
	ir.timer = time.AfterFunc(d, func() {
		ir.mu.Lock()
		ir.stalls = true
		ir.mu.Unlock()
		cancel()
	})
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	ir.progress.Add(int64(n))
	ir.timer.Reset(ir.d)
	return n, err
}

func (ir *idleReader) stop() bool {
	ir.timer.Stop()
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.stalls
}
