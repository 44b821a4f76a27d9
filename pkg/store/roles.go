package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// The group roles migrations/0007_roles.sql creates, one per service. Each
// holds exactly the privileges its service's statements need.
const (
	RoleIngest = "linepipe_ingest"
	RoleWorker = "linepipe_worker"
	RoleSender = "linepipe_sender"
)

// EnsureLoginUser creates the login user name as a member of role, or, if
// it exists, sets its password and membership again, so rerunning
// `worker migrate` with a new password rotates it. An empty password
// leaves the user without one (trust or certificate authentication).
// Concurrent callers for the same name are safe.
func EnsureLoginUser(ctx context.Context, q Querier, name, password, role string) error {
	for attempt := 0; ; attempt++ {
		err := ensureLoginUser(ctx, q, name, password, role)
		var pe *pgconn.PgError
		// Another session created the same user between our check and
		// our CREATE: the second pass finds it and only alters it.
		if attempt == 0 && errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505" || pe.Code == "XX000") {
			continue
		}
		if err != nil {
			return fmt.Errorf("login user %s in %s: %w", name, role, err)
		}
		return nil
	}
}

func ensureLoginUser(ctx context.Context, q Querier, name, password, role string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	// The password goes as its SCRAM verifier wherever it can: never in
	// the statement's text or parameters, which the server may log.
	secret := password
	if password != "" {
		v, ok, err := newScramVerifier(password)
		if err != nil {
			return err
		}
		if ok {
			secret = v
		}
	}
	// Utility statements take no parameters: quote with format().
	var stmt string
	if err := q.QueryRow(ctx, `SELECT format('%s ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT', $1::text, $2::text)
		|| CASE WHEN $3::text = '' THEN ' PASSWORD NULL' ELSE format(' PASSWORD %L', $3::text) END`,
		verb, name, secret).Scan(&stmt); err != nil {
		return err
	}
	if _, err := q.Exec(ctx, stmt); err != nil {
		return err
	}
	if err := q.QueryRow(ctx, `SELECT format('GRANT %I TO %I', $1::text, $2::text)`, role, name).Scan(&stmt); err != nil {
		return err
	}
	_, err := q.Exec(ctx, stmt)
	return err
}
