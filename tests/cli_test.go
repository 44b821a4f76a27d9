package tests

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/tests/testenv"
)

// runBin runs a binary to completion (at most 20s) and returns its exit
// code, stdout and stderr. A binary still running after 20s has started
// serving, which is a failure for every case here.
func runBin(t *testing.T, env []string, name string, args ...string) (int, string, string) {
	t.Helper()
	bin := filepath.Join(binaries(t), name) // builds first: not part of the 20s
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v still running after 20s:\n%s%s", name, args, out.String(), errOut.String())
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// Every service answers --help, --version and a bad flag without
// starting: with its port held by someone else, a service that tried to
// serve would fail, and one that served would not exit.
func TestBinariesDescribeThemselves(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	env := []string{"INGEST_ADDR=" + addr, "WORKER_ADDR=" + addr, "SENDER_ADDR=" + addr, "LINEFAKE_ADDR=" + addr,
		"DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "NATS_URL=nats://127.0.0.1:1"}
	for name, vars := range map[string][]string{
		"ingest":   {"INGEST_ADDR", "TLS_CERT_FILE", "NATS_URL", "LINE_CHANNEL_SECRET"},
		"worker":   {"WORKER_ADDR", "WORKER_ACK_WAIT", "DATABASE_URL"},
		"sender":   {"SENDER_ADDR", "SENDER_LEASE", "LINE_CHANNEL_ACCESS_TOKEN"},
		"linefake": {"LINEFAKE_ADDR", "LINEFAKE_FAIL_RATE"},
	} {
		for _, h := range []string{"-h", "--help"} {
			code, out, _ := runBin(t, env, name, h)
			if code != 0 || !strings.HasPrefix(out, name+": ") {
				t.Errorf("%s %s: exit %d, output %q", name, h, code, out)
			}
			for _, v := range vars {
				if !strings.Contains(out, "  "+v+"  [") {
					t.Errorf("%s %s does not list %s", name, h, v)
				}
			}
		}
		if code, out, _ := runBin(t, env, name, "--version"); code != 0 || !strings.HasPrefix(out, name+" ") || !strings.Contains(out, "commit ") {
			t.Errorf("%s --version: exit %d, %q", name, code, out)
		}
		if code, _, errOut := runBin(t, env, name, "--bogus"); code != 2 || !strings.Contains(errOut, "unknown flag --bogus") || !strings.Contains(errOut, "usage:") {
			t.Errorf("%s --bogus: exit %d, %q", name, code, errOut)
		}
		if code, _, errOut := runBin(t, env, name, "bogus"); code != 2 || !strings.Contains(errOut, "usage:") {
			t.Errorf("%s bogus: exit %d, %q", name, code, errOut)
		}
	}
}

// A worker or sender whose health port is taken stops at start with a
// message naming the address, rather than running on unseen.
func TestTakenPortStopsServiceAtStart(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	common := []string{"DATABASE_URL=" + db.URL, "NATS_URL=" + testenv.NATSURL(t), "NATS_STREAM=" + names.Stream,
		"NATS_SUBJECT_PREFIX=" + names.SubjectPrefix}
	for name, key := range map[string]string{"worker": "WORKER_ADDR", "sender": "SENDER_ADDR", "linefake": "LINEFAKE_ADDR"} {
		code, out, errOut := runBin(t, append(common, key+"="+addr), name)
		all := out + errOut
		if code == 0 || !strings.Contains(all, "cannot listen on") || !strings.Contains(all, addr) || !strings.Contains(all, "address already in use") {
			t.Errorf("%s on a taken port: exit %d\n%s", name, code, all)
		}
	}
}

// Against a database nobody has migrated, the sender runs but is not
// ready, and says only which dependency is missing.
func TestReadyzWaitsForSchema(t *testing.T) {
	t.Parallel()
	db := testenv.NewEmptyDB(t)
	addr := freeAddr(t)
	snd := start(t, "sender", []string{"DATABASE_URL=" + db.URL, "SENDER_ADDR=" + addr}, "sender")
	var code int
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || body != "not ready: schema\n" {
		t.Fatalf("/readyz on an unmigrated database: %d %q", code, body)
	}
	mig := exec.Command(filepath.Join(binaries(t), "worker"), "migrate")
	mig.Env = append(os.Environ(), "DATABASE_URL="+db.URL)
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("worker migrate: %v\n%s", err, out)
	}
	waitReady(t, addr)
	code, out, _ := runBin(t, []string{"DATABASE_URL=" + db.URL}, "worker", "migrate", "status")
	if code != 0 || !strings.Contains(out, "0001_inbound") || !strings.Contains(out, "schema up to date") {
		t.Fatalf("worker migrate status: exit %d\n%s", code, out)
	}
	snd.stop(t)
}

// The linker flags the Makefile and the Dockerfile pass reach --version
// (a renamed variable would silently drop them).
func TestVersionStampedByLinker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const pkg = "github.com/linepipe/linepipe/pkg/buildinfo"
	cmd := exec.Command("go", "build", "-ldflags", "-X "+pkg+".version=v9.8.7 -X "+pkg+".commit=feedc0de", "-o", dir+"/", "./cmd/linefake")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(dir, "linefake"), "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "linefake v9.8.7 (commit feedc0de, go") {
		t.Fatalf("--version of a stamped build: %q %v", out, err)
	}
}
