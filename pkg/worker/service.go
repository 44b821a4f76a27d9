package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/stream"
)

// Settings is everything the worker reads from its environment.
type Settings struct {
	Worker        Config
	Ops           OpsConfig // replay, retention, gauges
	Stream        stream.Config
	Server        ops.ServerConfig
	DatabaseURL   string
	Concurrency   int  // consuming loops per process
	EchoBot       bool // reply to text messages with their text
	ShutdownGrace time.Duration
	LogLevel      string
	GC            ops.GC
}

// SettingsFromEnv reads Settings; see the README's configuration table.
func SettingsFromEnv(env *config.Env) (Settings, error) {
	s := Settings{
		Worker: Config{
			Consumer:      env.String("WORKER_CONSUMER", DefaultConsumer),
			BatchSize:     env.Int("WORKER_BATCH_SIZE", DefaultBatchSize),
			AckWait:       env.Duration("WORKER_ACK_WAIT", DefaultAckWait),
			MaxAttempts:   env.Int("WORKER_MAX_ATTEMPTS", DefaultMaxAttempts),
			PurgeInterval: env.Duration("WORKER_PURGE_INTERVAL", DefaultPurgeInterval),
		}.WithDefaults(),
		Ops:           OpsFromEnv(env),
		Stream:        stream.FromEnv(env),
		Server:        ops.ServerConfig{Addr: env.String("WORKER_ADDR", ":8081")},
		DatabaseURL:   env.String("DATABASE_URL", ""),
		Concurrency:   env.Int("WORKER_CONCURRENCY", 2),
		EchoBot:       env.Bool("ECHO_BOT", false),
		ShutdownGrace: env.Duration("SHUTDOWN_GRACE", 10*time.Second),
		LogLevel:      env.String("LOG_LEVEL", "info"),
	}
	gc, err := ops.GCFromEnv(env)
	if err != nil {
		return s, err
	}
	s.GC = gc
	if err := env.Err(); err != nil {
		return s, err
	}
	var errs []error
	errs = append(errs, s.Worker.Validate(), s.Stream.Validate(), s.Ops.Validate())
	if s.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("WORKER_CONCURRENCY %d: 1 to 64", s.Concurrency))
	}
	return s, errors.Join(errs...)
}

// Run consumes until ctx ends, serving /healthz, /readyz and /metrics.
func Run(ctx context.Context, s Settings, log *zap.Logger, handlers ...Handler) error {
	s.GC.Apply()
	pool, err := store.OpenService(ctx, s.DatabaseURL, int32(s.Concurrency+4))
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, js, err := stream.Connect(s.Stream, "linepipe-worker", log)
	if err != nil {
		return err
	}
	defer func() { _ = nc.Drain() }()

	reg := ops.NewRegistry()
	w := New(s.Worker, s.Stream, js, pool, NewMetrics(reg), log, handlers...)
	mux := http.NewServeMux()
	ops.Mount(mux, readiness(pool, nc), reg)
	srv := ops.NewServer(s.Server, mux, log)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	// Bind before consuming: a worker without its health port is one
	// nobody can see, so a taken port stops it here.
	served, err := ops.Start(sctx, srv, s.Server, s.ShutdownGrace)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	w.startOps(sctx, &wg, s.Ops)
	for i := 0; i < s.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.Run(sctx)
		}()
	}
	var srvErr error
	select {
	case <-sctx.Done():
		srvErr = <-served
	case srvErr = <-served: // the ops server failed: stop rather than run unseen
		if srvErr == nil {
			srvErr = errors.New("ops server stopped")
		}
	}
	stop()
	wg.Wait()
	return srvErr
}

func readiness(pool *pgxpool.Pool, nc *nats.Conn) ops.ReadyFunc {
	var schema store.SchemaCheck
	return func(ctx context.Context) error {
		if !nc.IsConnected() {
			return ops.NotReady("nats", errors.New("disconnected"))
		}
		if err := pool.Ping(ctx); err != nil {
			return ops.NotReady("database", err)
		}
		if err := schema.Ready(ctx, pool); err != nil {
			return ops.NotReady("schema", err)
		}
		return nil
	}
}

// LoginUser is a service's database login, created by `worker migrate`
// as a member of the service's group role.
type LoginUser struct {
	Name     string
	Password string
	Role     string
}

// LoginUsersFromEnv reads the passwords `worker migrate` gives the
// services' login users: INGEST_DB_PASSWORD, WORKER_DB_PASSWORD and
// SENDER_DB_PASSWORD (or their _FILE forms). A user whose password is
// unset is not created.
func LoginUsersFromEnv(env *config.Env) ([]LoginUser, error) {
	var users []LoginUser
	for _, u := range []struct{ prefix, name, role string }{
		{"INGEST", "linepipe_ingest_user", store.RoleIngest},
		{"WORKER", "linepipe_worker_user", store.RoleWorker},
		{"SENDER", "linepipe_sender_user", store.RoleSender},
	} {
		if pw := env.String(u.prefix+"_DB_PASSWORD", ""); pw != "" {
			users = append(users, LoginUser{Name: u.name, Password: pw, Role: u.role})
		}
	}
	return users, env.Err()
}

// MigrateConnectWait is how long `worker migrate` waits for Postgres to
// accept connections. A migrate step started with the database (a
// compose up on a fresh volume, a Kubernetes Job beside a new Postgres)
// may run before Postgres listens; it waits rather than failing the
// deployment. Only an unreachable server, or one still starting up, is
// waited for: any other refusal (a wrong password or database) fails at
// once.
const MigrateConnectWait = time.Minute

// Migrate applies the embedded migrations to databaseURL, then creates
// (or updates the password of) each login user.
func Migrate(ctx context.Context, databaseURL string, log *zap.Logger, users ...LoginUser) error {
	pool, err := store.Open(ctx, databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := awaitReachable(ctx, pool, MigrateConnectWait, log); err != nil {
		return err
	}
	applied, err := store.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	log.Info("migrations applied", zap.Strings("versions", applied), zap.String("schema", store.LatestMigration()))
	for _, u := range users {
		if err := store.EnsureLoginUser(ctx, pool, u.Name, u.Password, u.Role); err != nil {
			return err
		}
		log.Info("login user ready", zap.String("user", u.Name), zap.String("role", u.Role))
	}
	return nil
}

// MigrationStatus writes the applied and pending migrations of
// databaseURL to w (`worker migrate status`).
func MigrationStatus(ctx context.Context, databaseURL string, w io.Writer) error {
	pool, err := store.Open(ctx, databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	states, err := store.MigrationStatus(ctx, pool)
	if err != nil {
		return err
	}
	return store.WriteMigrationStatus(w, states)
}

// awaitReachable pings pool until it answers, for at most wait while the
// server cannot be reached at all (nothing listening yet, its name not
// yet resolvable). Any other error is returned at once.
func awaitReachable(ctx context.Context, pool *pgxpool.Pool, wait time.Duration, log *zap.Logger) error {
	deadline := time.Now().Add(wait)
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		err := pool.Ping(ctx)
		if err == nil || !unreachable(err) || time.Now().Add(pause).After(deadline) {
			return err
		}
		log.Info("waiting for Postgres to accept connections", zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// unreachable is an error of dialing (no server answered at all), or a
// server still starting up (57P03, cannot_connect_now).
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var pg *pgconn.PgError
	return errors.As(err, &op) || errors.As(err, &dns) || (errors.As(err, &pg) && pg.Code == "57P03")
}
