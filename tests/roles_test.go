package tests

import (
	"context"
	"errors"
	"testing"

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
