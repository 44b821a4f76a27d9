package events

import (
	"encoding/binary"
	"encoding/json"
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
// The layout is a version byte, then per record: the JSON of its headers
// and its data, each preceded by its length as a uvarint. Lengths rather
// than a JSON array keep the raw event bytes verbatim.

const bundleVersion = 1

// Record is one message inside a bundle.
type Record struct {
	Header map[string][]string
	Data   []byte
}

// ErrBadBundle means a bundle's bytes cannot be read back.
var ErrBadBundle = errors.New("malformed bundle")

// EncodeBundle lays records out as one message body.
func EncodeBundle(recs []Record) ([]byte, error) {
	size := 1
	hdrs := make([][]byte, len(recs))
	for i, r := range recs {
		h, err := json.Marshal(r.Header)
		if err != nil {
			return nil, fmt.Errorf("bundle record %d headers: %w", i, err)
		}
		hdrs[i] = h
		size += len(h) + len(r.Data) + 2*binary.MaxVarintLen32
	}
	buf := make([]byte, 0, size)
	buf = append(buf, bundleVersion)
	for i, r := range recs {
		buf = binary.AppendUvarint(buf, uint64(len(hdrs[i])))
		buf = append(buf, hdrs[i]...)
		buf = binary.AppendUvarint(buf, uint64(len(r.Data)))
		buf = append(buf, r.Data...)
	}
	return buf, nil
}

// DecodeBundle reads the records of a bundle. The records' data share
// b's memory.
func DecodeBundle(b []byte) ([]Record, error) {
	if len(b) == 0 || b[0] != bundleVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrBadBundle)
	}
	b = b[1:]
	var recs []Record
	for len(b) > 0 {
		h, rest, err := chunk(b)
		if err != nil {
			return nil, err
		}
		d, rest, err := chunk(rest)
		if err != nil {
			return nil, err
		}
		var r Record
		if err := json.Unmarshal(h, &r.Header); err != nil {
			return nil, fmt.Errorf("%w: record %d headers: %v", ErrBadBundle, len(recs), err)
		}
		r.Data = d
		recs = append(recs, r)
		b = rest
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrBadBundle)
	}
	return recs, nil
}

func chunk(b []byte) (data, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("%w: truncated", ErrBadBundle)
	}
	end := k + int(n)
	return b[k:end:end], b[end:], nil
}
