package events

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A bundle is how ingest stores the events of concurrent webhooks with a
// single JetStream write: NATS, fsyncing before every acknowledgement,
// costs one fsync per stream message, so one message per event caps
// ingest at the disk's fsync rate. Each record of a bundle is exactly the
// message ingest would have published alone, its headers and its bytes
// (an event's raw bytes as LINE sent them, unchanged), and the worker
// handles each record as that message.
//
// The layout is a version byte, then per record: its headers (their
// count, then each key with its count of values and the values) and its
// data, every string and count a uvarint length or number. Lengths
// rather than JSON keep the raw event bytes verbatim and cost the worker
// no parsing beyond the event itself.

const bundleVersion = 1

// Record is one message inside a bundle.
type Record struct {
	Header map[string][]string
	Data   []byte
}

// ErrBadBundle means a bundle's bytes cannot be read back.
var ErrBadBundle = errors.New("malformed bundle")

// ErrNewerBundle is a bundle in a later format than this build writes:
// a newer ingest wrote it, so it is not malformed, only unreadable here,
// and a newer worker will read it. It wraps ErrBadBundle.
var ErrNewerBundle = fmt.Errorf("%w: a newer format than %d", ErrBadBundle, bundleVersion)

// MalformedBundleError is a bundle whose records can be read only up to
// a point: Readable are the records before it, and Rest is the bytes
// from the first record that cannot be read to the end. It wraps
// ErrBadBundle. Ingest writes every bundle whole, so this is damage on
// the way. Reading stops where the framing fails, which can be after the
// damage: a damaged length misframes the records that follow it until
// one fails. So Readable keeps only records that look as ingest writes
// them (asIngestWrites), and Rest starts at the first that does not.
type MalformedBundleError struct {
	Readable []Record
	Rest     []byte
	cause    error
}

func (e *MalformedBundleError) Error() string { return ErrBadBundle.Error() + ": " + e.cause.Error() }
func (e *MalformedBundleError) Unwrap() error { return ErrBadBundle }

// EncodeBundle lays records out as one message body.
func EncodeBundle(recs []Record) []byte {
	size := 1
	for _, r := range recs {
		size += len(r.Data) + binary.MaxVarintLen32*2
		for k, vs := range r.Header {
			size += len(k) + binary.MaxVarintLen32*2
			for _, v := range vs {
				size += len(v) + binary.MaxVarintLen32
			}
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, bundleVersion)
	for _, r := range recs {
		buf = binary.AppendUvarint(buf, uint64(len(r.Header)))
		for k, vs := range r.Header {
			buf = appendString(buf, k)
			buf = binary.AppendUvarint(buf, uint64(len(vs)))
			for _, v := range vs {
				buf = appendString(buf, v)
			}
		}
		buf = binary.AppendUvarint(buf, uint64(len(r.Data)))
		buf = append(buf, r.Data...)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// DecodeBundle reads the records of a bundle. The records' data share
// b's memory.
func DecodeBundle(b []byte) ([]Record, error) {
	switch {
	case len(b) > 0 && b[0] > bundleVersion:
		return nil, ErrNewerBundle
	case len(b) == 0 || b[0] != bundleVersion:
		return nil, fmt.Errorf("%w: unknown version", ErrBadBundle)
	}
	d := decoder{b: b[1:]}
	var recs []Record
	var prev map[string][]string
	for len(d.b) > 0 && d.err == nil {
		r := d.record(prev)
		recs = append(recs, r)
		prev = r.Header
	}
	if d.err != nil {
		return nil, malformed(b, recs, fmt.Errorf("record %d of %d bytes: %v", len(recs), len(b), d.err))
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrBadBundle)
	}
	return recs, nil
}

// record reads one record; prev is the record before it, whose header
// values it shares where they repeat.
func (d *decoder) record(prev map[string][]string) Record {
	n := d.count()
	r := Record{Header: make(map[string][]string, n)}
	for i := 0; i < n && d.err == nil; i++ {
		k := headerKey(d.bytes())
		r.Header[k] = d.values(prev[k])
	}
	r.Data = d.bytes()
	return r
}

// malformed is the error of bundle b, whose last record in recs could
// not be read: the records before the first one not as ingest writes
// them, and the bytes from it on.
func malformed(b []byte, recs []Record, cause error) *MalformedBundleError {
	good := len(recs) - 1
	for i := range good {
		if !asIngestWrites(recs[i]) {
			good = i
			break
		}
	}
	d := decoder{b: b[1:]}
	for range good {
		d.record(nil)
	}
	return &MalformedBundleError{Readable: recs[:good], Rest: d.b, cause: cause}
}

// asIngestWrites reports whether r has the shape of a record ingest
// writes: a channel, the kind of an event or of a webhook's log record,
// an event's deduplication id, no header ingest does not write, and JSON
// bytes. A record misframed by damage, or cut short by a damaged length,
// fails that, bar chance.
func asIngestWrites(r Record) bool {
	for k := range r.Header {
		if _, known := ingestHeader([]byte(k)); !known {
			return false
		}
	}
	switch HeaderValue(r.Header, HeaderKind) {
	case KindEvent:
		if HeaderValue(r.Header, msgIDHeader) == "" {
			return false
		}
	case KindWebhookLog:
	default:
		return false
	}
	return HeaderValue(r.Header, HeaderChannel) != "" && validJSON(r.Data)
}

// headerKey is a header's name, without an allocation for the names
// ingest writes.
func headerKey(b []byte) string {
	if k, known := ingestHeader(b); known {
		return k
	}
	return string(b)
}

// ingestHeader is b as the name of a header ingest writes, if it is one.
func ingestHeader(b []byte) (string, bool) {
	switch string(b) {
	case HeaderChannel:
		return HeaderChannel, true
	case HeaderDestination:
		return HeaderDestination, true
	case HeaderReceivedAt:
		return HeaderReceivedAt, true
	case HeaderRedelivery:
		return HeaderRedelivery, true
	case HeaderWebhookID:
		return HeaderWebhookID, true
	case HeaderWebhookLog:
		return HeaderWebhookLog, true
	case HeaderKind:
		return HeaderKind, true
	case msgIDHeader:
		return msgIDHeader, true
	}
	return "", false
}

// msgIDHeader is JetStream's deduplication header (jetstream.MsgIDHeader),
// which every event record carries.
const msgIDHeader = "Nats-Msg-Id"

// values reads a header's values. The records of a bundle mostly repeat
// their channel, destination, kind and often their webhook: a header
// equal to the previous record's same header shares its slice, which is
// only ever read, instead of being allocated again for every event.
func (d *decoder) values(prev []string) []string {
	n := d.count()
	if n == 1 && len(prev) == 1 {
		v := d.bytes()
		if string(v) == prev[0] {
			return prev
		}
		return []string{string(v)}
	}
	vs := make([]string, n)
	for j := range vs {
		vs[j] = string(d.bytes())
	}
	return vs
}

// decoder reads uvarint-framed fields, keeping the first error.
type decoder struct {
	b   []byte
	err error
}

// count reads a number of items, each at least one byte long, so a
// corrupt count cannot ask for more than the bytes left.
func (d *decoder) count() int {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[k:]
	return int(n)
}

func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	data, rest, err := chunk(d.b)
	if err != nil {
		d.err = err
		return nil
	}
	d.b = rest
	return data
}

func chunk(b []byte) (data, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errors.New("truncated")
	}
	end := k + int(n)
	return b[k:end:end], b[end:], nil
}
