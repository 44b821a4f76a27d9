// Command sender delivers the outbox table to the LINE Messaging API,
// exactly once per row, from any number of replicas.
package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/cli"
	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/sender"
)

func main() {
	if _, code := cli.Sender.Parse(os.Args[1:], os.Stdout, os.Stderr); code != cli.Continue {
		os.Exit(code)
	}
	settings, err := sender.SettingsFromEnv(config.FromOS())
	if err != nil {
		fmt.Fprintln(os.Stderr, "sender: configuration:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(settings.LogLevel, "sender")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := ops.SignalContext()
	defer stop()
	if err := sender.RunService(ctx, settings, log); err != nil {
		log.Error("sender stopped", zap.Error(err))
		os.Exit(1)
	}
	log.Info("sender stopped")
}
