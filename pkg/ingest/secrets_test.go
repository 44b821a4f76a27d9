package ingest

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Ingest keeps serving cached secrets while Postgres is unreachable, and
// answers "unavailable" (503), not "unknown" (404), for channels it cannot
// check.
func TestSecretsSurvivePostgresOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "111", Secret: "from-table"}); err != nil {
		t.Fatal(err)
	}
	pool, err := store.Open(ctx, db.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSecrets(pool, map[string]string{"222": "from-env", "111": "env-loses"}, zap.NewNop(), nil)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if sec, _ := s.Secret(ctx, "111"); sec != "from-table" {
		t.Fatalf("table should win over env: %q", sec)
	}
	if _, err := s.Secret(ctx, "333"); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}

	pool.Close() // Postgres is now unreachable for this cache
	for id, want := range map[string]string{"111": "from-table", "222": "from-env"} {
		if sec, err := s.Secret(ctx, id); err != nil || sec != want {
			t.Fatalf("channel %s during outage: %q, %v", id, sec, err)
		}
	}
	if _, err := s.Secret(ctx, "444"); !errors.Is(err, ErrSecretsUnavailable) {
		t.Fatalf("uncached channel during outage: %v, want ErrSecretsUnavailable", err)
	}
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("refresh during outage reported success")
	}
	if sec, _ := s.Secret(ctx, "111"); sec != "from-table" {
		t.Fatal("a failed refresh dropped the cache")
	}
}

// A reissued secret is picked up at the first signature mismatch.
func TestSecretsRecheckAfterRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "555", Secret: "old"}); err != nil {
		t.Fatal(err)
	}
	s := NewSecrets(db.Pool, nil, zap.NewNop(), nil)
	if sec, _ := s.Secret(ctx, "555"); sec != "old" {
		t.Fatal(sec)
	}
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "555", Secret: "new"}); err != nil {
		t.Fatal(err)
	}
	if sec, changed := s.Recheck(ctx, "555", "old"); !changed || sec != "new" {
		t.Fatalf("recheck: %q %v", sec, changed)
	}
	if sec, _ := s.Secret(ctx, "555"); sec != "new" {
		t.Fatalf("cache kept the old secret: %q", sec)
	}
	if _, changed := s.Recheck(ctx, "555", "new"); changed {
		t.Fatal("a second recheck within a second should not query")
	}
}

// An ingest that starts while Postgres is unreachable does not serve the
// environment's secret unread: the table may hold a rotated one, so every
// channel, the environment's too, is "unavailable" (503, LINE redelivers)
// until channels can be read, and then the table's secret is served.
func TestSecretsStartedDuringOutageServeNoEnvironmentSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "111", Secret: "rotated-in-table"}); err != nil {
		t.Fatal(err)
	}
	down, err := store.Open(ctx, db.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	down.Close() // Postgres is unreachable for this ingest from its start
	s := NewSecrets(down, map[string]string{"111": "old-from-env"}, zap.NewNop(), nil)
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("refresh during outage reported success")
	}
	if sec, err := s.Secret(ctx, "111"); !errors.Is(err, ErrSecretsUnavailable) {
		t.Fatalf("environment's channel at a start during an outage: %q, %v; want ErrSecretsUnavailable", sec, err)
	}

	up, err := store.Open(ctx, db.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	s = NewSecrets(up, map[string]string{"111": "old-from-env"}, zap.NewNop(), nil)
	if sec, err := s.Secret(ctx, "111"); err != nil || sec != "rotated-in-table" {
		t.Fatalf("once channels can be read: %q, %v; want the table's secret", sec, err)
	}
}

// A rotation's recheck that lands while a full refresh is running is not
// undone by it: the refresh read the table before the rotation, the
// recheck after, and the later read's secret stays cached, so LINE's
// webhooks, signed with the new secret, keep being accepted.
func TestSecretsRefreshKeepsANewerRecheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "666", Secret: "old"}); err != nil {
		t.Fatal(err)
	}
	s := NewSecrets(db.Pool, nil, zap.NewNop(), nil)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s.listed = func() { // the refresh has read "old"; the operator rotates now
		if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "666", Secret: "new"}); err != nil {
			t.Error(err)
		}
		if sec, changed := s.Recheck(ctx, "666", "old"); !changed || sec != "new" {
			t.Errorf("recheck mid-refresh: %q %v", sec, changed)
		}
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s.listed = nil
	if sec, _ := s.Secret(ctx, "666"); sec != "new" {
		t.Fatalf("after a refresh that read the table before the rotation: %q, want the rechecked new", sec)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if sec, _ := s.Secret(ctx, "666"); sec != "new" {
		t.Fatalf("after the next refresh: %q", sec)
	}
}
