package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/events"
	"github.com/linepipe/linepipe/pkg/store"
)

// Stored is an event the worker has just stored for the first time.
type Stored struct {
	ID        int64 // events.id
	ChannelID string
	Event     *events.Event
	Raw       []byte
	Meta      events.Meta
	// Unsent is true when the event's message was unsent before it was
	// stored; its content is already scrubbed and must not be used.
	Unsent bool

	outbox *[]store.OutboxInsert // rows queued by Enqueue
}

// Enqueue queues an outbox row. The rows every handler of a transaction
// queued are inserted together, in one statement after the last handler
// ran and before the transaction commits: they commit with the event or
// not at all, like a row a handler inserts itself, but a handler that
// reads the outbox does not see them. Under load one statement per
// transaction instead of one per reply is a large share of Postgres'
// work per webhook.
func (s Stored) Enqueue(in store.OutboxInsert) error {
	if !store.KnownEndpoint(in.Endpoint) {
		return fmt.Errorf("enqueueing %q: %w", in.Endpoint, store.ErrUnknownEndpoint)
	}
	if s.outbox == nil {
		return errors.New("enqueueing outside the worker's transaction")
	}
	*s.outbox = append(*s.outbox, in)
	return nil
}

// Handler is bot logic that runs for every newly stored event inside the
// transaction that stores it. Rows a handler writes (for example outbox
// rows) commit together with the event or not at all, and a redelivered
// event never reaches a handler twice.
type Handler interface {
	Handle(ctx context.Context, tx pgx.Tx, ev Stored) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, tx pgx.Tx, ev Stored) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, tx pgx.Tx, ev Stored) error { return f(ctx, tx, ev) }

// EnqueueOnly marks a Handler that never uses the transaction it is
// given: it only reads the event and queues outbox rows (Stored.Enqueue).
// When every handler of a worker is one (or there are none), the worker
// sends BEGIN with its first statements, and what the events imply with
// the queued rows and COMMIT (the handlers read nothing those write):
// a transaction takes two round trips instead of five, and on a busy
// host every round trip waits for two processes to be scheduled. Such a
// handler is given a transaction whose methods fail with an error; only
// Conn (nil) and LargeObjects (an empty value) have none to return.
type EnqueueOnly interface {
	Handler
	EnqueueOnly()
}

// enqueueOnly reports whether every handler is EnqueueOnly.
func enqueueOnly(hs []Handler) bool {
	for _, h := range hs {
		if _, ok := h.(EnqueueOnly); !ok {
			return false
		}
	}
	return true
}

// errNoTx is what an EnqueueOnly handler gets for using its transaction.
var errNoTx = errors.New("an EnqueueOnly handler has no transaction to use")

// noTx is the transaction an EnqueueOnly handler is given.
type noTx struct{}

func (noTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNoTx }
func (noTx) Commit(context.Context) error          { return errNoTx }
func (noTx) Rollback(context.Context) error        { return errNoTx }
func (noTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errNoTx
}
func (noTx) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults { return noBatch{} }
func (noTx) LargeObjects() pgx.LargeObjects                         { return pgx.LargeObjects{} }
func (noTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, errNoTx
}
func (noTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errNoTx
}
func (noTx) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, errNoTx }
func (noTx) QueryRow(context.Context, string, ...any) pgx.Row        { return noRow{} }
func (noTx) Conn() *pgx.Conn                                         { return nil }

type noBatch struct{}

func (noBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, errNoTx }
func (noBatch) Query() (pgx.Rows, error)         { return nil, errNoTx }
func (noBatch) QueryRow() pgx.Row                { return noRow{} }
func (noBatch) Close() error                     { return errNoTx }
func (noBatch) Tx() pgx.Tx                       { return noTx{} }

type noRow struct{}

func (noRow) Scan(...any) error { return errNoTx }
