package deploy

import (
	"os"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/linepipe/linepipe/pkg/worker"
)

// docker-compose.yml lets a worker finish what it holds on SIGTERM: per
// loop, the batch being stored and the one fetched behind it, each
// within max(3 x WORKER_ACK_WAIT, 30s) (worker.finishBound), before
// Docker kills it.
func TestWorkerStopGrace(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			StopGrace string `yaml:"stop_grace_period"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	grace, err := time.ParseDuration(compose.Services["worker"].StopGrace)
	if err != nil {
		t.Fatalf("worker stop_grace_period: %v", err)
	}
	if need := 2 * max(3*worker.DefaultAckWait, 30*time.Second); grace <= need {
		t.Errorf("worker stop_grace_period %s, want more than %s", grace, need)
	}
}
