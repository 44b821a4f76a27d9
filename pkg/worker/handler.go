package worker

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/events"
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
