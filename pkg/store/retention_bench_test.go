package store_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// BenchmarkRetention deletes 1,000,000 expired api_log rows the way the
// janitor does (DELETE of 5,000 rows per statement, each its own
// transaction) while another connection keeps inserting fresh api_log
// rows, as the sender does on every call. It reports how long the
// deletion took and the concurrent insert's latency before and during it:
// the deletion must not stall the pipeline.
//
//	go test -run XXX -bench BenchmarkRetention -benchtime 1x ./pkg/store
func BenchmarkRetention(b *testing.B) {
	const rows = 1_000_000
	ctx := context.Background()
	db := testenv.NewDB(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := db.Pool.Exec(ctx, `INSERT INTO api_log (called_at, method, endpoint, status, channel_id, duration_ms, request_id)
			SELECT now() - interval '100 days' + i * interval '1 ms', 'POST', 'push', 200, '1234567890', 12.5, md5(i::text)
			FROM generate_series(1, $1) i`, rows); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE api_log`); err != nil {
			b.Fatal(err)
		}

		// The concurrent writer: one insert at a time, as fast as it goes.
		stop := make(chan struct{})
		var mu sync.Mutex
		var before, during []time.Duration
		phase := &before
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := db.Pool.Exec(ctx, `INSERT INTO api_log (called_at, method, endpoint, status, channel_id, duration_ms)
					VALUES (now(), 'POST', 'push', 200, '1234567890', 10)`); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				*phase = append(*phase, time.Since(start))
				mu.Unlock()
			}
		}()
		time.Sleep(2 * time.Second) // the baseline

		mu.Lock()
		phase = &during
		mu.Unlock()
		b.StartTimer()
		start := time.Now()
		var deleted, statements int64
		for {
			n, err := store.DeleteExpired(ctx, db.Pool, "api_log", 5000)
			if err != nil {
				b.Fatal(err)
			}
			deleted += n
			statements++
			if n < 5000 {
				break
			}
		}
		took := time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if deleted != rows {
			b.Fatalf("deleted %d rows, want %d", deleted, rows)
		}
		var fresh int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM api_log`).Scan(&fresh); err != nil || fresh != len(before)+len(during) {
			b.Fatalf("fresh rows left %d (%v), want %d", fresh, err, len(before)+len(during))
		}

		bp50, bp99, bmax := percentiles(before)
		dp50, dp99, dmax := percentiles(during)
		b.ReportMetric(took.Seconds(), "delete-s")
		b.ReportMetric(float64(deleted)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(dp99.Microseconds())/1000, "insert-p99-ms")
		b.ReportMetric(float64(dmax.Microseconds())/1000, "insert-max-ms")
		fmt.Printf("retention: deleted %d expired api_log rows in %s (%d statements of <= 5000, %.0f rows/s)\n",
			deleted, took.Round(time.Millisecond), statements, float64(deleted)/took.Seconds())
		fmt.Printf("concurrent insert latency: before p50 %s p99 %s max %s (%d inserts); during p50 %s p99 %s max %s (%d inserts)\n",
			bp50, bp99, bmax, len(before), dp50, dp99, dmax, len(during))
		if _, err := db.Pool.Exec(ctx, `TRUNCATE api_log`); err != nil {
			b.Fatal(err)
		}
	}
}

func percentiles(d []time.Duration) (p50, p99, maximum time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration {
		return s[min(len(s)-1, int(q*float64(len(s))))].Round(10 * time.Microsecond)
	}
	return at(0.50), at(0.99), s[len(s)-1].Round(10 * time.Microsecond)
}
