package ops

import (
	"io"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkAccessLine is the cost of one webhook access line through the
// services' logger, with the caller annotation every other line has and
// without it (AccessLog).
func BenchmarkAccessLine(b *testing.B) {
	for _, c := range []struct {
		name string
		log  func(*zap.Logger) *zap.Logger
	}{{"caller", func(l *zap.Logger) *zap.Logger { return l }}, {"access", AccessLog}} {
		b.Run(c.name, func(b *testing.B) {
			log, stop := newLogger(zapcore.InfoLevel, "ingest", zapcore.AddSync(io.Discard))
			defer func() { _ = stop() }()
			log = c.log(log)
			at := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				log.Info("webhook", zap.String("remote_ip", "127.0.0.1"), zap.Time("received_at", at),
					zap.String("method", "POST"), zap.String("path", "/webhook/1234567890"), zap.Int("status", 200),
					zap.Duration("took", time.Millisecond), zap.Int("events", 1),
					zap.String("webhook_id", "01HZZZZZZZZZZZZZZZZZZZZZZZ"), zap.Int("duplicates", 0))
			}
		})
	}
}
