package natsconf

import (
	"os"
	"strings"
	"testing"
)

// The embedded copy is the file docker-compose mounts, byte for byte, so
// tests, bench and chaos run exactly the deployed users and permissions.
func TestEmbeddedCopyIsTheDeployedFile(t *testing.T) {
	t.Parallel()
	deployed, err := os.ReadFile("../../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(deployed) != Conf {
		t.Fatal("pkg/natsconf/nats.conf differs from deploy/nats/nats.conf: copy the deployed file here")
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	u := Users{Ingest: Credentials{"ingest", "pi"}, Worker: Credentials{"worker", "pw"}, Sender: Credentials{"sender", "ps"},
		Admin: Credentials{"admin", "pa"}}
	got := Render(Options{Stream: "T_1", SubjectPrefix: "t1", Consumer: "c", Users: u})
	for _, want := range []string{`"t1.event.>"`, `"$JS.API.STREAM.INFO.T_1"`, `"$JS.ACK.T_1.c.>"`, `password: "pi"`, "sync_interval: always"} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered config lacks %s", want)
		}
	}
	for _, gone := range []string{"LINEPIPE", `"linepipe.`, "$NATS_", "store_dir", "listen:"} {
		if strings.Contains(got, gone) {
			t.Errorf("rendered config still has %s", gone)
		}
	}
	if strings.Contains(Render(Options{Users: u, DefaultSync: true}), "sync_interval") {
		t.Error("DefaultSync kept sync_interval")
	}
}
