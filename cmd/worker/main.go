// Command worker stores the events ingest published into Postgres and
// honours unsend. `worker migrate` applies the schema and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/worker"
)

func main() {
	env := config.FromOS()
	log, err := ops.NewLogger(env.String("LOG_LEVEL", "info"), "worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()

	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		url := env.String("DATABASE_URL", "")
		if url == "" {
			fmt.Fprintln(os.Stderr, "worker migrate: DATABASE_URL is required")
			os.Exit(2)
		}
		users, err := worker.LoginUsersFromEnv(env)
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker migrate: configuration:", err)
			os.Exit(2)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := worker.Migrate(ctx, url, log, users...); err != nil {
			log.Error("migrate failed", zap.Error(err))
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "usage: worker [migrate]\n")
		os.Exit(2)
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
