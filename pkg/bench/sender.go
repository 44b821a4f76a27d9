package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/store"
)

// SenderResult is outbox throughput of one replica with limits lifted,
// and with LINE's push limit in force on both sides.
type SenderResult struct {
	Rows              int     `json:"rows"`
	UnlimitedPerSec   float64 `json:"unlimitedPerSec"`
	UnlimitedFailures int     `json:"unlimitedNotDelivered"`
	// UnlimitedCPUPerSend is the sender process's CPU (user and system,
	// start-up included) per row of the unlimited drain, in milliseconds.
	UnlimitedCPUPerSend float64 `json:"unlimitedCpuMsPerSend"`
	// UnlimitedPGPerSend is the CPU of the Postgres backends serving
	// that sender, read as the last row finished, in milliseconds per
	// row; 0 when they could not be read (Postgres on another machine).
	UnlimitedPGPerSend float64      `json:"unlimitedPgBackendCpuMsPerSend"`
	LimitedRows        int          `json:"limitedRows"`
	Limited            LimitedDrain `json:"limited"`
}

// insertPushes queues n pushes on the stack's channel.
func (b *Bench) insertPushes(ctx context.Context, n int, tag string) error {
	return b.insertPushesFor(ctx, b.stack.ChannelID, n, tag)
}

// insertPushesFor queues n pushes on channel, each to its own user so no
// per-user cap applies, as one INSERT the way an application would write
// them.
func (b *Bench) insertPushesFor(ctx context.Context, channel string, n int, tag string) error {
	_, err := b.schema.Pool.Exec(ctx, `INSERT INTO outbox (channel_id, endpoint, body)
		SELECT $1, 'push', json_build_object('to', 'U' || md5($2 || i::text),
			'messages', json_build_array(json_build_object('type', 'text', 'text', 'bench ' || $2 || ' ' || i)))
		FROM generate_series(1, $3) AS i`, channel, tag, n)
	return err
}

// drainOutbox starts replicas senders with env, waits until no row is
// left pending, retrying or in flight, and returns the sender-to-emulator
// rate measured between the first and the last accepted send.
func (b *Bench) drainOutbox(ctx context.Context, emu *Emulator, name string, replicas int, env ...string) (float64, int, error) {
	rate, failed, _, err := b.drainOutboxCPU(ctx, emu, name, replicas, env...)
	return rate, failed, err
}

// drainCPU is the CPU seconds a drain's senders used, and the Postgres
// backends serving them, read as the last row finished.
type drainCPU struct{ proc, pg float64 }

// drainOutboxCPU is drainOutbox that also returns the CPU its senders
// and their Postgres backends used. Each sender connects under its own
// application_name (appURL) so its backends can be told apart.
//
// The senders run without their content fetcher: a drain measures the
// outbox alone, and the worker stage leaves message_content rows (for an
// emulator that has none of their content) that the fetcher would work
// through on the drain's CPU. After the worker stage that had added 0.04
// ms of Postgres CPU to every push.
func (b *Bench) drainOutboxCPU(ctx context.Context, emu *Emulator, name string, replicas int, env ...string) (float64, int, drainCPU, error) {
	env = append([]string{"CONTENT_FETCH=false"}, env...)
	var procs []*Proc
	var apps []string
	var cpu drainCPU
	var want int
	if err := b.schema.Pool.QueryRow(ctx, openOutboxCount).Scan(&want); err != nil {
		return 0, 0, cpu, err
	}
	base := emu.AcceptedCount()
	for i := 0; i < replicas; i++ {
		pname := name
		if replicas > 1 {
			pname = fmt.Sprintf("%s-%d", name, i+1)
		}
		p, err := b.stack.Sender(pname, env...)
		if err != nil {
			return 0, 0, cpu, err
		}
		dbURL, app, err := b.appURL(b.stack.dbURL(b.stack.SenderDatabaseURL), pname)
		if err != nil {
			return 0, 0, cpu, err
		}
		apps = append(apps, app)
		p.Env = append(p.Env, "LINE_API_BASE_URL="+emu.URL, "DATABASE_URL="+dbURL)
		if err := b.start(p); err != nil {
			return 0, 0, cpu, err
		}
		defer func() { _ = p.Stop(10 * time.Second) }()
		procs = append(procs, p)
	}
	// The end is watched at the emulator, which costs the drain nothing;
	// the database is asked only once every row has been accepted or
	// acceptances stall (a row LINE refuses is never accepted). Counting
	// the open rows every 50 ms took a backend 5–9 ms a time on 30,000
	// rows: CPU taken from the drain being timed.
	deadline := time.Now().Add(b.cfg.DrainTimeout)
	last, grewAt, open := base, time.Now(), want
	for {
		n := emu.AcceptedCount()
		if n != last {
			last, grewAt = n, time.Now()
		}
		if n-base >= want || time.Since(grewAt) >= 250*time.Millisecond {
			err := b.schema.Pool.QueryRow(ctx, openOutboxCount).Scan(&open)
			if err == nil && open == 0 {
				break
			}
			grewAt = time.Now()
		}
		if time.Now().After(deadline) {
			return 0, 0, cpu, fmt.Errorf("%s left %d rows open after %s", name, open, b.cfg.DrainTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, p := range procs {
		cpu.proc += p.CPUSeconds()
		cpu.pg += b.backendCPU("application_name = $1", apps[i])
	}
	b.pgCPU() // so the stage's log counts these backends after they end
	var notDelivered int
	if err := b.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE status <> 'delivered'`).Scan(&notDelivered); err != nil {
		return 0, 0, cpu, err
	}
	ds := emu.Accepted()
	if len(ds) < 2 {
		return 0, notDelivered, cpu, fmt.Errorf("emulator accepted %d sends", len(ds))
	}
	span := ds[len(ds)-1].At.Sub(ds[0].At).Seconds()
	return float64(len(ds)-1) / span, notDelivered, cpu, nil
}

// openOutboxCount counts the rows a drain has still to finish.
const openOutboxCount = `SELECT count(*) FROM outbox WHERE status IN ('pending', 'retrying', 'in_flight')`

// runSender measures the sender against an emulator without limits, then
// against one enforcing LINE's push limit with the sender's default rates.
func (b *Bench) runSender(ctx context.Context) (SenderResult, error) {
	res := SenderResult{Rows: b.cfg.SenderRows, LimitedRows: b.cfg.SenderLimitedRows}
	ch := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	free, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, RateLimits: UnlimitedRates(), Seed: 1})
	if err != nil {
		return res, err
	}
	defer free.Close()
	if res.UnlimitedPerSec, res.UnlimitedFailures, res.UnlimitedCPUPerSend, res.UnlimitedPGPerSend, err =
		b.freeDrain(ctx, free, "sender-unlimited"); err != nil {
		return res, err
	}
	b.logf("sender, no limits: %.0f rows/s, %.3f ms of CPU per send, %.3f ms in its Postgres backends",
		res.UnlimitedPerSec, res.UnlimitedCPUPerSend, res.UnlimitedPGPerSend)

	if err := b.limitedDrain(ctx, ch, 1, res.LimitedRows, &res.Limited); err != nil {
		return res, err
	}
	return res, nil
}

// LimitedDrain is one drain of queued pushes against an emulator
// enforcing LINE's push limit.
type LimitedDrain struct {
	Replicas     int     `json:"replicas"`
	Rows         int     `json:"rows"`
	Limit        int     `json:"limitPerSec"`
	PerSec       float64 `json:"perSec"`
	MaxPerSecond int     `json:"maxAttemptsPerSecond"`
	// StartedPerSecond is the busiest second of the same calls as the
	// senders started them (api_log.called_at, each sender's clock):
	// above it, MaxPerSecond is calls that left evenly and reached the
	// emulator's host bunched (the emulator times them by the kernel's
	// receive time, linefake.ArrivalListener).
	StartedPerSecond int      `json:"maxStartedPerSecond"`
	TooMany          int      `json:"tooMany429"`
	NotDelivered     int      `json:"notDelivered"`
	CPU              CPUShare `json:"cpu"`
	// SlotsPerSec is the most the senders' default push slots allow:
	// LINE's limit over its period widened by the rate slack.
	SlotsPerSec float64 `json:"slotsPerSec"`
	// Moved is how many rows were sent on a later slot than their claim
	// gave them (a claim's shift or a fresh slot), each leaving its
	// first slot unused.
	Moved int `json:"movedRows"`
}

// Ratio is the delivered rate over LINE's limit.
func (d LimitedDrain) Ratio() float64 { return d.PerSec / float64(max(d.Limit, 1)) }

// OK is the target: at least TargetSenderRatio of the limit, no second
// over it, no 429 and every row delivered.
func (d LimitedDrain) OK() bool { return d.rateOK() && d.windowOK() }

// rateOK is the rate half of the target: at least TargetSenderRatio of
// the limit, every row delivered.
func (d LimitedDrain) rateOK() bool { return d.Ratio() >= TargetSenderRatio && d.NotDelivered == 0 }

// windowOK is the other half: no second over the limit at the emulator,
// no 429.
func (d LimitedDrain) windowOK() bool { return d.MaxPerSecond <= d.Limit && d.TooMany == 0 }

// limitedDrain queues rows pushes and drains them with replicas senders
// at their default rates, against an emulator enforcing LINE's limits.
func (b *Bench) limitedDrain(ctx context.Context, ch linefake.Channel, replicas, rows int, out *LimitedDrain) error {
	push := sender.LINERates()[store.EndpointPush]
	*out = LimitedDrain{Replicas: replicas, Rows: rows, Limit: LINEPushLimit,
		SlotsPerSec: float64(push.Limit) / (push.Per + sender.DefaultRateSlack).Seconds()}
	limited, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, Seed: 2})
	if err != nil {
		return err
	}
	defer limited.Close()
	if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log"); err != nil {
		return err
	}
	if err := b.insertPushes(ctx, rows, fmt.Sprintf("limited-%d", replicas)); err != nil {
		return err
	}
	span := b.startSpan()
	out.PerSec, out.NotDelivered, err = b.drainOutbox(ctx, limited, fmt.Sprintf("sender-limited-x%d", replicas), replicas,
		"SENDER_RECIPIENT_CAP=off")
	if err != nil {
		return err
	}
	out.CPU = b.share(span, float64(rows))
	st := limited.Stats()
	out.MaxPerSecond = st.Window(b.stack.ChannelID, linefake.EndpointPush).MaxAttempts
	out.TooMany = st.Count(linefake.EndpointPush, 429)
	if out.StartedPerSecond, err = b.startedPerSecond(ctx, linefake.PathPush); err != nil {
		return err
	}
	if err := b.schema.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE send_at > first_attempt_at").Scan(&out.Moved); err != nil {
		return err
	}
	b.logf("sender x%d, LINE limits: %.0f rows/s (%.2f of the limit, %.3f of the %.0f/s its slots allow; %d rows moved to later slots), busiest second %d at the emulator, %d as sent, 429s %d, %d not delivered; CPU per push %s, host %s",
		replicas, out.PerSec, out.Ratio(), out.PerSec/out.SlotsPerSec, out.SlotsPerSec, out.Moved, out.MaxPerSecond, out.StartedPerSecond,
		out.TooMany, out.NotDelivered, out.CPU, out.CPU.busyText())
	return nil
}

// startedPerSecond is the busiest second of api_log's calls to path, by
// when the senders started them.
func (b *Bench) startedPerSecond(ctx context.Context, path string) (int, error) {
	rows, err := b.schema.Pool.Query(ctx, "SELECT called_at FROM api_log WHERE endpoint = $1 ORDER BY called_at", path)
	if err != nil {
		return 0, err
	}
	times, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return 0, err
	}
	return linefake.BusiestSecond(times), nil
}

// runSender2 drains the same job with two sender replicas sharing the
// channel's rate buckets.
func (b *Bench) runSender2(ctx context.Context) (LimitedDrain, error) {
	var out LimitedDrain
	ch := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	err := b.limitedDrain(ctx, ch, 2, b.cfg.SenderLimitedRows, &out)
	return out, err
}

// freeDrain queues SenderRows pushes and drains them with one sender
// whose limits are lifted: pushes/s at the emulator, rows not delivered,
// and the process's and its Postgres backends' CPU per push in ms.
func (b *Bench) freeDrain(ctx context.Context, emu *Emulator, name string) (perSec float64, failed int, cpuMS, pgMS float64, err error) {
	if _, err := b.schema.Pool.Exec(ctx, "TRUNCATE outbox, outbox_rate, api_log"); err != nil {
		return 0, 0, 0, 0, err
	}
	if err := b.checkpoint(ctx); err != nil {
		return 0, 0, 0, 0, err
	}
	if err := b.insertPushes(ctx, b.cfg.SenderRows, name); err != nil {
		return 0, 0, 0, 0, err
	}
	perSec, failed, cpu, err := b.drainOutboxCPU(ctx, emu, name, 1, "SENDER_RATE_PUSH=off", "SENDER_RECIPIENT_CAP=off")
	n := float64(b.cfg.SenderRows)
	return perSec, failed, cpu.proc * 1000 / n, cpu.pg * 1000 / n, err
}

// checkpoint writes out every dirty buffer before a drain that is
// compared with another (the sender's and River's), and before a latency
// stage: otherwise the first after the worker stage pays, in its own
// backends' CPU, for evicting the pages that stage dirtied (0.21 against
// 0.11 ms of Postgres CPU per push in one whole run).
func (b *Bench) checkpoint(ctx context.Context) error {
	if _, err := b.schema.Pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint before a stage: %w", err)
	}
	return nil
}
