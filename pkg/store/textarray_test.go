package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Sent message ids reach Postgres as an array literal; whatever an id
// holds (LINE documents digits, but the answer is LINE's to choose) comes
// back unchanged.
func TestTextArrayRoundTrip(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	for _, ids := range [][]string{
		{"461230966842064897"},
		{"a", "b c", `q"uote`, `back\slash`, "", "NULL", "{x,y}", "日本"},
	} {
		var got []string
		if err := db.Pool.QueryRow(context.Background(), `SELECT $1::text::text[]`, store.TextArray(ids)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%q came back as %q", ids, got)
		}
	}
}
