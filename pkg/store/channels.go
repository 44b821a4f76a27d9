package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/linepipe/linepipe/pkg/secretbox"
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

// The associated data a channel's sealed credentials are bound to, so a
// sealed secret cannot be copied into another row or column and open.
func secretAAD(id string) string { return "channels.channel_secret:" + id }
func tokenAAD(id string) string  { return "channels.access_token:" + id }

// Sealed is c with its credentials encrypted under k's first key (as they
// are stored); unchanged when k has no keys.
func (c Channel) Sealed(k *secretbox.Keyring) (Channel, error) {
	var err1, err2 error
	c.Secret, err1 = k.Seal(secretAAD(c.ID), c.Secret)
	c.AccessToken, err2 = k.Seal(tokenAAD(c.ID), c.AccessToken)
	return c, errors.Join(err1, err2)
}

// Opened is c, as read from the table, with its credentials decrypted.
// Plaintext values (written before a key was configured) pass through.
func (c Channel) Opened(k *secretbox.Keyring) (Channel, error) {
	var err1, err2 error
	c.Secret, err1 = k.Open(secretAAD(c.ID), c.Secret)
	c.AccessToken, err2 = k.Open(tokenAAD(c.ID), c.AccessToken)
	if err := errors.Join(err1, err2); err != nil {
		return c, fmt.Errorf("channel %s credentials: %w", c.ID, err)
	}
	return c, nil
}

// ResealChannels rewrites every channel whose credentials are plaintext or
// sealed under a key other than k's first, in one transaction, and
// returns how many rows it rewrote: the last step of a key rotation, and
// how rows inserted by SQL get encrypted.
func ResealChannels(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, k *secretbox.Keyring) (int, error) {
	if !k.Enabled() {
		return 0, errors.New("resealing channels: no key configured")
	}
	n := 0
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT channel_id, channel_secret, coalesce(access_token, '') FROM channels FOR UPDATE`)
		if err != nil {
			return err
		}
		chans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Channel, error) {
			var c Channel
			err := r.Scan(&c.ID, &c.Secret, &c.AccessToken)
			return c, err
		})
		if err != nil {
			return err
		}
		for _, stored := range chans {
			if !k.NeedsReseal(stored.Secret) && !k.NeedsReseal(stored.AccessToken) {
				continue
			}
			plain, err := stored.Opened(k)
			if err != nil {
				return err
			}
			sealed, err := plain.Sealed(k)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE channels SET channel_secret = $2, access_token = nullif($3, ''), updated_at = now()
				WHERE channel_id = $1`, sealed.ID, sealed.Secret, sealed.AccessToken); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("resealing channels: %w", err)
	}
	return n, nil
}
