// Package config reads service configuration from environment variables.
// Every variable has a safe default; a value that cannot be parsed is an
// error at start-up, never a silent fallback.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables through lookup and collects every parse error, so a
// service reports all its bad settings at once.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// FromOS reads the process environment.
func FromOS() *Env { return &Env{lookup: os.LookupEnv} }

// FromMap reads m; for tests.
func FromMap(m map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func (e *Env) get(key string) (string, bool) {
	v, ok := e.lookup(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String is key's value, or def when unset or empty.
func (e *Env) String(key, def string) string {
	if v, ok := e.get(key); ok {
		return v
	}
	return def
}

// Int is key's value as an integer, or def.
func (e *Env) Int(key string, def int) int {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", key, v))
		return def
	}
	return n
}

// Float is key's value as a number, or def.
func (e *Env) Float(key string, def float64) float64 {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a number", key, v))
		return def
	}
	return n
}

// Duration is key's value as a Go duration ("1.5s", "200ms"), or def.
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration", key, v))
		return def
	}
	return d
}

// Bool is key's value as a boolean, or def.
func (e *Env) Bool(key string, def bool) bool {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a boolean", key, v))
		return def
	}
	return b
}

// Bytes is key's value as a size in bytes ("1048576", "512KiB", "1MiB"), or def.
func (e *Env) Bytes(key string, def int64) int64 {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			mult, v = u.n, strings.TrimSuffix(v, u.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		e.errs = append(e.errs, fmt.Errorf("%s: not a size in bytes", key))
		return def
	}
	return n * mult
}

// Err is every parse error so far, joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Secret is a credential from key, or from the file named by key+"_FILE"
// (Docker and Kubernetes secrets), with surrounding whitespace trimmed.
// Setting both is an error: which one wins would be a guess.
func (e *Env) Secret(key string) string {
	v, hasV := e.get(key)
	path, hasF := e.get(key + "_FILE")
	switch {
	case hasV && hasF:
		e.errs = append(e.errs, fmt.Errorf("%s and %s_FILE are both set; set one", key, key))
		return ""
	case hasF:
		b, err := os.ReadFile(path)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s_FILE: %w", key, err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return v
}
