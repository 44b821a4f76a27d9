package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/tests/testenv"
)

// buildOnce compiles the commands once per test binary.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "linepipe-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/ingest", "./cmd/worker", "./cmd/sender", "./cmd/linefake", "./cmd/sendwebhook")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a service running as a real process, its output in a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	p.cmd = exec.Command(filepath.Join(binaries(t), args[0]), args[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	w := lockedWriter{p.mu, p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and requires a clean exit: graceful shutdown.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM", p.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The quick start, as real processes in make up's topology: migrate,
// ingest, two workers with the echo bot, a sender and the emulator. A
// signed webhook becomes rows and exactly one echo reply, an unsend
// erases its text, and every service stops cleanly on SIGTERM without
// having logged the text, the secret or the token.
func TestProcessesQuickStart(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	const channel, secret = "1234567890", "5ce2a6c7e7b44c21bd1a4c8f2e1d9b7a"
	// NATS as deployed: deploy/nats/nats.conf's users and permissions.
	nsrv := testenv.NewAuthNATS(t, names)
	common := []string{"NATS_STREAM=" + names.Stream,
		"NATS_SUBJECT_PREFIX=" + names.SubjectPrefix, "LINE_CHANNEL_ID=" + channel, "LINE_CHANNEL_SECRET=" + secret,
		"LOG_LEVEL=debug"}

	mig := exec.Command(filepath.Join(binaries(t), "worker"), "migrate")
	mig.Env = append(os.Environ(), append(common, "DATABASE_URL="+db.URL)...)
	if out, err := mig.CombinedOutput(); err != nil || !strings.Contains(string(out), "migrations applied") {
		t.Fatalf("worker migrate: %v\n%s", err, out)
	}

	// The development topology of make up: the emulator in place of
	// LINE, the echo bot on, a static token the emulator knows.
	const token = "dev-static-token"
	ingestAddr, ingestAdmin, w1, w2, sAddr, fakeAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	fake := start(t, "linefake", []string{"LINEFAKE_ADDR=" + fakeAddr, "LINEFAKE_CHANNELS=" + channel + ":" + secret + ":" + token}, "linefake")
	// Each service connects as a login user in its own role, and to NATS
	// as its own user, as deployed.
	dbAs := func(role string) string { return "DATABASE_URL=" + db.RoleURL(t, role) }
	ing := start(t, "ingest", append(append(common, nsrv.Env(nsrv.Users.Ingest)...), dbAs(store.RoleIngest), "INGEST_ADDR="+ingestAddr, "INGEST_ADMIN_ADDR="+ingestAdmin), "ingest")
	wk1 := start(t, "worker-1", append(append(common, nsrv.Env(nsrv.Users.Worker)...), dbAs(store.RoleWorker), "WORKER_ADDR="+w1, "ECHO_BOT=true"), "worker")
	wk2 := start(t, "worker-2", append(append(common, nsrv.Env(nsrv.Users.Worker)...), dbAs(store.RoleWorker), "WORKER_ADDR="+w2, "ECHO_BOT=true"), "worker")
	snd := start(t, "sender", append(append(common, nsrv.Env(nsrv.Users.Sender)...), dbAs(store.RoleSender), "SENDER_ADDR="+sAddr, "LINE_API_BASE_URL=http://"+fakeAddr,
		"LINE_DATA_API_BASE_URL="+linefake.DataURL("http://"+fakeAddr),
		"LINE_CHANNEL_ACCESS_TOKEN="+token), "sender")
	for _, a := range []string{ingestAdmin, w1, w2, sAddr, fakeAddr} {
		waitReady(t, a)
	}
	p := &pipeline{t: t, db: db}

	text := secretText()
	send := func(args ...string) map[string]any {
		cmd := exec.Command(filepath.Join(binaries(t), "sendwebhook"),
			append([]string{"-url", "http://" + ingestAddr + "/webhook/" + channel, "-channel", channel, "-secret", secret,
				"-emulator", "http://" + fakeAddr}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sendwebhook %v: %v %s", args, err, out)
		}
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil || res["status"] != float64(200) {
			t.Fatalf("sendwebhook answered %s", out)
		}
		return res
	}
	res := send("-text", text)
	msgID := res["messageId"].(string)
	p.waitCount(1, `SELECT count(*) FROM messages WHERE message_id = $1 AND text = $2`, msgID, text)
	p.waitCount(1, `SELECT count(*) FROM webhook_log WHERE channel_id = $1`, channel)
	// The echo bot's reply reaches the emulator exactly once.
	p.waitCount(1, `SELECT count(*) FROM outbox WHERE status = 'delivered' AND source_message_id = $1`, msgID)
	resp, err := http.Get("http://" + fakeAddr + "/linefake/deliveries")
	if err != nil {
		t.Fatal(err)
	}
	var deliveries bytes.Buffer
	_, _ = deliveries.ReadFrom(resp.Body)
	resp.Body.Close()
	if n := strings.Count(deliveries.String(), `"endpoint":"reply"`); n != 1 {
		t.Fatalf("%d replies at the emulator, want 1: %s", n, deliveries.String())
	}
	if n := p.count(`SELECT count(*) FROM api_log WHERE endpoint LIKE '%reply%' AND status = 200`); n != 1 {
		t.Errorf("api_log holds %d successful reply calls, want 1", n)
	}

	send("-unsend", msgID)
	p.waitCount(1, `SELECT count(*) FROM unsent_messages WHERE message_id = $1`, msgID)
	p.waitCount(0, `SELECT count(*) FROM messages`)
	p.waitCount(0, `SELECT count(*) FROM events WHERE raw::text LIKE $1`, "%"+text+"%")

	// The operator endpoints are not on the public webhook port.
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		resp, err := http.Get("http://" + ingestAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the webhook port: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err = http.Get("http://" + ingestAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), `linepipe_ingest_webhooks_total{code="200"} 2`) {
		t.Errorf("ingest metrics lack the two accepted webhooks")
	}
	checkWorkerMetrics(t, w1, w2)

	for _, s := range []*proc{ing, wk1, wk2, snd, fake} {
		s.stop(t)
	}
	for _, s := range []*proc{ing, wk1, wk2, snd, fake} {
		out := s.output()
		if strings.Contains(out, text) || strings.Contains(out, secret) || strings.Contains(out, token) {
			t.Errorf("%s logged message text, the channel secret or the access token", s.name)
		}
	}
	if !strings.Contains(ing.output(), `"remote_ip":"127.0.0.1"`) || !strings.Contains(ing.output(), `"status":200`) {
		t.Errorf("ingest did not log webhooks as LINE recommends:\n%s", ing.output())
	}
}

// checkWorkerMetrics: the workers export what operators alert on. The two
// events stored (a message and its unsend) were timed from ingest's
// receipt, and one replica ran the retention janitor.
// checkWorkerMetrics waits (a worker observes its metrics just after its
// commit, which the test may already have seen) until the workers have
// timed both stored events and one has run retention.
func checkWorkerMetrics(t *testing.T, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		delays, janitors, missing := readWorkerMetrics(t, addrs...)
		if delays == 2 && janitors >= 1 && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, m := range missing {
				t.Error(m)
			}
			t.Errorf("workers timed %v stored events (want 2); %v ran retention (want at least 1)", delays, janitors)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readWorkerMetrics(t *testing.T, addrs ...string) (delays, janitors float64, missing []string) {
	t.Helper()
	for _, a := range addrs {
		resp, err := http.Get("http://" + a + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`linepipe_outbox_rows{endpoint="reply",status="pending"}`,
			"linepipe_worker_consumer_pending_messages", `linepipe_worker_retention_deleted_total{table="events"}`,
			`linepipe_worker_dead_letter_replays_total{result="stored"}`} {
			if !strings.Contains(body.String(), want) {
				missing = append(missing, fmt.Sprintf("worker %s metrics lack %s", a, want))
			}
		}
		for _, line := range strings.Split(body.String(), "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, "linepipe_worker_event_store_delay_seconds_count %g", &v); err == nil {
				delays += v
			}
			if _, err := fmt.Sscanf(line, "linepipe_worker_retention_last_run_timestamp_seconds %g", &v); err == nil && v > 0 {
				janitors++
			}
		}
	}
	return delays, janitors, missing
}
