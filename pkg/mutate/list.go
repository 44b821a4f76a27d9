// Package mutate checks that the test suite catches a break of each
// documented guarantee. A list of deliberate breaks (docs/mutations.txt)
// names, for every guarantee, an exact snippet of the code that keeps it,
// a replacement that breaks it, and the tests that must then fail. Each
// break is applied alone to a throwaway copy of the tree and its tests are
// run; a break after which every test passes is a survivor: the guarantee
// is not tested.
package mutate

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Mutation is one deliberate break.
type Mutation struct {
	Name      string
	Guarantee string   // what breaks, in the docs' words
	Source    string   // where the guarantee is documented
	Packages  []string // go test packages that must fail
	Run       string   // go test -run pattern; empty runs them all
	Flux      bool     // the targeted code is being rewritten: re-anchor after merges
	Edits     []Edit
	Line      int // where the entry starts in the list
}

// Edit replaces one exact, unique snippet of a file.
type Edit struct {
	File, Original, Replacement string
}

// Parse reads a mutation list. The format, line by line:
//
//	# comment (outside snippets)
//	=== name
//	guarantee: ...
//	source: ...
//	tests: ./pkg/a ./tests
//	run: TestX|TestY
//	flux: yes
//	file: path/to/file.go
//	<<<
//	original lines, exactly as in the file
//	===
//	replacement lines
//	>>>
//
// An entry may hold several file/<<</===/>>> blocks.
func Parse(data []byte) ([]Mutation, error) {
	var out []Mutation
	var cur *Mutation
	var edit *Edit
	var buf []string
	state := "" // "", "orig", "repl"
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch state {
		case "orig":
			if line == "===" {
				edit.Original, buf, state = strings.Join(buf, "\n"), nil, "repl"
			} else {
				buf = append(buf, line)
			}
			continue
		case "repl":
			if line == ">>>" {
				edit.Replacement, buf, state = strings.Join(buf, "\n"), nil, ""
				cur.Edits = append(cur.Edits, *edit)
				edit = nil
			} else {
				buf = append(buf, line)
			}
			continue
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case strings.HasPrefix(line, "=== "):
			out = append(out, Mutation{Name: strings.TrimSpace(line[4:]), Line: n})
			cur = &out[len(out)-1]
		case cur == nil:
			return nil, fmt.Errorf("line %d: %q before the first \"=== name\"", n, line)
		case line == "<<<":
			if edit == nil {
				return nil, fmt.Errorf("line %d: snippet without a file: line", n)
			}
			state = "orig"
		default:
			key, val, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: want key: value, got %q", n, line)
			}
			val = strings.TrimSpace(val)
			switch strings.TrimSpace(key) {
			case "guarantee":
				cur.Guarantee = val
			case "source":
				cur.Source = val
			case "tests":
				cur.Packages = strings.Fields(val)
			case "run":
				cur.Run = val
			case "flux":
				cur.Flux = val == "yes"
			case "file":
				if edit != nil {
					return nil, fmt.Errorf("line %d: file %s has no snippet", n, edit.File)
				}
				edit = &Edit{File: val}
			default:
				return nil, fmt.Errorf("line %d: unknown key %q", n, key)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if state != "" || edit != nil {
		return nil, fmt.Errorf("unterminated snippet at end of list")
	}
	for _, m := range out {
		if len(m.Edits) == 0 || len(m.Packages) == 0 || m.Guarantee == "" {
			return nil, fmt.Errorf("line %d: %s needs a guarantee, tests and at least one snippet", m.Line, m.Name)
		}
	}
	return out, nil
}

// Apply performs an edit on src: the original must occur exactly once.
func (e Edit) Apply(src []byte) ([]byte, error) {
	switch c := bytes.Count(src, []byte(e.Original)); c {
	case 1:
		return bytes.Replace(src, []byte(e.Original), []byte(e.Replacement), 1), nil
	case 0:
		return nil, fmt.Errorf("%s: snippet not found (the code moved: re-anchor this entry)", e.File)
	default:
		return nil, fmt.Errorf("%s: snippet occurs %d times (make it unique)", e.File, c)
	}
}
