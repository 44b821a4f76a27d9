package deploy

import (
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/worker"
)

// docker-compose.yml lets a worker finish what it holds on SIGTERM: per
// loop, the batch being stored and the one fetched behind it, each
// within worker.FinishBound, before
// Docker kills it.
func TestWorkerStopGrace(t *testing.T) {
	t.Parallel()
	compose := readCompose(t)
	grace, err := time.ParseDuration(compose.Services["worker"].StopGrace)
	if err != nil {
		t.Fatalf("worker stop_grace_period: %v", err)
	}
	if need := 2 * worker.FinishBound(worker.DefaultAckWait); grace <= need {
		t.Errorf("worker stop_grace_period %s, want more than %s", grace, need)
	}
}

// docker-compose.yml lets a sender finish the rows it claimed on SIGTERM,
// each within sender.LongestSend, before Docker kills it: killed between
// LINE's answer and its record, a reply would be sent again with a used
// token and end uncertain.
func TestSenderStopGrace(t *testing.T) {
	t.Parallel()
	compose := readCompose(t)
	grace, err := time.ParseDuration(compose.Services["sender"].StopGrace)
	if err != nil {
		t.Fatalf("sender stop_grace_period: %v", err)
	}
	if need := sender.LongestSend(sender.DefaultRateHorizon, sender.DefaultRequestTimeout); grace <= need {
		t.Errorf("sender stop_grace_period %s, want more than %s", grace, need)
	}
}
