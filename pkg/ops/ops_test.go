package ops

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Shutdown lets a request that is in flight finish before Serve returns.
func TestServeFinishesInFlightRequestsOnShutdown(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "finished")
	})
	cfg := ServerConfig{Addr: freeAddr(t)}
	srv := NewServer(cfg, h, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, srv, cfg, 5*time.Second) }()

	var resp *http.Response
	var err error
	got := make(chan struct{})
	go func() {
		defer close(got)
		for i := 0; i < 100; i++ {
			resp, err = http.Get("http://" + cfg.Addr + "/")
			if err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-started
	cancel() // SIGTERM arrives while the request is being handled
	<-got
	if err != nil {
		t.Fatalf("in-flight request failed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "finished" {
		t.Fatalf("in-flight request got %q", body)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// With a certificate the server speaks TLS 1.2 or newer, never older.
func TestServeTLSMinimumVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	cfg := ServerConfig{Addr: freeAddr(t), CertFile: certFile, KeyFile: keyFile}
	srv := NewServer(cfg, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Serve(ctx, srv, cfg, time.Second) }()

	get := func(max uint16) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, MaxVersion: max, MinVersion: tls.VersionTLS10}}} //nolint:gosec // self-signed test cert
		var err error
		for i := 0; i < 100; i++ {
			var resp *http.Response
			resp, err = c.Get("https://" + cfg.Addr + "/")
			if err == nil {
				resp.Body.Close()
				return nil
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) || opErr.Op != "dial" {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return err
	}
	if err := get(tls.VersionTLS12); err != nil {
		t.Fatalf("TLS 1.2 refused: %v", err)
	}
	if err := get(tls.VersionTLS11); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestMountReadiness(t *testing.T) {
	t.Parallel()
	ready := errors.New("nats disconnected")
	mux := http.NewServeMux()
	Mount(mux, func(context.Context) error { return ready }, NewRegistry())
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/metrics": 200} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
	ready = nil
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 200 {
		t.Errorf("/readyz when ready: %d", w.Code)
	}
}

// A taken port stops Start at once with a message naming the address,
// instead of the service running on without its endpoints.
func TestStartFailsFastOnTakenPort(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := ServerConfig{Addr: taken.Addr().String()}
	done, err := Start(context.Background(), NewServer(cfg, http.NotFoundHandler(), zap.NewNop()), cfg, time.Second)
	if err == nil || done != nil {
		t.Fatal("Start succeeded on a taken port")
	}
	if !strings.Contains(err.Error(), cfg.Addr) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("unclear bind error: %v", err)
	}
	// A missing certificate is a start-up error too.
	cfg = ServerConfig{Addr: freeAddr(t), CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
	if _, err := Start(context.Background(), NewServer(cfg, http.NotFoundHandler(), zap.NewNop()), cfg, time.Second); err == nil {
		t.Fatal("Start succeeded without its certificate")
	}
}

// /readyz names the component that is not ready, never the error's text
// (which may carry hosts, users or SQL).
func TestReadyzHidesCause(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{NotReady("database", errors.New(`dial tcp 10.0.0.7:5432: password authentication failed for user "linepipe"`)), "not ready: database\n"},
		{fmt.Errorf("wrapped: %w", NotReady("schema", errors.New(`relation "outbox" does not exist`))), "not ready: schema\n"},
		{errors.New("secret detail"), "not ready\n"},
	} {
		mux := http.NewServeMux()
		Mount(mux, func(context.Context) error { return c.err }, NewRegistry())
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		if w.Code != 503 || w.Body.String() != c.want {
			t.Errorf("%v: %d %q, want 503 %q", c.err, w.Code, w.Body.String(), c.want)
		}
	}
}

// Every service's /metrics carries linepipe_build_info.
func TestBuildInfoMetric(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	Mount(mux, func(context.Context) error { return nil }, NewRegistry())
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	var line string
	for _, l := range strings.Split(w.Body.String(), "\n") {
		if strings.HasPrefix(l, "linepipe_build_info{") {
			line = l
		}
	}
	if !strings.Contains(line, `commit="`) || !strings.Contains(line, `goversion="go`) || !strings.Contains(line, `version="`) || !strings.HasSuffix(line, "} 1") {
		t.Fatalf("linepipe_build_info missing or malformed: %q", line)
	}
}

// lockedBuffer is a WriteSyncer tests can read while the logger writes.
type lockedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	syncs int // fsyncs asked of the file underneath
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.syncs++
	return nil
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Fields(b.buf.String()) // one JSON object per line, with no spaces
}

// Info lines wait in the buffer (one write per line was a large share of
// ingest's and the sender's CPU); a warning writes itself and every line
// before it at once, in order; Sync writes the rest.
func TestLoggerBuffersInfoAndFlushesWarnings(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	log, stop := newLogger(zapcore.InfoLevel, "svc", &out)
	defer func() { _ = stop() }()
	log.Info("first")
	if got := out.lines(); len(got) != 0 {
		t.Fatalf("an info line was written at once: %q", got)
	}
	log.Warn("second")
	got := out.lines()
	if len(got) != 2 || !strings.Contains(got[0], `"msg":"first"`) || !strings.Contains(got[1], `"msg":"second"`) ||
		!strings.Contains(got[1], `"service":"svc"`) {
		t.Fatalf("after a warning: %q, want first then second", got)
	}
	log.Info("third")
	if err := log.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := out.lines(); len(got) != 3 || !strings.Contains(got[2], `"msg":"third"`) {
		t.Fatalf("after Sync: %q", got)
	}
	// Flushing hands lines to the kernel; it never fsyncs the log file,
	// which would compete with Postgres and NATS for the disk.
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.syncs != 0 {
		t.Fatalf("the log file was fsynced %d times", out.syncs)
	}
}

// A configured Listener wraps what Start listens on: every connection
// the server accepts comes through it.
func TestStartWrapsItsListener(t *testing.T) {
	t.Parallel()
	var accepted atomic.Int32
	cfg := ServerConfig{Addr: freeAddr(t), Listener: func(l net.Listener) net.Listener { return countingListener{l, &accepted} }}
	ctx, cancel := context.WithCancel(context.Background())
	done, err := Start(ctx, NewServer(cfg, http.NotFoundHandler(), zap.NewNop()), cfg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + cfg.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if n := accepted.Load(); n != 1 {
		t.Fatalf("the wrapper accepted %d connections, want the request's 1", n)
	}
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
