// Package config reads service configuration from environment variables.
// Every variable has a safe default; a value that cannot be parsed is an
// error at start-up, never a silent fallback.
//
// Any variable X may instead be given as X_FILE, the path of a file
// holding the value (surrounding whitespace trimmed): the way Docker and
// Kubernetes secrets are mounted, so secrets stay out of the environment.
//
// Env also records every variable it is asked for, with its default, so
// a program's --help and the README's configuration table are generated
// from the very calls that parse them (see Describe and Docs).
package config

import (
	"errors"
	"fmt"
	"math"
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
	read   []Setting
	seen   map[string]bool
}

// Setting is one variable a program reads, as Env recorded it.
type Setting struct {
	Key     string
	Kind    string // string, integer, number, duration, boolean or size
	Default string // as it would be written in the environment; "" for none
}

// Describe runs read (a SettingsFromEnv) against an empty environment and
// returns every variable it asked for, in order, with its default.
func Describe(read func(*Env)) []Setting {
	e := FromMap(nil)
	read(e)
	return e.Settings()
}

// Settings is every variable read so far, in first-read order.
func (e *Env) Settings() []Setting { return append([]Setting(nil), e.read...) }

func (e *Env) note(key, kind, def string) {
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	if !e.seen[key] {
		e.seen[key] = true
		e.read = append(e.read, Setting{Key: key, Kind: kind, Default: def})
	}
}

// FromOS reads the process environment.
func FromOS() *Env { return &Env{lookup: os.LookupEnv} }

// FromMap reads m; for tests.
func FromMap(m map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

// FileSuffix turns a variable's name into the one naming a file that
// holds its value.
const FileSuffix = "_FILE"

func (e *Env) get(key string) (string, bool) {
	v, ok := e.lookup(key)
	v = strings.TrimSpace(v)
	set := ok && v != ""
	if path, fok := e.lookup(key + FileSuffix); fok && strings.TrimSpace(path) != "" {
		if set {
			e.errs = append(e.errs, fmt.Errorf("%s and %s%s are both set: give one", key, key, FileSuffix))
			return "", false
		}
		b, err := os.ReadFile(strings.TrimSpace(path))
		if err != nil {
			// The error names the file, never its content.
			e.errs = append(e.errs, fmt.Errorf("%s%s: %w", key, FileSuffix, err))
			return "", false
		}
		v = strings.TrimSpace(string(b))
		return v, v != ""
	}
	return v, set
}

// String is key's value, or def when unset or empty.
func (e *Env) String(key, def string) string {
	e.note(key, "string", def)
	if v, ok := e.get(key); ok {
		return v
	}
	return def
}

// Int is key's value as an integer, or def.
func (e *Env) Int(key string, def int) int {
	e.note(key, "integer", strconv.Itoa(def))
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
	e.note(key, "number", strconv.FormatFloat(def, 'g', -1, 64))
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
	e.note(key, "duration", FormatDuration(def))
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
	e.note(key, "boolean", strconv.FormatBool(def))
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
	e.note(key, "size", FormatBytes(def))
	v, ok := e.get(key)
	if !ok {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: not a size in bytes", key))
		return def
	}
	return n
}

// ParseSize reads a size in bytes as Go's runtime reads GOMEMLIMIT: a
// whole number with an optional B, KiB, MiB, GiB or TiB.
func ParseSize(v string) (int64, error) {
	num, mult := v, int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSuffix(v, u.suffix), u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: not a size in bytes", v)
	}
	return n * mult, nil
}

// Err is every parse error so far, joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// FormatDuration writes d the short way a person would set it: "1m",
// "24h", "1h30m", "250ms", rather than time.Duration's "1m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// FormatBytes writes n with the largest exact KiB, MiB or GiB unit.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
