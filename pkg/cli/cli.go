// Package cli makes linepipe's binaries describe themselves: --help
// prints what the program is and every environment variable it reads,
// with default and meaning, generated from the very SettingsFromEnv that
// parses them; --version prints the build; anything else unknown exits 2.
// No service binds a port or dials a dependency before this has run.
package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/linepipe/linepipe/pkg/buildinfo"
	"github.com/linepipe/linepipe/pkg/config"
)

// Program is one binary as its --help describes it.
type Program struct {
	Name    string
	Summary string // what the program is, one paragraph
	// Commands are the positional arguments accepted, each a sequence
	// ("migrate", "status"), with a line of help. Running with no
	// argument is always accepted.
	Commands []Command
	// Settings reads the program's environment: its SettingsFromEnv.
	Settings func(*config.Env)
}

// Command is an accepted sequence of positional arguments.
type Command struct {
	Args []string
	Help string
}

// Continue is Parse's exit code when the program should go on to run.
const Continue = -1

// Parse handles args (os.Args[1:]): -h/--help and --version print and
// return exit code 0; an unknown flag or argument prints the usage to
// stderr and returns 2. Otherwise it returns the positional arguments
// (one of p.Commands, or none) and Continue.
func (p Program) Parse(args []string, stdout, stderr io.Writer) ([]string, int) {
	var pos []string
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			_ = p.WriteHelp(stdout)
			return nil, 0
		case "-version", "--version":
			fmt.Fprintln(stdout, buildinfo.Get().String(p.Name))
			return nil, 0
		}
		if strings.HasPrefix(a, "-") {
			fmt.Fprintf(stderr, "%s: unknown flag %s\n", p.Name, a)
			p.writeUsage(stderr)
			return nil, 2
		}
		pos = append(pos, a)
	}
	if len(pos) == 0 {
		return nil, Continue
	}
	for _, c := range p.Commands {
		if strings.Join(c.Args, " ") == strings.Join(pos, " ") {
			return pos, Continue
		}
	}
	fmt.Fprintf(stderr, "%s: unexpected argument %q\n", p.Name, strings.Join(pos, " "))
	p.writeUsage(stderr)
	return nil, 2
}

func (p Program) writeUsage(w io.Writer) {
	lines := [][2]string{{p.Name, "run the service"}}
	for _, c := range p.Commands {
		lines = append(lines, [2]string{p.Name + " " + strings.Join(c.Args, " "), c.Help})
	}
	lines = append(lines, [2]string{p.Name + " --help", "print what it is and every setting, with default and meaning"},
		[2]string{p.Name + " --version", "print version and commit"})
	width := 0
	for _, l := range lines {
		width = max(width, len(l[0]))
	}
	fmt.Fprintln(w, "usage:")
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l[0], l[1])
	}
}

// Vars is every variable the program reads, as documented.
func (p Program) Vars() []Var {
	var out []Var
	for _, s := range config.Describe(p.Settings) {
		d := config.Docs[s.Key]
		v := Var{Setting: s, Doc: d, Default: s.Default}
		if d.Default != "" {
			v.Default = d.Default
		}
		out = append(out, v)
	}
	return out
}

// Var is a setting with its documentation.
type Var struct {
	config.Setting
	Doc     config.Doc
	Default string // as shown: the Doc's, else the parser's
}

// WriteHelp prints the --help text.
func (p Program) WriteHelp(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n\n", p.Name, p.Summary)
	p.writeUsage(&b)
	fmt.Fprintf(&b, "\nEnvironment (a value may instead be read from a file: set NAME%s to its path):\n", config.FileSuffix)
	for _, v := range p.Vars() {
		def := v.Default
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(&b, "  %s  [%s, default %s]\n", v.Key, v.Kind, def)
		meaning := strings.ReplaceAll(v.Doc.Meaning, "`", "")
		if meaning == "" {
			meaning = "(undocumented)"
		}
		if v.Doc.Secret {
			meaning += " Secret: prefer " + v.Key + config.FileSuffix + "."
		}
		fmt.Fprintf(&b, "      %s\n", meaning)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
