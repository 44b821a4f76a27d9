package linefake

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Limit{"2000/1s": {2000, time.Second}, "60/1h": {60, time.Hour}, "off": Unlimited, " 5/250ms ": {5, 250 * time.Millisecond}} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "2000", "x/1s", "0/1s", "5/0s", "5/-1s", "5/soon"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}

func TestParseChannels(t *testing.T) {
	t.Parallel()
	got, err := ParseChannels("1:s1:tok1, 2:s2 ,")
	want := []Channel{{ID: "1", Secret: "s1", AccessTokens: []string{"tok1"}}, {ID: "2", Secret: "s2"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"1", "1:", ":s", "1:s:t:x"} {
		_, err := ParseChannels(bad)
		if err == nil {
			t.Errorf("ParseChannels(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "s:t") {
			t.Errorf("error %q echoes credentials", err)
		}
	}
}

func TestConfigValidateAndDefaults(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.RateLimits.Push != (Limit{2000, time.Second}) || c.RateLimits.Multicast != (Limit{200, time.Second}) ||
		c.RateLimits.Narrowcast != (Limit{60, time.Hour}) || c.ReplyTokenTTL != time.Minute ||
		c.RetryKeyWindow != 24*time.Hour || c.StatelessTokenTTL != 15*time.Minute || c.MaxBodyBytes != 2_000_000 {
		t.Fatalf("defaults %+v are not LINE's", c)
	}
	bad := []Config{
		{Channels: []Channel{{ID: "1", Secret: "s"}, {ID: "1", Secret: "t"}}},
		{Channels: []Channel{{ID: "1"}}},
		{Faults: Faults{FailRate: 2}},
		{Faults: Faults{Latency: -time.Second}},
		{UserCap: UserCap{Messages: 3}},
		{RateLimits: RateLimits{Push: Limit{Requests: 3}}},
		{ReplyTokenTTL: -time.Second},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("bad config %d validated", i)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted an invalid config")
		}
	}()
	New(bad[0])
}
