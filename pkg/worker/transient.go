package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// transient reports failures that say nothing about the message itself:
// Postgres unreachable, restarting, read-only, overloaded, or a
// transaction that lost a race. They are retried without ever counting
// towards a dead letter.
func (w *Worker) transient(ctx context.Context, err error) bool {
	var he *handlerError
	if errors.As(err, &he) {
		// A bot's own call (a CRM over HTTP, say) can time out or lose
		// its connection: outage-shaped, but no outage of Postgres
		// unless Postgres, asked now, does not answer (asked with a
		// context that has ended, as when a replay is cut off by the
		// stop, it does not). Counted as the event's failure, it
		// reaches dead_letters at MaxAttempts instead of holding its
		// batch back for ever. Postgres's own answers to the bot's
		// statements keep their meaning.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return transientCode(pgErr.Code)
		}
		return w.pingFails(ctx)
	}
	if c, known := classify(err); known {
		return c
	}
	// An error Postgres did not answer with (a driver or network error
	// of a shape not listed): ask Postgres whether it is there at all.
	return w.pingFails(ctx)
}

// pingFails reports whether Postgres does not answer a ping within 2 s.
func (w *Worker) pingFails(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return w.db.Ping(pctx) != nil
}

// handlerError is a bot handler's failure on one event.
type handlerError struct {
	event string // the event's dedup id
	err   error
}

func (e *handlerError) Error() string { return "handler for event " + e.event + ": " + e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// classify sorts an error without asking the database: transient or
// not, and whether the error's kind is known at all.
func classify(err error) (transient, known bool) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true, true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientCode(pgErr.Code), true
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true, true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true, true
	}
	return false, false
}

// transientCode reports SQLSTATEs that an outage, a failover or load
// causes, whatever the message: every one of them may succeed on retry.
func transientCode(code string) bool {
	switch code {
	case "25006", // read_only_sql_transaction: a failover left us on a standby
		"55P03", // lock_not_available: lock_timeout
		"55006", // object_in_use
		"57014": // query_canceled: statement_timeout, or an operator's cancel
		return true
	}
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "08", // connection exceptions
		"40", // transaction rollback: serialization failure (40001), deadlock (40P01)
		"53", // insufficient resources: too many connections (53300), disk full, out of memory
		"57", // operator intervention: admin/crash shutdown (57P01, 57P02), cannot connect now (57P03)
		"58": // system errors (I/O)
		return true
	}
	return false
}
