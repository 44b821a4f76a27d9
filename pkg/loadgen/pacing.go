package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// openLoop starts requests on a fixed schedule, request i at start+i/rate,
// whether or not earlier ones have answered. A slow server therefore
// meets the load it was offered, and its slowness shows in latency rather
// than in a quietly lowered rate. If the generator falls behind (a GC
// pause, a busy machine), the requests already due are started at once,
// so the count started by time t never exceeds rate*t+1.
func openLoop(ctx context.Context, cfg *Config, start time.Time, launch func(seq int), dropped func()) {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, cfg.MaxInFlight)
	issued := 0
	for {
		if cfg.Requests > 0 && issued >= cfg.Requests {
			return
		}
		due := int(time.Since(start).Seconds()*cfg.Rate) + 1
		if cfg.Requests > 0 {
			due = min(due, cfg.Requests)
		}
		for ; issued < due; issued++ {
			select {
			case sem <- struct{}{}:
				inflight.Add(1)
				go func(seq int) {
					defer func() { <-sem; inflight.Done() }()
					launch(seq)
				}(issued)
			default:
				dropped()
			}
		}
		if cfg.Requests > 0 && issued >= cfg.Requests {
			return
		}
		next := start.Add(time.Duration(float64(issued) / cfg.Rate * float64(time.Second)))
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// closedLoop runs cfg.Concurrency senders, each starting a new request as
// soon as its previous first attempt has answered: the offered load is
// whatever the server sustains at that concurrency.
func closedLoop(ctx context.Context, cfg *Config, launch func(seq int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				seq := int(next.Add(1) - 1)
				if cfg.Requests > 0 && seq >= cfg.Requests {
					return
				}
				launch(seq)
			}
		}()
	}
	wg.Wait()
}
