package store_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// What the one-pass array plans send, Postgres reads back as sent: the
// encoding is not only pgx's but right. It runs on a pool's connection,
// which has the plans.
func TestFastArraysRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	r := rand.New(rand.NewPCG(3, 4))
	err := db.Pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		m := c.Conn().TypeMap()
		if !store.IsFastArrayPlan(m.PlanEncode(pgtype.TextArrayOID, pgtype.BinaryFormatCode, []string{})) ||
			!store.IsFastArrayPlan(m.PlanEncode(pgtype.TimestamptzArrayOID, pgtype.BinaryFormatCode, []time.Time{})) {
			t.Error("a pool's connection encodes []string or []time.Time without the one-pass plans")
		}
		for range 100 {
			n := r.IntN(300)
			ss, ts := make([]string, n), make([]time.Time, n)
			for i := range ss {
				ss[i] = strings.Repeat(string(rune(1+r.IntN(0xd7ff))), r.IntN(40))
				ts[i] = time.Unix(r.Int64N(1<<37)-1<<36, r.Int64N(1e9))
			}
			var gotS []string
			var gotT []time.Time
			if err := c.QueryRow(ctx, `SELECT $1::text[], $2::timestamptz[]`, ss, ts).Scan(&gotS, &gotT); err != nil {
				return err
			}
			if !slices.Equal(gotS, ss) {
				t.Fatalf("%q came back as %q", ss, gotS)
			}
			for i := range ts {
				if want := ts[i].Truncate(time.Microsecond); ts[i].Unix() >= 0 && !gotT[i].Equal(want) {
					t.Fatalf("%v came back as %v", ts[i], gotT[i])
				}
			}
		}
		var nulls [2]bool
		if err := c.QueryRow(ctx, `SELECT $1::text[] IS NULL, $2::timestamptz[] IS NULL`, []string(nil), []time.Time(nil)).
			Scan(&nulls[0], &nulls[1]); err != nil {
			return err
		}
		if !nulls[0] || !nulls[1] {
			t.Errorf("nil slices arrived as NULL: %v, want both", nulls)
		}
		var empty int
		if err := c.QueryRow(ctx, `SELECT cardinality($1::text[])`, []string{}).Scan(&empty); err != nil || empty != 0 {
			t.Errorf("an empty []string: cardinality %d (%v), want 0", empty, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
