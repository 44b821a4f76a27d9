package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
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
