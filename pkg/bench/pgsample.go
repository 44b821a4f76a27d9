package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PGSampler is a poor man's profiler for Postgres: it samples what the
// run's own connections (marked by an application_name starting with the
// run's schema name) are doing every few milliseconds, so a stage bound by
// the database shows which statement and which wait it spends its time in,
// without pg_stat_statements.
type PGSampler struct {
	pool    *pgxpool.Pool
	app     string
	mu      sync.Mutex
	counts  map[string]int
	samples int
	stop    func()
}

// StartPGSampler samples until Stop.
func StartPGSampler(pool *pgxpool.Pool, app string, every time.Duration) *PGSampler {
	s := &PGSampler{pool: pool, app: app, counts: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s.sample(ctx)
			time.Sleep(every)
		}
	}()
	return s
}

func (s *PGSampler) sample(ctx context.Context) {
	rows, err := s.pool.Query(ctx, `SELECT state || ' ' || coalesce(wait_event_type || ':' || wait_event, 'cpu') || ' | ' ||
			left(regexp_replace(query, '\s+', ' ', 'g'), 90)
		FROM pg_stat_activity WHERE starts_with(application_name, $1) AND state <> 'idle' AND pid <> pg_backend_pid()`, s.app)
	if err != nil {
		return
	}
	defer rows.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	for rows.Next() {
		var k string
		if rows.Scan(&k) == nil {
			s.counts[k]++
		}
	}
}

// Stop ends sampling and returns the n most frequent activities, each
// with the average number of connections seen in it.
func (s *PGSampler) Stop(n int) []string {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range s.counts {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%5.2f  %s", float64(all[i].v)/float64(max(s.samples, 1)), strings.TrimSpace(all[i].k)))
	}
	return out
}
