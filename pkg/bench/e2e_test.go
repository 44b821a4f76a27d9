package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// TestIDWatchReadsGapsAgain: ids that commit out of order are read again
// until they appear, and given up after rowGapWait; nothing above the
// highest id is ever skipped.
func TestIDWatchReadsGapsAgain(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	var w idWatch
	poll := func(now time.Time, ids ...int64) {
		top := w.last
		for _, id := range ids {
			top = w.saw(id, top, now)
		}
		w.polled(top, true, now)
	}
	poll(t0, 3, 1) // 2 not committed yet
	if got := w.pending(); w.last != 3 || !slices.Equal(got, []int64{2}) {
		t.Fatalf("after 3, 1: last %d, pending %v; want 3, [2]", w.last, got)
	}
	poll(t0.Add(time.Second), 7, 2, 5) // 4 and 6 open
	got := w.pending()
	slices.Sort(got)
	if w.last != 7 || !slices.Equal(got, []int64{4, 6}) {
		t.Fatalf("after 7, 2, 5: last %d, pending %v; want 7, [4 6]", w.last, got)
	}
	w.polled(w.last, true, t0.Add(time.Second+rowGapWait+time.Millisecond))
	if got := w.pending(); len(got) != 0 {
		t.Fatalf("gaps older than %s still pending: %v", rowGapWait, got)
	}
	if top := w.saw(7+maxGapSpan+1, w.last, t0); len(w.pending()) != 0 || top != 7+maxGapSpan+1 {
		t.Fatalf("a jump of more than %d ids left %d gaps", maxGapSpan, len(w.pending()))
	}
	w.last = 7
	top := w.saw(9, w.last, t0)
	w.polled(top, false, t0) // a poll cut short keeps the old highest id
	if w.last != 7 {
		t.Fatalf("an incomplete poll moved last to %d", w.last)
	}
}

// TestPipelineTablesCoverTheSchema: the end-to-end stage empties every
// table the pipeline writes, so no earlier stage's rows (queued media
// content, a backlog of pushes) are worked on while its replies are
// timed. Only the tables operators configure are kept.
func TestPipelineTablesCoverTheSchema(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	kept := []string{"channels", "retention", store.MigrationsTable}
	rows, err := db.Pool.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, db.Schema)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tables, "message_content") {
		t.Fatalf("schema %s lists %v; the query found the wrong tables", db.Schema, tables)
	}
	for _, tb := range tables {
		if !slices.Contains(pipelineTables, tb) && !slices.Contains(kept, tb) {
			t.Errorf("table %s is not emptied before the end-to-end stage", tb)
		}
	}
	for _, tb := range pipelineTables {
		if !slices.Contains(tables, tb) {
			t.Errorf("pipelineTables names %s, which the schema does not have", tb)
		}
	}
}
