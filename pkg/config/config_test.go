package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnvParsesAndDefaults(t *testing.T) {
	t.Parallel()
	e := FromMap(map[string]string{"N": "7", "D": "1500ms", "B": "true", "S": " x ", "SZ": "2MiB", "F": "0.25", "EMPTY": "  "})
	if e.Int("N", 1) != 7 || e.Duration("D", 0) != 1500*time.Millisecond || !e.Bool("B", false) ||
		e.String("S", "") != "x" || e.Bytes("SZ", 0) != 2<<20 || e.Float("F", 0) != 0.25 {
		t.Fatal("values not parsed")
	}
	if e.String("EMPTY", "def") != "def" || e.Int("MISSING", 3) != 3 {
		t.Fatal("defaults not applied to empty or missing variables")
	}
	if e.Err() != nil {
		t.Fatal(e.Err())
	}
}

func TestEnvReportsEveryBadValue(t *testing.T) {
	t.Parallel()
	e := FromMap(map[string]string{"N": "seven", "D": "10", "B": "maybe", "SZ": "-1"})
	e.Int("N", 0)
	e.Duration("D", 0)
	e.Bool("B", false)
	e.Bytes("SZ", 0)
	err := e.Err()
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, k := range []string{"N=", "D=", "B=", "SZ"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

// X_FILE gives X from a file, trimmed; giving both, or a file that cannot
// be read, is an error that names the variable and never the content.
func TestFileVariables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("  s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := FromMap(map[string]string{"LINE_CHANNEL_SECRET_FILE": secret, "N_FILE": secret})
	if got := e.String("LINE_CHANNEL_SECRET", ""); got != "s3cret-value" {
		t.Fatalf("read %q from the file", got)
	}
	e.Int("N", 0)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "N=") {
		t.Fatalf("a bad value from a file was accepted: %v", err)
	}

	both := FromMap(map[string]string{"DATABASE_URL": "postgres://x", "DATABASE_URL_FILE": secret})
	both.String("DATABASE_URL", "")
	if err := both.Err(); err == nil || !strings.Contains(err.Error(), "DATABASE_URL_FILE") {
		t.Fatalf("both X and X_FILE accepted: %v", err)
	}
	missing := FromMap(map[string]string{"LINE_CHANNEL_ACCESS_TOKEN_FILE": filepath.Join(dir, "absent")})
	if got := missing.String("LINE_CHANNEL_ACCESS_TOKEN", "def"); got != "def" || missing.Err() == nil {
		t.Fatalf("unreadable file: %q %v", got, missing.Err())
	}
}

// Describe records every variable read, once, in order, with its default
// written the way an operator would set it.
func TestDescribeRecordsReads(t *testing.T) {
	t.Parallel()
	got := Describe(func(e *Env) {
		e.String("A", "x")
		e.Duration("B", time.Minute)
		e.Bytes("C", 1<<20)
		e.Bool("D", true)
		e.String("A", "again")
		e.Duration("E", 90*time.Minute)
	})
	want := []Setting{{"A", "string", "x"}, {"B", "duration", "1m"}, {"C", "size", "1MiB"}, {"D", "boolean", "true"}, {"E", "duration", "1h30m"}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
