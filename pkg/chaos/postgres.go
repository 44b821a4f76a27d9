package chaos

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/linepipe/linepipe/pkg/bench"
)

// ResolvePGBin returns the directory holding initdb and postgres: dir if
// given, else the newest /usr/lib/postgresql/<version>/bin (Debian and
// Ubuntu, including CI runners), else wherever initdb is on PATH.
func ResolvePGBin(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	best, bestVer := "", -1
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	for _, m := range matches {
		bin := filepath.Dir(m)
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(bin))); err == nil && v > bestVer {
			best, bestVer = bin, v
		}
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found (initdb); install postgresql or pass -pg-bin")
}

// Postgres is a private PostgreSQL server in its own data directory and
// port, so the run can crash and restart it without touching anyone
// else's database.
type Postgres struct {
	*bench.Proc
	Port int
	Dir  string
}

// URL is the connection string for the server's postgres database.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// UserURL is the connection string for user (a service's login user).
func (p *Postgres) UserURL(user, password string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", url.PathEscape(user), url.QueryEscape(password), p.Port)
}

// pgCredential is the user Postgres runs as: the current one unless that
// is root, which initdb and postgres refuse.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user for the private server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// NewPostgres initialises a cluster under dir/pg (trust authentication,
// loopback only) and prepares the server process; Start runs it.
func NewPostgres(ctx context.Context, binDir, dir string) (*Postgres, error) {
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "pg")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, d := range []string{dir, data} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	addr, err := bench.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, portS, _ := cutLast(addr, ":")
	port, _ := strconv.Atoi(portS)
	p := &Postgres{Port: port, Dir: data}
	p.Proc = &bench.Proc{Name: "postgres", Path: filepath.Join(binDir, "postgres"), Credential: cred,
		LogPath: filepath.Join(dir, "postgres.log"),
		Args: []string{"-D", data, "-p", portS, "-c", "listen_addresses=127.0.0.1", "-k", data,
			"-c", "max_connections=200", "-c", "fsync=on", "-c", "synchronous_commit=on"}}
	return p, nil
}

// WaitReady waits until the server accepts queries.
func (p *Postgres) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, p.URL())
		if err == nil {
			err = conn.Ping(cctx)
			_ = conn.Close(cctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("private postgres not ready after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return fmt.Errorf("private postgres exited (log: %s)", p.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Crash stops the server the way a power cut looks to clients: an
// immediate shutdown (SIGQUIT) with no checkpoint, so the restart must
// recover from the WAL.
func (p *Postgres) Crash() error { return p.Signal(syscall.SIGQUIT, 10*time.Second) }

func cutLast(s, sep string) (string, string, bool) {
	for i := len(s) - len(sep); i >= 0; i-- {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}
