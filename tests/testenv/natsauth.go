package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/linepipe/linepipe/pkg/natsconf"
)

// AuthNATS is a private JetStream server running deploy/nats/nats.conf,
// rendered for one test's stream and prefix: the users and permissions a
// deployment has, with sync_interval: always. The shared test server
// (TEST_NATS_URL) has no users, so tests of what each service may do
// start one of these.
type AuthNATS struct {
	URL   string
	Users natsconf.Users
	srv   *server.Server
}

// NewAuthNATS starts the server for names (the consumer is the worker's
// default) and stops it when the test ends.
func NewAuthNATS(t testing.TB, names Names) *AuthNATS {
	t.Helper()
	dir := t.TempDir()
	users := natsconf.NewUsers()
	conf := natsconf.Render(natsconf.Options{Stream: names.Stream, SubjectPrefix: names.SubjectPrefix,
		StoreDir: filepath.Join(dir, "js"), Users: users})
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats.conf does not parse: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("starting nats-server with nats.conf: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server with nats.conf not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return &AuthNATS{URL: s.ClientURL(), Users: users, srv: s}
}

// Env is the NATS_URL, NATS_USER and NATS_PASSWORD a service connects with.
func (a *AuthNATS) Env(c natsconf.Credentials) []string {
	return []string{"NATS_URL=" + a.URL, "NATS_USER=" + c.User, "NATS_PASSWORD=" + c.Password}
}
