package linefake

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkPushOverHTTP measures the emulator's own cost per keyed push,
// so a load test knows the emulator is not its bottleneck.
func BenchmarkPushOverHTTP(b *testing.B) {
	srv := New(Config{Channels: []Channel{{ID: testChannel, Secret: testSecret, AccessTokens: []string{testToken}}},
		RateLimits: RateLimits{Push: Unlimited}})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	body := []byte(`{"to":"` + userA + `","messages":[{"type":"text","text":"hello"}]}`)
	b.RunParallel(func(pb *testing.PB) {
		c := ts.Client()
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+PathPush, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set(RetryKeyHeader, uuid.NewString())
			res, err := c.Do(req)
			if err != nil || res.StatusCode != 200 {
				b.Fatal(err)
			}
			res.Body.Close()
		}
	})
}
