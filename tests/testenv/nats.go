package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

var (
	natsOnce sync.Once
	natsURL  string
)

// NATSURL is the JetStream server tests use: TEST_NATS_URL, a container,
// or an embedded server shared by the test binary.
func NATSURL(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() {
		if u := os.Getenv("TEST_NATS_URL"); u != "" {
			natsURL = u
			return
		}
		if u, err := startNATSContainer(); err == nil {
			natsURL = u
			return
		}
		s, err := startEmbedded("", -1)
		if err != nil {
			panic(fmt.Sprintf("testenv: starting embedded nats-server: %v", err))
		}
		natsURL = s.ClientURL()
	})
	return natsURL
}

func startNATSContainer() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "nats:2.10-alpine",
			Cmd:          []string{"-js"},
			ExposedPorts: []string{"4222/tcp"},
			WaitingFor:   wait.ForLog("Server is ready").WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return "", err
	}
	host, err := c.Host(ctx)
	if err != nil {
		return "", err
	}
	port, err := c.MappedPort(ctx, "4222/tcp")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("nats://%s:%s", host, port.Port()), nil
}

// Names is a stream name and subject prefix no other test uses.
type Names struct {
	Stream        string
	SubjectPrefix string
}

// NewNames returns fresh stream and subject names for one test.
func NewNames() Names {
	id := strings.ToUpper(strings.ReplaceAll(uuid.NewString(), "-", "")[:12])
	return Names{Stream: "T_" + id, SubjectPrefix: "t" + strings.ToLower(id)}
}

// EmbeddedNATS is a JetStream server a test owns, for tests that stop and
// restart NATS. A restart keeps its port and store directory, as a real
// server restarting would.
type EmbeddedNATS struct {
	t    testing.TB
	dir  string
	port int
	mu   sync.Mutex
	srv  *server.Server
}

// NewEmbeddedNATS starts a JetStream server on a free loopback port with a
// store directory that lives as long as the test.
func NewEmbeddedNATS(t testing.TB) *EmbeddedNATS {
	t.Helper()
	dir := t.TempDir()
	s, err := startEmbedded(dir, -1)
	if err != nil {
		t.Fatalf("starting embedded nats-server: %v", err)
	}
	e := &EmbeddedNATS{t: t, dir: dir, port: s.Addr().(*net.TCPAddr).Port, srv: s}
	t.Cleanup(e.Stop)
	return e
}

// URL is the server's client URL; it stays the same across restarts.
func (e *EmbeddedNATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.port) }

// Stop shuts the server down; clients see their connection drop.
func (e *EmbeddedNATS) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

// Start brings a stopped server back on the same port and store.
func (e *EmbeddedNATS) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return
	}
	s, err := startEmbedded(e.dir, e.port)
	if err != nil {
		e.t.Fatalf("restarting embedded nats-server: %v", err)
	}
	e.srv = s
}

func startEmbedded(dir string, port int) (*server.Server, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "linepipe-nats-"); err != nil {
			return nil, err
		}
	}
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
		NoLog:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server not ready on port %d", port)
	}
	return s, nil
}
