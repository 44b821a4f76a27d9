package linefake

import (
	"strings"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
)

func TestSettingsFromEnv(t *testing.T) {
	t.Parallel()
	s, err := SettingsFromEnv(config.FromMap(map[string]string{
		"LINEFAKE_CHANNELS":           "1:s1:t1,2:s2",
		"LINEFAKE_FAIL_RATE":          "0.1",
		"LINEFAKE_DROP_RATE":          "0.05",
		"LINEFAKE_ACCEPTED_FAIL_RATE": "0.03",
		"LINEFAKE_429_RATE":           "0.2",
		"LINEFAKE_LATENCY":            "20ms",
		"LINEFAKE_LATENCY_JITTER":     "5ms",
		"LINEFAKE_SEED":               "9",
		"LINEFAKE_RATE_PUSH":          "100/1s",
		"LINEFAKE_RATE_BROADCAST":     "off",
		"LINEFAKE_RATE_OTHER":         "50/1s",
		"LINEFAKE_USER_CAP":           "10/1m",
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config
	if s.HTTP.Addr != ":8090" || s.LogLevel != "info" || len(c.Channels) != 2 || c.Seed != 9 {
		t.Fatalf("settings %+v", s)
	}
	if c.Faults != (Faults{FailRate: 0.1, DropRate: 0.05, AcceptedFailRate: 0.03, TooManyRate: 0.2, Latency: 20 * time.Millisecond, LatencyJitter: 5 * time.Millisecond}) {
		t.Fatalf("faults %+v", c.Faults)
	}
	if c.RateLimits.Push != (Limit{100, time.Second}) || c.RateLimits.Broadcast != Unlimited || c.RateLimits.Reply != (Limit{}) ||
		c.RateLimits.Other != (Limit{50, time.Second}) {
		t.Fatalf("limits %+v (unset ones stay zero for LINE's defaults)", c.RateLimits)
	}
	if c.UserCap != (UserCap{10, time.Minute}) {
		t.Fatalf("user cap %+v", c.UserCap)
	}
	_, err = SettingsFromEnv(config.FromMap(map[string]string{
		"LINEFAKE_CHANNELS": "broken", "LINEFAKE_FAIL_RATE": "2", "LINEFAKE_RATE_PUSH": "fast", "LINEFAKE_LATENCY": "soon",
	}))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{"LINEFAKE_CHANNELS", "fail rate", "LINEFAKE_RATE_PUSH", "LINEFAKE_LATENCY"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
