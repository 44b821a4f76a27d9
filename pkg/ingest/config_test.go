package ingest

import (
	"testing"
	"time"
)

// The limits Validate keeps: LINE waits 2 s for the answer, so a publish
// timeout of 2 s or more would answer after LINE gave up and count a
// timeout where a 503 would have asked for a redelivery in time.
func TestConfigValidateRefusesUnsafeLimits(t *testing.T) {
	t.Parallel()
	base := Config{}.WithDefaults()
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, c := range map[string]struct {
		change func(*Config)
		ok     bool
	}{
		"publish timeout just under 2s": {func(c *Config) { c.PublishTimeout = 2*time.Second - time.Millisecond }, true},
		"publish timeout 2s":            {func(c *Config) { c.PublishTimeout = 2 * time.Second }, false},
		"publish timeout 5s":            {func(c *Config) { c.PublishTimeout = 5 * time.Second }, false},
		"publish timeout negative":      {func(c *Config) { c.PublishTimeout = -time.Second }, false},
		"body under 1 KiB":              {func(c *Config) { c.MaxBodyBytes = 1023 }, false},
		"no webhook in flight":          {func(c *Config) { c.MaxInFlight = 0 }, false},
		"buffer under one body":         {func(c *Config) { c.MaxBufferedBytes = c.MaxBodyBytes - 1 }, false},
		"buffer of one body":            {func(c *Config) { c.MaxBufferedBytes = c.MaxBodyBytes }, true},
	} {
		cfg := base
		c.change(&cfg)
		err := cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", name, err, c.ok)
		}
	}
}
