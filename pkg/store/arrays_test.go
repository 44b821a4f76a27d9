package store

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// fastMap is a type map with the one-pass array plans, as every pool's
// connection has them.
func fastMap() *pgtype.Map {
	m := pgtype.NewMap()
	for _, oid := range []uint32{pgtype.TextArrayOID, pgtype.TimestamptzArrayOID} {
		t, _ := m.TypeForOID(oid)
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: fastArrayCodec{t.Codec}})
	}
	return m
}

// arrayCases are the columns the set-based statements send: empty and
// nil slices, empty strings, text LINE may send (any Unicode), and times
// on both sides of both epochs, with nanoseconds pgx truncates.
func arrayCases(r *rand.Rand) ([][]string, [][]time.Time) {
	texts := [][]string{nil, {}, {""}, {"a", "", "日本語", `{"type":"message"}`, "NULL", "{x,y}", "\x00"}}
	times := [][]time.Time{nil, {}, {time.Unix(0, 0)}, {
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.FixedZone("x", -3*3600)), time.Unix(-1, 999),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Now(),
	}}
	for range 200 {
		n := r.IntN(300)
		ss, ts := make([]string, n), make([]time.Time, n)
		for i := range ss {
			ss[i] = strings.Repeat(string(rune(r.IntN(0x10000))), r.IntN(40))
			ts[i] = time.Unix(r.Int64N(1<<37)-1<<36, r.Int64N(1e9))
		}
		texts, times = append(texts, ss), append(times, ts)
	}
	return texts, times
}

// The one-pass plans write exactly the bytes pgx's own codec writes, and
// are the plans chosen for the worker's column types, behind existing
// bytes in the buffer as pgx builds a statement's parameters.
func TestFastArraysEncodeAsPgx(t *testing.T) {
	t.Parallel()
	stock, fast := pgtype.NewMap(), fastMap()
	texts, times := arrayCases(rand.New(rand.NewPCG(1, 2)))
	check := func(oid uint32, v any) {
		t.Helper()
		prefix := []byte("earlier parameters")
		want, err := stock.Encode(oid, pgtype.BinaryFormatCode, v, slices.Clone(prefix))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fast.Encode(oid, pgtype.BinaryFormatCode, v, slices.Clone(prefix))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("%T %v: encoded\n%x\nwant (pgx)\n%x", v, v, got, want)
		}
	}
	for _, ss := range texts {
		check(pgtype.TextArrayOID, ss)
	}
	for _, ts := range times {
		check(pgtype.TimestamptzArrayOID, ts)
	}
	for oid, v := range map[uint32]any{pgtype.TextArrayOID: []string{"a"}, pgtype.TimestamptzArrayOID: []time.Time{{}}} {
		if !IsFastArrayPlan(fast.PlanEncode(oid, pgtype.BinaryFormatCode, v)) {
			t.Errorf("%T for OID %d: not the one-pass plan", v, oid)
		}
	}
}

// BenchmarkEncodeEventColumns encodes a worker batch's events columns
// (200 events, LINE-sized) with pgx's codec and with the one-pass plans.
func BenchmarkEncodeEventColumns(b *testing.B) {
	const n = 200
	raw := `{"type":"message","message":{"type":"text","id":"468789577898262530","quoteToken":"q3Plxr4AgKd...","text":"Hello, world"},"webhookEventId":"01H810YECXQQZ37VAXPF6H9E6T","deliveryContext":{"isRedelivery":false},"timestamp":1692251666727,"source":{"type":"user","userId":"U4af4980629..."},"replyToken":"38ef843bde154d9b91c21320ffd17a0f","mode":"active"}`
	cols := make([]any, 0, 15)
	for range 12 {
		ss := make([]string, n)
		for i := range ss {
			ss[i] = raw[:33]
		}
		cols = append(cols, ss)
	}
	raws := make([]string, n)
	for i := range raws {
		raws[i] = raw
	}
	cols = append(cols, raws, make([]time.Time, n), make([]time.Time, n))
	for _, m := range []struct {
		name string
		m    *pgtype.Map
	}{{"pgx", pgtype.NewMap()}, {"one-pass", fastMap()}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := make([]byte, 0, 256) // as pgx starts each statement
				for _, c := range cols {
					oid := uint32(pgtype.TextArrayOID)
					if _, ok := c.([]time.Time); ok {
						oid = pgtype.TimestamptzArrayOID
					}
					var err error
					if buf, err = m.m.Encode(oid, pgtype.BinaryFormatCode, c, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
