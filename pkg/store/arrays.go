package store

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The set-based statements (the worker's inserts above all) send each
// column of a batch as one array parameter. pgx encodes a []string or
// []time.Time element by element through its generic array codec: each
// element is boxed into an interface, its type looked up and its plan
// called, and the parameter buffer grows as it goes. In a CPU profile of
// the worker draining the bench's stream that was 15 % of the process's
// CPU, on cores Postgres needs. The plans here write the same bytes in
// one pass into a buffer grown once, and every other value still goes to
// pgx's own codec. TestFastArraysEncodeAsPgx holds them to pgx's bytes.

// fastArrays registers the one-pass plans on a connection's type map.
func fastArrays(conn *pgx.Conn) {
	m := conn.TypeMap()
	for _, oid := range []uint32{pgtype.TextArrayOID, pgtype.TimestamptzArrayOID} {
		if t, ok := m.TypeForOID(oid); ok {
			if _, done := t.Codec.(fastArrayCodec); !done {
				m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: fastArrayCodec{t.Codec}})
			}
		}
	}
}

// fastArrayCodec is pgx's array codec with a one-pass binary plan for
// []string and []time.Time; everything else, decoding included, is the
// wrapped codec's. One pgx path looks for *pgtype.ArrayCodec itself and
// misses it here: CopyFrom given a string (an array literal) for a text[]
// or timestamptz[] column, which then flattens a multi-dimensional
// array. linepipe copies no array columns.
type fastArrayCodec struct{ pgtype.Codec }

func (c fastArrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch {
		case oid == pgtype.TextArrayOID:
			if _, ok := value.([]string); ok {
				return textArrayPlan{}
			}
		case oid == pgtype.TimestamptzArrayOID:
			if _, ok := value.([]time.Time); ok {
				return timeArrayPlan{}
			}
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// arrayHeader appends a one-dimensional array's header as pgx writes it:
// no NULLs, lower bound 1. A nil slice is SQL NULL (the caller returns
// nil); an empty one is an array of one empty dimension.
func arrayHeader(buf []byte, elemOID uint32, n int) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, 0) // no NULL
	buf = binary.BigEndian.AppendUint32(buf, elemOID)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1) // lower bound
}

type textArrayPlan struct{}

func (textArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	ss := value.([]string)
	if ss == nil {
		return nil, nil
	}
	size := 20 + 4*len(ss)
	for _, s := range ss {
		size += len(s)
	}
	buf = slices.Grow(buf, size)
	buf = arrayHeader(buf, pgtype.TextOID, len(ss))
	for _, s := range ss {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	return buf, nil
}

type timeArrayPlan struct{}

// microsY2K is 2000-01-01 UTC, Postgres's epoch, in microseconds since
// the Unix epoch.
const microsY2K = 946684800 * 1000000

func (timeArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	ts := value.([]time.Time)
	if ts == nil {
		return nil, nil
	}
	buf = slices.Grow(buf, 20+12*len(ts))
	buf = arrayHeader(buf, pgtype.TimestamptzOID, len(ts))
	for _, t := range ts {
		buf = binary.BigEndian.AppendUint32(buf, 8)
		us := t.Unix()*1000000 + int64(t.Nanosecond())/1000
		buf = binary.BigEndian.AppendUint64(buf, uint64(us-microsY2K))
	}
	return buf, nil
}
