package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
)

// SenderResult is outbox throughput with limits lifted, and with LINE's
// push limit in force on both sides.
type SenderResult struct {
	Rows              int     `json:"rows"`
	UnlimitedPerSec   float64 `json:"unlimitedPerSec"`
	LimitedRows       int     `json:"limitedRows"`
	Limit             int     `json:"limitPerSec"`
	LimitedPerSec     float64 `json:"limitedPerSec"`
	MaxPerSecond      int     `json:"maxAttemptsPerSecond"`
	TooMany           int     `json:"tooMany429"`
	UnlimitedFailures int     `json:"unlimitedNotDelivered"`
	LimitedFailures   int     `json:"limitedNotDelivered"`
}

// insertPushes queues n pushes, each to its own user so no per-user cap
// applies, as one INSERT the way an application would write them.
func (b *Bench) insertPushes(ctx context.Context, n int, tag string) error {
	_, err := b.schema.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT $1, 'push', json_build_object('to', 'U' || md5($2 || i::text),
			'messages', json_build_array(json_build_object('type', 'text', 'text', 'bench ' || $2 || ' ' || i)))
		FROM generate_series(1, $3) AS i`, b.stack.ChannelID, tag, n)
	return err
}

// drainOutbox starts a sender with env, waits until no row is left
// pending, retrying or in flight, and returns the sender-to-emulator rate
// measured between the first and the last accepted send.
func (b *Bench) drainOutbox(ctx context.Context, emu *Emulator, name string, rows int, env ...string) (float64, int, error) {
	p, err := b.stack.Sender(name, env...)
	if err != nil {
		return 0, 0, err
	}
	p.Env = append(p.Env, "LINE_API_BASE_URL="+emu.URL)
	if err := b.start(p); err != nil {
		return 0, 0, err
	}
	defer func() { _ = p.Stop(10 * time.Second) }()
	deadline := time.Now().Add(b.cfg.DrainTimeout)
	for {
		var open int
		err := b.schema.Pool.QueryRow(ctx,
			`SELECT count(*) FROM outbox WHERE status IN ('pending', 'retrying', 'in_flight')`).Scan(&open)
		if err == nil && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s left %d rows open after %s", name, open, b.cfg.DrainTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.SampleRSS()
	var notDelivered int
	if err := b.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE status <> 'delivered'`).Scan(&notDelivered); err != nil {
		return 0, 0, err
	}
	ds := emu.Accepted()
	if len(ds) < 2 {
		return 0, notDelivered, fmt.Errorf("emulator accepted %d sends", len(ds))
	}
	span := ds[len(ds)-1].At.Sub(ds[0].At).Seconds()
	return float64(len(ds)-1) / span, notDelivered, nil
}

// runSender measures the sender against an emulator without limits, then
// against one enforcing LINE's push limit with the sender's default rates.
func (b *Bench) runSender(ctx context.Context) (SenderResult, error) {
	res := SenderResult{Rows: b.cfg.SenderRows, LimitedRows: b.cfg.SenderLimitedRows, Limit: 2000}
	ch := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	free, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, RateLimits: UnlimitedRates(), Seed: 1})
	if err != nil {
		return res, err
	}
	defer free.Close()
	if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log"); err != nil {
		return res, err
	}
	if err := b.insertPushes(ctx, res.Rows, "free"); err != nil {
		return res, err
	}
	res.UnlimitedPerSec, res.UnlimitedFailures, err = b.drainOutbox(ctx, free, "sender-unlimited", res.Rows,
		"SENDER_RATE_PUSH=off", "SENDER_RECIPIENT_CAP=off")
	if err != nil {
		return res, err
	}
	b.logf("sender, no limits: %.0f rows/s", res.UnlimitedPerSec)

	limited, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, Seed: 2})
	if err != nil {
		return res, err
	}
	defer limited.Close()
	if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log"); err != nil {
		return res, err
	}
	if err := b.insertPushes(ctx, res.LimitedRows, "limited"); err != nil {
		return res, err
	}
	res.LimitedPerSec, res.LimitedFailures, err = b.drainOutbox(ctx, limited, "sender-limited", res.LimitedRows,
		"SENDER_RECIPIENT_CAP=off")
	if err != nil {
		return res, err
	}
	st := limited.Stats()
	res.MaxPerSecond = st.Window(b.stack.ChannelID, linefake.EndpointPush).MaxAttempts
	res.TooMany = st.Count(linefake.EndpointPush, 429)
	b.logf("sender, LINE limits: %.0f rows/s, busiest second %d, 429s %d", res.LimitedPerSec, res.MaxPerSecond, res.TooMany)
	return res, nil
}
