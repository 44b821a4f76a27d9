package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile builds with the Go release go.mod names, exactly: the
// golang image sets GOTOOLCHAIN=local, so an image of an older patch
// release refuses to build, and a floating tag (golang:1.26) may be a
// cached older one.
func TestDockerfileGoVersion(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	want := "golang:" + string(m[1]) + "-alpine"
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, l := range strings.Split(string(df), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && strings.EqualFold(f[0], "FROM") && strings.HasPrefix(f[1], "golang:") {
			images = append(images, f[1])
		}
	}
	if len(images) == 0 {
		t.Fatal("the Dockerfile builds with no golang image")
	}
	for _, img := range images {
		if img != want {
			t.Errorf("Dockerfile builds with %s, go.mod needs %s", img, want)
		}
	}
}
