package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
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
