package store_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// recording is a Querier that keeps every statement and argument it is
// given: what reaches the server, and so what the server may log.
type recording struct {
	store.Querier
	sent []string
}

func (r *recording) note(sql string, args []any) {
	r.sent = append(r.sent, sql)
	for _, a := range args {
		r.sent = append(r.sent, fmt.Sprint(a))
	}
}

func (r *recording) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.note(sql, args)
	return r.Querier.Exec(ctx, sql, args...)
}

func (r *recording) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.note(sql, args)
	return r.Querier.Query(ctx, sql, args...)
}

func (r *recording) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	r.note(sql, args)
	return r.Querier.QueryRow(ctx, sql, args...)
}

// A login user's password reaches Postgres only as its SCRAM-SHA-256
// verifier: no statement text or parameter holds it, on creation or on a
// rotation, since the server logs failed statements' text, and every DDL
// statement with log_statement=ddl. The stored password is that verifier.
func TestLoginUserPasswordNeverSentInPlain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	name := fmt.Sprintf("linepipe_pw_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{name}.Sanitize())
	})
	for _, password := range []string{"first-Secret-1", "rotated Secret 2"} {
		rec := &recording{Querier: db.Pool}
		if err := store.EnsureLoginUser(ctx, rec, name, password, store.RoleWorker); err != nil {
			t.Fatal(err)
		}
		for _, s := range rec.sent {
			if strings.Contains(s, password) {
				t.Fatalf("sent to Postgres in plain: %q", s)
			}
		}
		var stored string
		if err := db.Pool.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, name).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") || strings.Contains(stored, password) {
			t.Fatalf("stored password %q, want a SCRAM-SHA-256 verifier", stored)
		}
		// The verifier is this password's: recomputed with its salt, it
		// is what Postgres holds (a client logging in with the password
		// proves the same keys).
		salt64, _, _ := strings.Cut(strings.TrimPrefix(stored, "SCRAM-SHA-256$4096:"), "$")
		salt, err := base64.StdEncoding.DecodeString(salt64)
		if err != nil {
			t.Fatal(err)
		}
		if want, _, _ := store.ScramVerifier(password, salt, 4096); stored != want {
			t.Errorf("stored verifier %q is not the password's (%q)", stored, want)
		}
	}
}
