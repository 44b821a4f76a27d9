// Command worker stores the events ingest published into Postgres and
// honours unsend. `worker migrate` applies the schema and exits;
// `worker migrate status` lists applied and pending migrations;
// `worker content get <channel> <message>` streams a stored content to stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/cli"
	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/worker"
)

func main() {
	// worker content get <channel> <message> > file
	if len(os.Args) > 1 && os.Args[1] == "content" {
		os.Exit(contentCommand(config.FromOS(), os.Args[2:]))
	}
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

	if len(cmd) == 1 && cmd[0] == "seal-channels" {
		os.Exit(sealChannels(env, log))
	}
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
		users, err := worker.LoginUsersFromEnv(env)
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker migrate: configuration:", err)
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
		if err := worker.Migrate(ctx, url, log, users...); err != nil {
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

// sealChannels encrypts every channel's credentials under the first key
// of LINEPIPE_SECRET_KEY: plaintext rows, and rows sealed under an older
// key during a rotation. It runs as the schema owner, like migrate.
func sealChannels(env *config.Env, log *zap.Logger) int {
	url := env.String("DATABASE_URL", "")
	keys, err := secretbox.FromEnv(env)
	if err == nil && !keys.Enabled() {
		err = errors.New("LINEPIPE_SECRET_KEY is required")
	}
	if err == nil && url == "" {
		err = errors.New("DATABASE_URL is required")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker seal-channels:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pool, err := store.Open(ctx, url, 2)
	if err != nil {
		log.Error("seal-channels failed", zap.Error(err))
		return 1
	}
	defer pool.Close()
	n, err := store.ResealChannels(ctx, pool, keys)
	if err != nil {
		log.Error("seal-channels failed", zap.Error(err))
		return 1
	}
	log.Info("channels sealed", zap.Int("rewritten", n), zap.String("key_id", keys.SealingKeyID()))
	return 0
}
