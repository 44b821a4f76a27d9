package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Each service's database role holds only what the service does: the
// internet-facing ingest can read channel secrets and no stored message,
// the worker cannot read what the sender logs, and the sender cannot
// read messages or rewrite a channel an operator rotated.
func TestRolesAreLeastPrivilege(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	if err := store.UpsertChannel(ctx, db.Pool, store.Channel{ID: "1650000009", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		role, sql string
		allowed   bool
	}{
		{store.RoleIngest, `SELECT count(*) FROM channels`, true},
		{store.RoleIngest, `SELECT count(*) FROM messages`, false},
		{store.RoleIngest, `SELECT count(*) FROM events`, false},
		{store.RoleIngest, `SELECT count(*) FROM outbox`, false},
		{store.RoleIngest, `INSERT INTO channels (channel_id, channel_secret) VALUES ('x', 'y')`, false},
		{store.RoleWorker, `SELECT count(*) FROM messages`, true},
		{store.RoleWorker, `INSERT INTO api_log (called_at, method, endpoint) VALUES (now(), 'POST', 'push')`, false},
		{store.RoleWorker, `DELETE FROM channels`, false},
		{store.RoleWorker, `UPDATE channels SET channel_secret = 'z'`, false},
		{store.RoleSender, `SELECT count(*) FROM outbox`, true},
		{store.RoleSender, `SELECT count(*) FROM messages`, false},
		{store.RoleSender, `UPDATE channels SET channel_secret = 'z'`, false},
		{store.RoleSender, `DELETE FROM outbox`, false},
		// Content retention runs in the sender's fetcher: it reads the
		// keep and deletes expired content rows, nothing more.
		{store.RoleSender, `SELECT count(*) FROM retention`, true},
		{store.RoleSender, `UPDATE retention SET keep = '1 day'`, false},
		{store.RoleSender, `DELETE FROM message_content WHERE status = 'expired'`, true},
		{store.RoleSender, `INSERT INTO message_content (channel_id, message_id, message_type) VALUES ('c', 'm', 'image')`, false},
		{store.RoleWorker, `DELETE FROM message_content`, false},
	}
	for _, c := range cases {
		pool := db.RolePool(t, c.role)
		_, err := pool.Exec(ctx, c.sql)
		var pe *pgconn.PgError
		denied := errors.As(err, &pe) && pe.Code == "42501" // insufficient_privilege
		switch {
		case c.allowed && err != nil:
			t.Errorf("%s: %s: %v, want allowed", c.role, c.sql, err)
		case !c.allowed && !denied:
			t.Errorf("%s: %s: %v, want permission denied", c.role, c.sql, err)
		}
	}
}

// The roles hold nothing beyond what SECURITY.md lists, whatever the table
// or column: ingest reads no table but channels, the sender reads no table
// holding what users sent, and the worker updates no outbox column but the
// four the unsend scrub writes (never a retry key, a claim or a lease).
// The lists come from the migrated schema itself, so a table or column a
// later migration adds is covered without editing this test.
func TestRolesGrantNothingElse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	names := func(sql string) []string {
		rows, err := db.Pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(out) == 0 {
			t.Fatalf("%s: %v (%d rows)", sql, err, len(out))
		}
		return out
	}
	denied := func(role, sql string) {
		t.Helper()
		_, err := db.RolePool(t, role).Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s: %s: %v, want permission denied", role, sql, err)
		}
	}
	allowed := func(role, sql string) {
		t.Helper()
		if _, err := db.RolePool(t, role).Exec(ctx, sql); err != nil {
			t.Errorf("%s: %s: %v, want allowed", role, sql, err)
		}
	}

	for _, table := range names(`SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`) {
		if table != "channels" {
			denied(store.RoleIngest, fmt.Sprintf(`SELECT 1 FROM %s LIMIT 0`, pgx.Identifier{table}.Sanitize()))
		}
	}
	for _, table := range []string{"events", "messages", "dead_letters"} {
		denied(store.RoleSender, fmt.Sprintf(`SELECT 1 FROM %s LIMIT 0`, table))
	}
	scrub := map[string]bool{"body": true, "status": true, "finished_at": true, "scrubbed_at": true}
	for _, col := range names(`SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'outbox' ORDER BY ordinal_position`) {
		// DEFAULT is a value every column accepts, identity and generated
		// ones included; WHERE false writes nothing, and the privilege is
		// checked all the same.
		stmt := fmt.Sprintf(`UPDATE outbox SET %s = DEFAULT WHERE false`, pgx.Identifier{col}.Sanitize())
		if scrub[col] {
			allowed(store.RoleWorker, stmt)
		} else {
			denied(store.RoleWorker, stmt)
		}
	}
}
