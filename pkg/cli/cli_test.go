package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linepipe/linepipe/pkg/config"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table")

// Every variable a service reads is documented, and every documented
// variable is read by some service: the parser is the single source.
func TestEveryVariableDocumented(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	for _, p := range Services {
		vars := p.Vars()
		if len(vars) < 5 {
			t.Fatalf("%s: only %d variables recorded", p.Name, len(vars))
		}
		for _, v := range vars {
			read[v.Key] = true
			if strings.TrimSpace(v.Doc.Meaning) == "" {
				t.Errorf("%s reads %s, which has no entry in config.Docs (pkg/config/docs.go)", p.Name, v.Key)
			}
		}
	}
	for k := range config.Docs {
		if !read[k] {
			t.Errorf("config.Docs documents %s, which no service reads", k)
		}
	}
}

// The README's table is exactly the generated one.
func TestREADMEConfigTable(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, TableBegin), strings.Index(s, TableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the configuration table markers %q … %q", TableBegin, TableEnd)
	}
	want := ConfigTable(Services)
	got := s[i+len(TableBegin)+1 : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i+len(TableBegin)+1]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's configuration table is stale: run `go test ./pkg/cli -run TestREADMEConfigTable -update`\nwant:\n%s", want)
}

func TestHelpListsEverySettingWithDefault(t *testing.T) {
	t.Parallel()
	for _, p := range Services {
		var out, errOut bytes.Buffer
		if _, code := p.Parse([]string{"--help"}, &out, &errOut); code != 0 {
			t.Fatalf("%s --help: exit %d", p.Name, code)
		}
		help := out.String()
		if !strings.HasPrefix(help, p.Name+": ") {
			t.Errorf("%s --help does not say what it is: %q", p.Name, help[:min(60, len(help))])
		}
		for _, v := range p.Vars() {
			def := v.Default
			if def == "" {
				def = "(none)"
			}
			if !strings.Contains(help, "  "+v.Key+"  [") || !strings.Contains(help, "default "+def+"]") {
				t.Errorf("%s --help lacks %s with default %s", p.Name, v.Key, def)
			}
		}
	}
	var out bytes.Buffer
	Worker.Parse([]string{"-h"}, &out, &out)
	for _, want := range []string{"INGEST_ADDR", "WORKER_ADDR  [string, default :8081]", "worker migrate status", "_FILE"} {
		if strings.Contains(out.String(), want) == (want == "INGEST_ADDR") {
			t.Errorf("worker -h: %q presence wrong:\n%s", want, out.String())
		}
	}
}

func TestParseArguments(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    Program
		args []string
		code int
		cmd  string
	}{
		{Ingest, nil, Continue, ""},
		{Ingest, []string{"--version"}, 0, ""},
		{Linefake, []string{"-version"}, 0, ""},
		{Ingest, []string{"--bogus"}, 2, ""},
		{Sender, []string{"run"}, 2, ""},
		{Worker, []string{"migrate"}, Continue, "migrate"},
		{Worker, []string{"migrate", "status"}, Continue, "migrate status"},
		{Worker, []string{"migrate", "down"}, 2, ""},
		{Worker, []string{"migrate", "-x"}, 2, ""},
	} {
		var out, errOut bytes.Buffer
		cmd, code := c.p.Parse(c.args, &out, &errOut)
		if code != c.code || strings.Join(cmd, " ") != c.cmd {
			t.Errorf("%s %v: exit %d cmd %q, want %d %q", c.p.Name, c.args, code, cmd, c.code, c.cmd)
		}
		if code == 2 && !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("%s %v: no usage on stderr", c.p.Name, c.args)
		}
		if len(c.args) == 1 && strings.HasSuffix(c.args[0], "version") && !strings.HasPrefix(out.String(), c.p.Name+" ") {
			t.Errorf("%s --version: %q", c.p.Name, out.String())
		}
	}
}
