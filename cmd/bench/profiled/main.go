// Command profiled runs one linepipe service (ingest, worker or sender)
// exactly as its own command does, under a CPU profile written when it
// stops, so the benchmark can show where each process spends its time
// without the services carrying a profiling endpoint. Beside it, a
// profile of what the process allocated (.allocs.pprof) shows what keeps
// its collector busy.
//
//	profiled ingest|worker|sender <cpu-profile-path>
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/worker"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: profiled ingest|worker|sender <cpu-profile-path>")
		os.Exit(2)
	}
	service, path := os.Args[1], os.Args[2]
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profiled:", err)
		os.Exit(2)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "profiled:", err)
		os.Exit(2)
	}
	code := run(service)
	pprof.StopCPUProfile()
	_ = f.Close()
	if a, err := os.Create(strings.TrimSuffix(path, ".cpu.pprof") + ".allocs.pprof"); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(a, 0)
		_ = a.Close()
	}
	os.Exit(code)
}

func run(service string) int {
	env := config.FromOS()
	log, err := ops.NewLogger(env.String("LOG_LEVEL", "info"), service)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profiled:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := ops.SignalContext()
	defer stop()
	var runErr error
	switch service {
	case "ingest":
		runErr = runService(ctx, log, func() (func(context.Context) error, error) {
			s, err := ingest.SettingsFromEnv(env)
			return func(ctx context.Context) error { return ingest.Run(ctx, s, log) }, err
		})
	case "worker":
		runErr = runService(ctx, log, func() (func(context.Context) error, error) {
			s, err := worker.SettingsFromEnv(env)
			return func(ctx context.Context) error {
				return worker.Run(ctx, s, log, worker.HandlersFromSettings(s)...)
			}, err
		})
	case "sender":
		runErr = runService(ctx, log, func() (func(context.Context) error, error) {
			s, err := sender.SettingsFromEnv(env)
			return func(ctx context.Context) error { return sender.RunService(ctx, s, log) }, err
		})
	default:
		fmt.Fprintln(os.Stderr, "profiled: unknown service", service)
		return 2
	}
	if runErr != nil {
		log.Error("stopped", zap.Error(runErr))
		return 1
	}
	return 0
}

func runService(ctx context.Context, log *zap.Logger, build func() (func(context.Context) error, error)) error {
	run, err := build()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return run(ctx)
}
