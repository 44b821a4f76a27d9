package deploy

import (
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/worker"
)

// docker-compose.yml lets each service finish what it holds on SIGTERM
// before Docker kills it:
//   - a worker, per loop, the batch being stored and the one fetched
//     behind it, each within worker.FinishBound;
//   - a sender, the claim on its way and the rows it claimed, each within
//     sender.LongestSend (sender.LongestStop): killed between LINE's
//     answer and its record, a reply would be sent again with a used
//     token and end uncertain.
func TestStopGrace(t *testing.T) {
	t.Parallel()
	compose := readCompose(t)
	for service, need := range map[string]time.Duration{
		"worker": 2 * worker.FinishBound(worker.DefaultAckWait),
		"sender": sender.LongestStop(sender.DefaultRateHorizon, sender.DefaultRequestTimeout),
	} {
		grace, err := time.ParseDuration(compose.Services[service].StopGrace)
		if err != nil {
			t.Fatalf("%s stop_grace_period: %v", service, err)
		}
		if grace <= need {
			t.Errorf("%s stop_grace_period %s, want more than %s", service, grace, need)
		}
	}
}
