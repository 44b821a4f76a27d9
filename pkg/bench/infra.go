package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/linepipe/linepipe/pkg/natsconf"
	"github.com/linepipe/linepipe/pkg/store"
)

// DefaultNATSServer is where Debian's nats-server package puts the binary.
const DefaultNATSServer = "/usr/sbin/nats-server"

// NATSNode is a private nats-server process with JetStream, so a run
// measures (or restarts) a server nobody else is using.
type NATSNode struct {
	*Proc
	ClientAddr  string
	MonitorAddr string
	ClusterAddr string
}

// URL is the node's client URL.
func (n *NATSNode) URL() string { return "nats://" + n.ClientAddr }

// NewNATSNode prepares (does not start) a JetStream node storing under
// dir/name. SetCluster joins it to a cluster before it starts.
func NewNATSNode(bin, dir, name string) (*NATSNode, error) {
	client, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	mon, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	n := &NATSNode{ClientAddr: client, MonitorAddr: mon}
	n.Proc = &Proc{Name: name, Path: bin, LogPath: filepath.Join(dir, name+".log"), Addr: mon}
	if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
		return nil, err
	}
	host, port := splitHostPort(client)
	_, mport := splitHostPort(mon)
	n.Args = []string{"-a", host, "-p", port, "-m", mport, "-js", "-sd", filepath.Join(dir, name), "-n", name}
	return n, nil
}

// UseConfig makes the node run deploy/nats/nats.conf rendered with o
// (users, permissions, sync policy); the command-line flags still choose
// its addresses and store directory.
func (n *NATSNode) UseConfig(dir string, o natsconf.Options) error {
	path := filepath.Join(dir, n.Name+".conf")
	if err := os.WriteFile(path, []byte(natsconf.Render(o)), 0o600); err != nil {
		return err
	}
	n.Args = append([]string{"-c", path}, n.Args...)
	return nil
}

// SetCluster makes the node part of a cluster listening on addr with the
// given route URLs.
func (n *NATSNode) SetCluster(name, addr string, routes []string) {
	n.ClusterAddr = addr
	n.Args = append(n.Args, "--cluster_name", name, "--cluster", "nats://"+addr, "--routes", strings.Join(routes, ","))
}

// WaitReady waits for the monitoring /healthz (JetStream included) to pass.
func (n *NATSNode) WaitReady(ctx context.Context, timeout time.Duration) error {
	return WaitHTTP(ctx, "http://"+n.MonitorAddr+"/healthz", timeout, n.Done())
}

func splitHostPort(a string) (string, string) {
	i := strings.LastIndex(a, ":")
	return a[:i], a[i+1:]
}

// Schema is a private, migrated Postgres schema: every table linepipe
// uses, invisible to anyone else on the same database.
type Schema struct {
	Name  string
	URL   string // base URL with search_path set, for subprocesses
	Pool  *pgxpool.Pool
	admin *pgxpool.Pool
}

// NewSchema creates and migrates a schema named prefix_<random> on base.
func NewSchema(ctx context.Context, base, prefix string, maxConns int32) (*Schema, error) {
	name := prefix + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redact(base), err)
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		admin.Close()
		return nil, fmt.Errorf("creating schema: %w", err)
	}
	u, err := WithSearchPath(base, name)
	if err == nil {
		u, err = withParam(u, "application_name", name)
	}
	if err != nil {
		admin.Close()
		return nil, err
	}
	pool, err := store.Open(ctx, u, maxConns)
	if err != nil {
		admin.Close()
		return nil, err
	}
	s := &Schema{Name: name, URL: u, Pool: pool, admin: admin}
	if _, err := store.Migrate(ctx, pool); err != nil {
		s.Drop(context.Background())
		return nil, fmt.Errorf("migrating %s: %w", name, err)
	}
	return s, nil
}

// Drop removes the schema and closes the pools.
func (s *Schema) Drop(ctx context.Context) error {
	s.Pool.Close()
	defer s.admin.Close()
	_, err := s.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+s.Name+" CASCADE")
	return err
}

// WithSearchPath returns base (URL form) with search_path set to schema.
func WithSearchPath(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parsing database url: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func withParam(base, key, value string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parsing database url: %w", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(database url)"
	}
	return p.Redacted()
}

// ResolveNATSServer returns the nats-server binary to run: path if given,
// else one built from the nats-server module linepipe already depends on,
// into binDir. The system's server is not used by default: runs use
// deploy/nats/nats.conf, whose sync_interval: always needs NATS 2.10 or
// newer, and distributions ship older ones.
func ResolveNATSServer(ctx context.Context, path, binDir string) (string, error) {
	if path != "" {
		return path, nil
	}
	if err := Build(ctx, binDir, "github.com/nats-io/nats-server/v2"); err != nil {
		return "", fmt.Errorf("building nats-server (set NATS_SERVER_BIN to use an installed one): %w", err)
	}
	return filepath.Join(binDir, "nats-server"), nil
}
