package bench

import (
	"strings"
	"testing"
)

func TestPlanCostReadsExecutionTimeAndTopBuffers(t *testing.T) {
	t.Parallel()
	plan := strings.Split(`Limit  (cost=0.43..1681.23 rows=100 width=167) (actual time=0.114..0.632 rows=100 loops=1)
  Buffers: shared hit=606 read=12 dirtied=3
  ->  LockRows  (cost=0.43..25212.47 rows=1500 width=167) (actual time=0.113..0.622 rows=100 loops=1)
        Buffers: shared hit=600
Planning:
  Buffers: shared hit=4
Planning Time: 0.397 ms
Execution Time: 0.786 ms`, "\n")
	ms, pages := planCost(plan)
	if ms != 0.786 || pages != 618 {
		t.Fatalf("planCost = %v ms, %d pages; want 0.786 ms and 618 (hit+read of the top node only)", ms, pages)
	}
	if ms, pages := planCost([]string{"Result  (cost=0.00..0.01 rows=1 width=0)"}); ms != 0 || pages != 0 {
		t.Fatalf("a plan without timing gave %v ms, %d pages", ms, pages)
	}
}

func TestValidateRejectsUnknownStages(t *testing.T) {
	t.Parallel()
	c := Config{Stages: []string{"ingest", "replies"}}.WithDefaults()
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `"replies"`) {
		t.Fatalf("Validate = %v, want the unknown stage named", err)
	}
	c.Stages = append([]string(nil), StageNames...)
	if err := c.Validate(); err != nil {
		t.Fatalf("every known stage: %v", err)
	}
}
