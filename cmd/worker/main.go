// Command worker stores the events ingest published into Postgres and
// honours unsend. `worker migrate` applies the schema and exits;
// `worker migrate status` lists applied and pending migrations.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/cli"
	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/worker"
)

func main() {
	cmd, code := cli.Worker.Parse(os.Args[1:], os.Stdout, os.Stderr)
	if code != cli.Continue {
		os.Exit(code)
	}
	env := config.FromOS()
	log, err := ops.NewLogger(env.String("LOG_LEVEL", "info"), "worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()

	if len(cmd) > 0 { // migrate, migrate status
		url := env.String("DATABASE_URL", "")
		if err := env.Err(); err != nil {
			fmt.Fprintln(os.Stderr, "worker: configuration:", err)
			os.Exit(2)
		}
		if url == "" {
			fmt.Fprintln(os.Stderr, "worker migrate: DATABASE_URL is required")
			os.Exit(2)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if len(cmd) == 2 {
			if err := worker.MigrationStatus(ctx, url, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "worker migrate status:", err)
				os.Exit(1)
			}
			return
		}
		if err := worker.Migrate(ctx, url, log); err != nil {
			log.Error("migrate failed", zap.Error(err))
			os.Exit(1)
		}
		return
	}

	settings, err := worker.SettingsFromEnv(env)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker: configuration:", err)
		os.Exit(2)
	}
	ctx, stop := ops.SignalContext()
	defer stop()
	if err := worker.Run(ctx, settings, log, worker.HandlersFromSettings(settings)...); err != nil {
		log.Error("worker stopped", zap.Error(err))
		os.Exit(1)
	}
	log.Info("worker stopped")
}
