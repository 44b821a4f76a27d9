package sender

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// NotifyChannel is the Postgres notification channel the outbox triggers
// signal when a row is committed or requeued (migrations/0003).
const NotifyChannel = "linepipe_outbox"

// listen holds a connection of its own that LISTENs on NotifyChannel and
// signals wake for every notification, so a committed row is claimed
// within milliseconds whoever inserted it. When the connection drops it
// reconnects with backoff and signals once more, since notifications sent
// meanwhile are lost; the poll covers the gap.
func (s *Sender) listen(ctx context.Context, wake chan<- struct{}) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	retry := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, signal)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("outbox notifications lost; polling until reconnected", zap.Error(err), zap.Duration("retry_in", retry))
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, 5*time.Second)
	}
}

func (s *Sender) listenOnce(ctx context.Context, signal func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.db.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	signal() // rows committed while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		signal()
	}
}
