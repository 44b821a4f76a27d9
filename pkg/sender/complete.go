package sender

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
)

// completionFlushers is how many grouped completion statements may be in
// flight at once: while one commits, the next group gathers.
const completionFlushers = 4

// maxCompletionGroup bounds one statement's rows.
const maxCompletionGroup = 500

// completer records attempt outcomes in groups: every delivery hands in
// its completion and waits for it to be written, and each flusher writes
// whatever has gathered since its last statement in one statement and one
// commit (group commit). Under load a commit serves tens of sends instead
// of one, which was the sender's ceiling; when idle a completion is
// written at once, with no timer to wait for. Each row keeps its own
// claim_id fence, so a stale owner's completion is still refused.
type completer struct {
	db *pgxpool.Pool
	in chan pendingCompletion
	m  *metrics
}

type pendingCompletion struct {
	c    store.OutboxCompletion
	done chan error
}

func newCompleter(db *pgxpool.Pool, buffer int, m *metrics) *completer {
	return &completer{db: db, in: make(chan pendingCompletion, buffer), m: m}
}

// complete queues c and returns once it is written: nil, an error
// wrapping store.ErrLeaseLost, or the statement's error.
func (k *completer) complete(c store.OutboxCompletion) error {
	p := pendingCompletion{c: c, done: make(chan error, 1)}
	k.in <- p
	return <-p.done
}

// run flushes until close is called and everything queued is written.
func (k *completer) run() {
	var wg sync.WaitGroup
	for range completionFlushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range k.in {
				k.flush(k.gather(first))
			}
		}()
	}
	wg.Wait()
}

// close ends run once the queue is drained; no complete may follow.
func (k *completer) close() { close(k.in) }

// gather takes first and whatever else is already queued.
func (k *completer) gather(first pendingCompletion) []pendingCompletion {
	group := []pendingCompletion{first}
	for len(group) < maxCompletionGroup {
		select {
		case p, ok := <-k.in:
			if !ok {
				return group
			}
			group = append(group, p)
		default:
			return group
		}
	}
	return group
}

func (k *completer) flush(group []pendingCompletion) {
	cs := make([]store.OutboxCompletion, len(group))
	for i, p := range group {
		cs[i] = p.c
	}
	// A fresh context: the calls happened, and their results must be
	// written even while the sender shuts down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs, err := store.CompleteOutboxBatch(ctx, k.db, cs)
	k.m.completes.Observe(float64(len(group)))
	for i, p := range group {
		if err != nil {
			p.done <- err
		} else {
			p.done <- errs[i]
		}
	}
}
