package mutate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Verdict is what one mutation came to.
type Verdict string

// Verdicts: a break the tests caught, one they missed, and one that could
// not be applied (its snippet moved) or whose tests did not build.
const (
	Caught   Verdict = "caught"
	Survived Verdict = "SURVIVED"
	Broken   Verdict = "NOT APPLIED"
)

// Result is one mutation's outcome.
type Result struct {
	Mutation Mutation
	Verdict  Verdict
	Detail   string // failing tests, or why it was not applied
	Took     time.Duration
}

// Runner applies mutations to a copy of a tree and runs their tests.
type Runner struct {
	Root    string        // the tree to copy
	Work    string        // the throwaway copy
	Timeout time.Duration // per mutation
	Env     []string
	Log     io.Writer // go test output, when verbose
}

// Copy fills r.Work with the files git knows in r.Root, tracked or not yet
// added (ignored ones excluded), as they are on disk now.
func (r *Runner) Copy(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "git", "-C", r.Root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("listing files: %w", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(r.Root, f)
		data, err := os.ReadFile(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		info, err := os.Stat(src)
		if err != nil {
			return err
		}
		dst := filepath.Join(r.Work, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)|^(FAIL\s+\S+.*)$|^(# \S+)$`)

// Run applies m to the copy, runs its tests and restores the copy.
func (r *Runner) Run(ctx context.Context, m Mutation) (res Result) {
	start := time.Now()
	res = Result{Mutation: m}
	originals := map[string][]byte{}
	defer func() {
		for f, data := range originals {
			_ = os.WriteFile(filepath.Join(r.Work, f), data, 0o644)
		}
		res.Took = time.Since(start)
	}()
	for _, e := range m.Edits {
		path := filepath.Join(r.Work, e.File)
		src, err := os.ReadFile(path)
		if err != nil {
			res.Verdict, res.Detail = Broken, err.Error()
			return res
		}
		if _, done := originals[e.File]; !done {
			originals[e.File] = src
		}
		mutated, err := e.Apply(src)
		if err != nil {
			res.Verdict, res.Detail = Broken, err.Error()
			return res
		}
		if err := os.WriteFile(path, mutated, 0o644); err != nil {
			res.Verdict, res.Detail = Broken, err.Error()
			return res
		}
	}
	args := []string{"test", "-count=1", "-timeout", r.Timeout.String()}
	if m.Run != "" {
		args = append(args, "-run", m.Run)
	}
	args = append(args, m.Packages...)
	cctx, cancel := context.WithTimeout(ctx, r.Timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", args...)
	cmd.Dir = r.Work
	cmd.Env = append(os.Environ(), r.Env...)
	out, err := cmd.CombinedOutput()
	if r.Log != nil {
		fmt.Fprintf(r.Log, "### %s: go %s\n%s\n", m.Name, strings.Join(args, " "), out)
	}
	if err == nil {
		res.Verdict = Survived
		res.Detail = "every test passed: go " + strings.Join(args, " ")
		return res
	}
	var fails []string
	for _, mm := range failLine.FindAllStringSubmatch(string(out), -1) {
		switch {
		case mm[1] != "" && !strings.Contains(mm[1], "/"): // top-level tests only
			fails = append(fails, mm[1])
		case mm[3] != "":
			// "# pkg" introduces a build error: a mutation that does not
			// compile proves nothing about the tests.
			res.Verdict, res.Detail = Broken, "does not build: "+firstLines(string(out), 6)
			return res
		}
	}
	if len(fails) == 0 {
		fails = []string{firstLines(string(out), 3)}
	}
	res.Verdict, res.Detail = Caught, strings.Join(fails, ", ")
	return res
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
