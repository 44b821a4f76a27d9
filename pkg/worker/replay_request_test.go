package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/tests/fixture"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Replay acts on exactly the rows an operator asked for, once per
// request: a requested dead letter that stores is deleted, a requested one
// that fails again keeps its row with the attempt counted and the request
// cleared, and a dead letter nobody asked about is left as it was, its
// event not stored. Then nothing is left to replay.
func TestDeadLetterReplayOnlyWhatWasRequested(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.NewDB(t)
	const channel = "1650000104"
	headers := `{"Linepipe-Channel":["` + channel + `"],"Linepipe-Kind":["event"]}`
	user := fixture.User(fixture.UserID(104))
	insert := func(tag string, data []byte, requested bool) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `INSERT INTO dead_letters (subject, stream_seq, deliveries, channel_id, headers, data,
				error, replay_requested_at)
			VALUES ('s', 1, 5, $1, $2::json, $3, $4, CASE WHEN $5 THEN now() END)`, channel, headers, data, tag, requested); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := json.Marshal(fixture.Text(user, time.Now(), "asked for"))
	other, _ := json.Marshal(fixture.Text(user, time.Now(), "not asked for"))
	insert("stores", good, true)
	insert("fails", []byte("not json"), true)
	insert("untouched", other, false)

	w := New(Config{}, testStreamConfig(), nil, db.Pool, NewMetrics(ops.NewRegistry()), zaptest.NewLogger(t))
	replays := 0
	for ; replays < 10; replays++ {
		done, err := w.ReplayOne(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !done {
			break
		}
	}
	if replays != 2 {
		t.Fatalf("%d replays, want 2: one per requested dead letter", replays)
	}
	strs := func(sql string) []string {
		t.Helper()
		rows, err := db.Pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The stored one is gone; the failed one has its new error, one
	// attempt, the request cleared and replayed_at set; the one nobody
	// asked about is as it was inserted.
	if got := strs(`SELECT error FROM dead_letters WHERE error = 'stores'`); len(got) != 0 {
		t.Fatal("the dead letter whose replay stored its event is still there")
	}
	if got := strs(`SELECT error || ':' || replay_attempts || ':' || (replay_requested_at IS NOT NULL) || ':' || (replayed_at IS NOT NULL)
		FROM dead_letters WHERE error = 'untouched'`); fmt.Sprint(got) != "[untouched:0:false:false]" {
		t.Fatalf("the dead letter nobody asked about is now %v, want it untouched", got)
	}
	if got := strs(`SELECT (error <> 'fails') || ':' || replay_attempts || ':' || (replay_requested_at IS NOT NULL) || ':' || (replayed_at IS NOT NULL)
		FROM dead_letters WHERE error <> 'untouched'`); fmt.Sprint(got) != "[true:1:false:true]" {
		t.Fatalf("the failed replay is recorded as %v (new error, attempts, requested, replayed), want [true:1:false:true]", got)
	}
	if got := strs(`SELECT raw->'message'->>'text' FROM events ORDER BY id`); fmt.Sprint(got) != "[asked for]" {
		t.Fatalf("events stored %q, want only the requested one", got)
	}
}
