package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestStampedValuesWin(t *testing.T) {
	t.Parallel()
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v0.0.0-x"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, true
	}
	in := resolve("v1.2.3", "f00d", read)
	if in.Version != "v1.2.3" || in.Commit != "f00d" || in.GoVersion != "go1.99" {
		t.Fatalf("%+v", in)
	}
	if got := in.String("worker"); got != "worker v1.2.3 (commit f00d, go1.99)" {
		t.Fatalf("%q", got)
	}
}

func TestFallsBackToBuildInfo(t *testing.T) {
	t.Parallel()
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	in := resolve("", "", read)
	if in.Version != "devel" || in.Commit != "abc-dirty" {
		t.Fatalf("%+v", in)
	}
	none := resolve("", "", func() (*debug.BuildInfo, bool) { return nil, false })
	if none.Version != "devel" || none.Commit != "unknown" || none.GoVersion == "" {
		t.Fatalf("%+v", none)
	}
}
