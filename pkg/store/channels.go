package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the statements here need: a pool, a connection or a
// transaction, so callers choose the transaction boundary.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// Channel is one LINE channel linepipe serves. Secret and AccessToken are
// credentials: never log them.
type Channel struct {
	ID          string
	Secret      string
	AccessToken string // "" means issue stateless tokens with ID and Secret
}

// ListChannels returns every configured channel.
func ListChannels(ctx context.Context, q Querier) ([]Channel, error) {
	rows, err := q.Query(ctx, `SELECT channel_id, channel_secret, coalesce(access_token, '') FROM channels`)
	if err != nil {
		return nil, fmt.Errorf("listing channels: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Channel, error) {
		var c Channel
		err := r.Scan(&c.ID, &c.Secret, &c.AccessToken)
		return c, err
	})
}

// GetChannel returns one channel, or ErrNotFound.
func GetChannel(ctx context.Context, q Querier, id string) (Channel, error) {
	c := Channel{ID: id}
	err := q.QueryRow(ctx, `SELECT channel_secret, coalesce(access_token, '') FROM channels WHERE channel_id = $1`, id).
		Scan(&c.Secret, &c.AccessToken)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("getting channel %s: %w", id, err)
	}
	return c, nil
}

// SeedChannel inserts a channel configured by environment only when no row
// for it exists, and reports whether it did. The channels table is the
// source of truth once a row exists: an operator's rotation (an UPDATE)
// must survive every restart, so a seed never overwrites.
func SeedChannel(ctx context.Context, q Querier, c Channel) (bool, error) {
	tag, err := q.Exec(ctx, `INSERT INTO channels (channel_id, channel_secret, access_token)
		VALUES ($1, $2, nullif($3, ''))
		ON CONFLICT (channel_id) DO NOTHING`,
		c.ID, c.Secret, c.AccessToken)
	if err != nil {
		return false, fmt.Errorf("seeding channel %s: %w", c.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// UpsertChannel creates or replaces a channel's credentials. Services never
// call it at start-up (see SeedChannel); it is for tools and tests.
func UpsertChannel(ctx context.Context, q Querier, c Channel) error {
	_, err := q.Exec(ctx, `INSERT INTO channels (channel_id, channel_secret, access_token)
		VALUES ($1, $2, nullif($3, ''))
		ON CONFLICT (channel_id) DO UPDATE
		SET channel_secret = excluded.channel_secret, access_token = excluded.access_token, updated_at = now()`,
		c.ID, c.Secret, c.AccessToken)
	if err != nil {
		return fmt.Errorf("upserting channel %s: %w", c.ID, err)
	}
	return nil
}
