// Package buildinfo says which linepipe a binary is: its version and
// commit, for --version and the linepipe_build_info metric.
//
// Release builds stamp both with the linker, as the Dockerfile does:
//
//	go build -ldflags "-X github.com/linepipe/linepipe/pkg/buildinfo.version=v1.2.3 \
//	    -X github.com/linepipe/linepipe/pkg/buildinfo.commit=0123abc" ./cmd/...
//
// Unstamped builds fall back to what the Go toolchain records: the module
// version and, when built inside a git checkout, the VCS revision.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X; empty when not stamped.
var (
	version string
	commit  string
)

// Info is one binary's identity.
type Info struct {
	Version   string // "v1.2.3", a module pseudo-version, or "devel"
	Commit    string // VCS revision, with "-dirty" for modified trees; "unknown" if none
	GoVersion string
}

// Get reads the stamped values, falling back to runtime/debug build info.
func Get() Info {
	return resolve(version, commit, debug.ReadBuildInfo)
}

func resolve(v, c string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: v, Commit: c, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "-dirty"
			}
			in.Commit = rev
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// String is the --version line: "<program> <version> (commit <commit>, <go>)".
func (in Info) String(program string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", program, in.Version, in.Commit, in.GoVersion)
}
