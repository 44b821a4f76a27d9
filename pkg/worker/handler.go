package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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
