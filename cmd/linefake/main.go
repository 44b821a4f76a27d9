// Command linefake serves the LINE Platform emulator: the Messaging API
// send endpoints, the stateless token endpoint and an admin API, for
// tests, chaos runs and local development in place of LINE.
package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/cli"
	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/ops"
)

func main() {
	if _, code := cli.Linefake.Parse(os.Args[1:], os.Stdout, os.Stderr); code != cli.Continue {
		os.Exit(code)
	}
	settings, err := linefake.SettingsFromEnv(config.FromOS())
	if err != nil {
		fmt.Fprintln(os.Stderr, "linefake: configuration:", err)
		os.Exit(2)
	}
	log, err := ops.NewLogger(settings.LogLevel, "linefake")
	if err != nil {
		fmt.Fprintln(os.Stderr, "linefake:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := ops.SignalContext()
	defer stop()
	if err := linefake.Run(ctx, settings, log); err != nil {
		log.Error("linefake stopped", zap.Error(err))
		os.Exit(1)
	}
	log.Info("linefake stopped")
}
