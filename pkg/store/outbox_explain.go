package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// errExplained rolls the EXPLAIN transaction back: EXPLAIN ANALYZE runs
// the statement for real, and its row locks must not outlive the reading.
var errExplained = errors.New("explained")

// ExplainClaim runs the statements ClaimOutbox reads candidates with under
// EXPLAIN (ANALYZE, BUFFERS), with p's arguments, in one transaction that
// is rolled back, and returns each plan's text lines, statement after
// statement. It exists so the benchmark can show what a claim costs at a
// given backlog with the sender's own SQL, not a copy of it.
func ExplainClaim(ctx context.Context, db Beginner, p ClaimParams) ([][]string, error) {
	var plans [][]string
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		for _, sql := range []string{expiredLeaseSQL, dueSQL} {
			args := []any{p.Limit, p.Horizon}
			if sql == dueSQL {
				args = append(args, p.Now)
			}
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
			if err != nil {
				return fmt.Errorf("explaining claim: %w", err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("reading claim plan: %w", err)
			}
			plans = append(plans, lines)
		}
		return errExplained
	})
	if !errors.Is(err, errExplained) {
		return nil, err
	}
	return plans, nil
}
