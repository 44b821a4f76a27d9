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

func TestSecretFromValueOrFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := FromMap(map[string]string{"A": "from-env", "B_FILE": path, "C": "x", "C_FILE": path, "D_FILE": path + ".missing"})
	if got := e.Secret("A"); got != "from-env" {
		t.Errorf("A = %q", got)
	}
	if got := e.Secret("B"); got != "from-file" {
		t.Errorf("B = %q", got)
	}
	if e.Err() != nil {
		t.Fatalf("unexpected error %v", e.Err())
	}
	e.Secret("C")
	e.Secret("D")
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "C and C_FILE") || !strings.Contains(err.Error(), "D_FILE") {
		t.Errorf("both set and a missing file must be errors: %v", err)
	}
}
