package tests

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// oddAnswers forwards each push to LINE and hands back its answer with a
// NUL and a byte that is not UTF-8 in the request id and a NUL in the
// message id: what a proxy or a broken answer could bring.
type oddAnswers struct{ next http.RoundTripper }

func (o oddAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := o.next.RoundTrip(r)
	if err != nil || r.URL.Path != linefake.PathPush || res.StatusCode != http.StatusOK {
		return res, err
	}
	res.Body.Close()
	res.Header.Set("X-Line-Request-Id", "req\x00id\xff")
	body := `{"sentMessages":[{"id":"46\u000052","quoteToken":"q"}]}`
	res.Body, res.ContentLength = io.NopCloser(bytes.NewReader([]byte(body))), int64(len(body))
	return res, nil
}

// An answer whose ids Postgres cannot store as they are (a NUL, a byte
// that is not UTF-8) is recorded cleaned: the row and every row completed
// in the same statement end delivered once, instead of failing the
// grouped completion and being sent again after their leases.
func TestOddAnswerIDsDoNotFailTheCompletion(t *testing.T) {
	t.Parallel()
	b := setupSender(t, linefake.Config{})
	cfg := b.config("odd")
	cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: oddAnswers{next: http.DefaultTransport}}
	b.start(t, cfg)
	var ids []int64
	for i := range 20 {
		ids = append(ids, b.insert(t, "push", pushBody(userID(i), "odd answer")))
	}
	for _, id := range ids {
		r := b.waitStatus(t, id, "delivered")
		if r.Attempts != 1 || r.RequestID == nil || *r.RequestID != "reqid\uFFFD" ||
			len(r.SentMessageIDs) != 1 || r.SentMessageIDs[0] != "4652" {
			t.Fatalf("row %d: attempts %d, request id %v, sent ids %q; want one attempt, reqid\uFFFD, [4652]",
				id, r.Attempts, r.RequestID, r.SentMessageIDs)
		}
	}
	if n := b.sends("push"); n != len(ids) {
		t.Fatalf("LINE got %d pushes for %d rows, want one each", n, len(ids))
	}
}
