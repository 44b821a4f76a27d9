package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// BenchmarkIngestHandler measures the whole webhook path against a real
// JetStream: signature check, split, durable publish of every event and
// the log record, and the wait for acks.
func BenchmarkIngestHandler(b *testing.B) {
	names := testenv.NewNames()
	sc := stream.Config{URL: testenv.NATSURL(b), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	nc, js, err := stream.Connect(sc, "bench", zap.NewNop(), jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if _, err := stream.Ensure(context.Background(), js, sc); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), sc.Stream) }()
	h := &Handler{Config: Config{}.WithDefaults(), Stream: sc,
		Secrets: NewSecrets(nil, map[string]string{"123": fuzzSecret}, zap.NewNop(), nil), Publisher: JetStreamPublisher{JS: js},
		Metrics: NewMetrics(ops.NewRegistry()), Log: zap.NewNop(), Now: time.Now}

	for _, perWebhook := range []int{1, 5} {
		b.Run(fmt.Sprintf("events=%d", perWebhook), func(b *testing.B) {
			b.ReportAllocs()
			var n int
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n++
					var evs bytes.Buffer
					for i := 0; i < perWebhook; i++ {
						if i > 0 {
							evs.WriteByte(',')
						}
						fmt.Fprintf(&evs, `{"type":"message","mode":"active","timestamp":%d,"webhookEventId":"%d-%d-%d",`+
							`"source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},"deliveryContext":{"isRedelivery":false},`+
							`"replyToken":"abc","message":{"id":"%d","type":"text","text":"hello from the benchmark"}}`,
							time.Now().UnixMilli(), time.Now().UnixNano(), n, i, n)
					}
					body := []byte(`{"destination":"U1","events":[` + evs.String() + `]}`)
					req := httptest.NewRequest(http.MethodPost, "/webhook/123", bytes.NewReader(body))
					req.SetPathValue("channelID", "123")
					req.Header.Set(events.SignatureHeader, events.Sign(fuzzSecret, body))
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
			b.ReportMetric(float64(b.N*perWebhook)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// discard acknowledges every message at once: what the handler costs on
// its own, without JetStream's round trip.
type discard struct{}

func (discard) Publish(_ context.Context, msgs []*nats.Msg) (int, error) { return 0, nil }

// BenchmarkIngestHandlerCPU is the handler's own CPU per one-event
// webhook (signature, split, message building, log line to a discarded
// zap core), serially, so allocations and ns/op compare across changes
// without a NATS server's noise.
func BenchmarkIngestHandlerCPU(b *testing.B) {
	h := newTestHandler(discard{})
	body := []byte(`{"destination":"U1","events":[{"type":"message","mode":"active","timestamp":1700000000000,` +
		`"webhookEventId":"01HZZZZZZZZZZZZZZZZZZZZZZZ","source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},` +
		`"deliveryContext":{"isRedelivery":false},"replyToken":"abc","message":{"id":"1","type":"text","text":"hello from the benchmark"}}]}`)
	sig := events.Sign(fuzzSecret, body)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhook/123", bytes.NewReader(body))
		req.SetPathValue("channelID", "123")
		req.Header.Set(events.SignatureHeader, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
