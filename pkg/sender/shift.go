package sender

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// claimShift is shared by the deliveries of one claim. When the first of
// them finds itself late for its rate slot (a cold token, a slow commit),
// it shifts the whole claim later in one transaction, so the rest are on
// time again, instead of every row taking a fresh slot one by one on the
// bucket's lock.
type claimShift struct {
	mu       sync.Mutex
	lastSlot map[store.RateKey]time.Time // the claim's latest slot per endpoint bucket
	shifted  map[store.RateKey]time.Duration
	tried    map[store.RateKey]bool
}

// maxShift bounds a claim-wide shift: the rows' leases are not moved, so
// a shift must stay well inside leaseSafety.
const maxShift = leaseSafety / 5

func newClaimShift(rows []store.OutboxClaimed, pl *planner) *claimShift {
	g := &claimShift{lastSlot: map[store.RateKey]time.Time{}, shifted: map[store.RateKey]time.Duration{},
		tried: map[store.RateKey]bool{}}
	for _, r := range rows {
		if spec, ok := pl.endpointSpec(r.OutboxCandidate); ok && r.SendAt.After(g.lastSlot[spec.key]) {
			g.lastSlot[spec.key] = r.SendAt
		}
	}
	return g
}

// shift returns how much later than planned row's slot now is: zero, or
// what the first late row of the claim moved the claim by. late is how
// late row is against its own slot when it asks; lead is the row's own
// (planner.leadFor), what the shift's transaction must cover again.
func (s *Sender) shift(g *claimShift, row store.OutboxClaimed, spec bucketSpec, late, lead time.Duration) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d, ok := g.shifted[spec.key]; ok || g.tried[spec.key] {
		return d
	}
	g.tried[spec.key] = true
	by := late + lead
	if by > maxShift {
		// Too late to keep the rows' leases honest without rewriting
		// them (see store.ShiftOutboxClaim): each takes a fresh slot.
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := store.ShiftOutboxClaim(ctx, s.db, row.ClaimID, spec.key, g.lastSlot[spec.key], spec.interval, by)
	if err != nil {
		if !errors.Is(err, store.ErrBookedAfter) {
			s.log.Warn("shifting a late claim", zap.Error(err))
		}
		return 0
	}
	s.m.claimShifted.Inc()
	g.shifted[spec.key] = by
	return by
}

// shiftOf is how far the claim's shift moved bucket key (0: not moved).
func (g *claimShift) shiftOf(key store.RateKey) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shifted[key]
}
