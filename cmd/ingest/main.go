// Command ingest receives LINE webhooks, verifies their signatures and
// stores each event durably in JetStream before answering 200.
package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/cli"
	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/ops"
)

func main() {
	if _, code := cli.Ingest.Parse(os.Args[1:], os.Stdout, os.Stderr); code != cli.Continue {
		os.Exit(code)
	}
	settings, err := ingest.SettingsFromEnv(config.FromOS())
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest: configuration:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(settings.LogLevel, "ingest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := ops.SignalContext()
	defer stop()
	if err := ingest.Run(ctx, settings, log); err != nil {
		log.Error("ingest stopped", zap.Error(err))
		os.Exit(1)
	}
	log.Info("ingest stopped")
}
