package worker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// BenchmarkStreamRemoval times how fast stored messages leave the stream:
// b.N one-event messages are fetched and acknowledged as the worker does,
// and the clock runs until the stream is empty. "workqueue" is the
// retention every acknowledgement removes its message under (one fsync
// each under sync_interval: always, one at a time per consumer);
// "purged" is the stream's limits retention with the worker's purger.
// Run it against a server with sync_interval: always (the CI server) to
// see the deployed cost:
//
//	go test ./pkg/worker -run '^$' -bench StreamRemoval -benchtime 5000x
func BenchmarkStreamRemoval(b *testing.B) {
	for _, c := range []struct {
		name      string
		retention jetstream.RetentionPolicy
	}{{"workqueue", jetstream.WorkQueuePolicy}, {"purged", jetstream.LimitsPolicy}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			names := testenv.NewNames()
			sc := stream.Config{URL: testenv.NATSURL(b), Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
			nc, js, err := stream.Connect(sc, "bench", zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			cfg := sc.StreamConfig()
			cfg.Retention = c.retention
			st, err := js.CreateStream(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = js.DeleteStream(context.Background(), sc.Stream) }()
			ajs, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 600)
			for i := range b.N {
				if _, err := ajs.PublishAsync(sc.EventSubject("1650000001"), body); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					<-ajs.PublishAsyncComplete()
				}
			}
			<-ajs.PublishAsyncComplete()
			w := New(Config{}, sc, js, nil, NewMetrics(ops.NewRegistry()), zap.NewNop())
			cons, err := st.CreateOrUpdateConsumer(ctx, w.ConsumerConfig())
			if err != nil {
				b.Fatal(err)
			}
			var p *purger
			pctx, stop := context.WithCancel(ctx)
			defer stop()
			if c.retention == jetstream.LimitsPolicy {
				p = newPurger(st, cons, DefaultPurgeInterval, time.Now, zap.NewNop(), w.metrics.ops.purgeFailures)
				go p.run(pctx)
			}
			b.ResetTimer()
			for got := 0; got < b.N; {
				batch, err := cons.Fetch(min(b.N-got, DefaultBatchSize), jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				for m := range batch.Messages() {
					if p != nil {
						m = trackedMsg{Msg: m, p: p}
					}
					if err := m.Ack(); err != nil {
						b.Fatal(err)
					}
					got++
				}
			}
			for {
				info, err := st.Info(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if info.State.Msgs == 0 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
