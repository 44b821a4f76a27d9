package mutate

import (
	"os"
	"strings"
	"testing"
)

func TestParseAndApply(t *testing.T) {
	t.Parallel()
	list := "# c\n=== one\nguarantee: g\nsource: s\ntests: ./a ./b\nrun: TestX\nflux: yes\nfile: f.go\n<<<\n\tx := 1\n\ty := 2\n===\n\tx := 2\n>>>\n"
	ms, err := Parse([]byte(list))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "one" || !ms[0].Flux || len(ms[0].Packages) != 2 || ms[0].Run != "TestX" {
		t.Fatalf("parsed %+v", ms)
	}
	e := ms[0].Edits[0]
	if e.File != "f.go" || e.Original != "\tx := 1\n\ty := 2" || e.Replacement != "\tx := 2" {
		t.Fatalf("edit %+v", e)
	}
	out, err := e.Apply([]byte("a\n\tx := 1\n\ty := 2\nb\n"))
	if err != nil || string(out) != "a\n\tx := 2\nb\n" {
		t.Fatalf("apply: %q %v", out, err)
	}
	if _, err := e.Apply([]byte("nothing")); err == nil || !strings.Contains(err.Error(), "re-anchor") {
		t.Fatalf("missing snippet: %v", err)
	}
	if _, err := e.Apply([]byte("\tx := 1\n\ty := 2\n\tx := 1\n\ty := 2")); err == nil {
		t.Fatal("a snippet occurring twice was applied")
	}
}

func TestParseRefusesIncompleteEntries(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"guarantee: g\n",
		"=== a\ntests: ./x\nfile: f\n<<<\nx\n===\ny\n>>>\n",  // no guarantee
		"=== a\nguarantee: g\ntests: ./x\nfile: f\n<<<\nx\n", // unterminated
		"=== a\nguarantee: g\ntests: ./x\n<<<\nx\n===\ny\n>>>\n",
		"=== a\nguarantee: g\nwhat: ever\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestMutationListParses keeps the project's list readable by the tool.
func TestMutationListParses(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.Name] {
			t.Errorf("two entries named %s", m.Name)
		}
		seen[m.Name] = true
	}
}
