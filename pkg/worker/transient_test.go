package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// Every outage-shaped error is transient, however it reaches the worker
// (wrapped, from the driver, from the network); errors of the message's
// own making are not.
func TestClassifyOutageShapedErrors(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("inserting events: %w", &pgconn.PgError{Code: code}) }
	transient := map[string]error{
		"admin shutdown 57P01":          pg("57P01"),
		"crash shutdown 57P02":          pg("57P02"),
		"cannot connect now 57P03":      pg("57P03"),
		"read-only failover 25006":      pg("25006"),
		"serialization failure 40001":   pg("40001"),
		"deadlock 40P01":                pg("40P01"),
		"too many connections 53300":    pg("53300"),
		"disk full 53100":               pg("53100"),
		"statement timeout 57014":       pg("57014"),
		"lock timeout 55P03":            pg("55P03"),
		"connection failure 08006":      pg("08006"),
		"connection refused":            &net.OpError{Op: "dial", Err: errors.New("connection refused")},
		"connection lost mid-statement": fmt.Errorf("applying events: %w", io.ErrUnexpectedEOF),
		"closed connection":             fmt.Errorf("x: %w", net.ErrClosed),
		"batch deadline":                fmt.Errorf("x: %w", context.DeadlineExceeded),
		"shutdown":                      context.Canceled,
	}
	for name, err := range transient {
		if c, known := classify(err); !c || !known {
			t.Errorf("%s: transient=%v known=%v, want transient", name, c, known)
		}
	}
	permanent := map[string]error{
		"invalid text 22P02":     pg("22P02"),
		"not null 23502":         pg("23502"),
		"raised by bot P0001":    pg("P0001"),
		"check violation 23514":  pg("23514"),
		"undefined table 42P01":  pg("42P01"),
		"bad encoding 22021":     pg("22021"),
		"value too long 22001":   pg("22001"),
		"unsupported json 22P05": pg("22P05"),
	}
	for name, err := range permanent {
		if c, known := classify(err); c || !known {
			t.Errorf("%s: transient=%v known=%v, want permanent", name, c, known)
		}
	}
	if _, known := classify(errors.New("bot logic failed")); known {
		t.Error("an unknown error was classified without asking Postgres")
	}
}

// TestHandlerErrorsAreOutagesOnlyWhilePostgresIsAway: a bot handler's
// timeout or network error (its own call to another service, or its
// statement on a lost connection) is an outage only while Postgres does
// not answer; Postgres's own answers to a handler's statements keep their
// meaning, and a stopping worker's cancelled handler is no failure.
func TestHandlerErrorsAreOutagesOnlyWhilePostgresIsAway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := New(Config{}, stream.Config{}, nil, testenv.NewDB(t).Pool, NewMetrics(ops.NewRegistry()), zap.NewNop())
	awayPool, err := pgxpool.New(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(awayPool.Close)
	away := New(Config{}, stream.Config{}, nil, awayPool, NewMetrics(ops.NewRegistry()), zap.NewNop())
	h := func(err error) error { return &handlerError{event: "e", err: err} }
	timeout := h(fmt.Errorf("calling the CRM: %w", context.DeadlineExceeded))
	refused := h(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	for name, c := range map[string]struct {
		w    *Worker
		err  error
		want bool
	}{
		"timeout, Postgres up":           {up, timeout, false},
		"refused, Postgres up":           {up, refused, false},
		"timeout, Postgres away":         {away, timeout, true},
		"refused, Postgres away":         {away, refused, true},
		"serialization from Postgres":    {up, h(&pgconn.PgError{Code: "40001"}), true},
		"unique violation from Postgres": {up, h(&pgconn.PgError{Code: "23505"}), false},
	} {
		if got := c.w.transient(ctx, c.err); got != c.want {
			t.Errorf("%s: transient %v, want %v", name, got, c.want)
		}
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if !up.transient(stopped, h(context.Canceled)) {
		t.Error("a handler cancelled by the worker's stop counted as the event's failure")
	}
}
