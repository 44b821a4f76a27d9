package sender

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
)

// reslotMax bounds the rows one re-slot transaction books.
const reslotMax = 512

// reslotReq is a late delivery asking for a fresh slot.
type reslotReq struct {
	row  store.OutboxClaimed
	spec bucketSpec
	done chan store.ReslotResult
}

// runReslots books fresh slots for late rows until ctx ends. Rows that
// turn late together (a loaded host starts a whole batch late) are
// booked together, one transaction per bucket, while the previous one
// commits: that is a group commit on the bucket's lock, which rows taking
// a transaction each would queue on, each falling later still.
func (s *Sender) runReslots(ctx context.Context) {
	for {
		var first reslotReq
		select {
		case first = <-s.reslots:
		case <-ctx.Done():
			return
		}
		groups := map[store.RateKey][]reslotReq{first.spec.key: {first}}
		n := 1
	gather:
		for n < reslotMax {
			select {
			case r := <-s.reslots:
				groups[r.spec.key] = append(groups[r.spec.key], r)
				n++
			default:
				break gather
			}
		}
		for key, reqs := range groups {
			s.reslotGroup(key, reqs)
		}
	}
}

func (s *Sender) reslotGroup(key store.RateKey, reqs []reslotReq) {
	b := store.ReslotBatch{Key: key, Interval: reqs[0].spec.interval, Lease: s.cfg.Lease,
		Horizon: s.cfg.RateHorizon, Lead: s.lateTolerance()}
	for _, r := range reqs {
		b.Rows = append(b.Rows, store.ReslotRow{ID: r.row.ID, ClaimID: r.row.ClaimID})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	res, err := store.ReslotOutboxRows(ctx, s.db, b)
	cancel()
	if err != nil {
		s.log.Warn("re-slotting late outbox rows", zap.Int("rows", len(reqs)), zap.Error(err))
	} else {
		s.m.reslotBatch.Observe(float64(len(reqs)))
	}
	for i, r := range reqs {
		if err != nil {
			r.done <- store.ReslotResult{Err: err}
			continue
		}
		r.done <- res[i]
	}
}

// reslot waits for row's fresh slot from runReslots.
func (s *Sender) reslot(row store.OutboxClaimed, spec bucketSpec) store.ReslotResult {
	req := reslotReq{row: row, spec: spec, done: make(chan store.ReslotResult, 1)}
	s.reslots <- req
	return <-req.done
}
