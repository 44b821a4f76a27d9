package ops

import (
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logFlushInterval bounds how long an info line may wait in the buffer.
const logFlushInterval = time.Second

// buffered gathers log lines and writes them to ws (stderr) when 256 KiB
// have gathered or a second has passed. What a crash can lose is at most
// that second of info lines: warnings and errors flush at once (see
// flushOnWarn), the mains Sync on the way out, and the durable record of
// every webhook and API call is in webhook_log and api_log, not the log.
func buffered(ws zapcore.WriteSyncer) *zapcore.BufferedWriteSyncer {
	return &zapcore.BufferedWriteSyncer{WS: zapcore.Lock(noFsync{ws}), Size: 256 << 10, FlushInterval: logFlushInterval}
}

// noFsync hands lines to the kernel and stops there. The buffer's flush
// (every second, and on every warning) ends with Sync, which on a log
// file is fsync: an fsync a second per service competes on the disk with
// Postgres's and NATS's own, and under load it made every stage slower.
// A line written to stderr survives a crash of the process without it.
type noFsync struct{ zapcore.WriteSyncer }

func (noFsync) Sync() error { return nil }

// newLogger is NewLogger writing to ws; stop flushes and ends the
// buffer's flushing goroutine (a service leaves it to the process's end).
func newLogger(lvl zapcore.Level, service string, ws zapcore.WriteSyncer) (log *zap.Logger, stop func() error) {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	buf := buffered(ws)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), buf, zap.NewAtomicLevelAt(lvl))
	log = zap.New(flushOnWarn{core}, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel),
		zap.ErrorOutput(zapcore.Lock(os.Stderr)))
	return log.With(zap.String("service", service)), buf.Stop
}

// AccessLog is log for the lines written once per webhook or per LINE
// API call. Their message names where they come from, so they go without
// the caller annotation: its stack walk was over a third of such a line's
// time (BenchmarkAccessLine: 1.6 against 2.6 µs, 656 against 929 bytes
// allocated), paid on every webhook and every push.
func AccessLog(log *zap.Logger) *zap.Logger { return log.WithOptions(zap.WithCaller(false)) }

// flushOnWarn writes warnings and errors through at once, with every line
// before them, so what an operator is alerted to is never held back and
// the log keeps its order.
type flushOnWarn struct{ zapcore.Core }

func (c flushOnWarn) With(fields []zapcore.Field) zapcore.Core {
	return flushOnWarn{c.Core.With(fields)}
}

func (c flushOnWarn) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c flushOnWarn) Write(e zapcore.Entry, fields []zapcore.Field) error {
	err := c.Core.Write(e, fields)
	if e.Level >= zapcore.WarnLevel {
		_ = c.Core.Sync() // a flush to the kernel (noFsync)
	}
	return err
}
