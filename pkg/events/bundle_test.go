package events

import (
	"bytes"
	"errors"
	"testing"
)

// A bundle gives back each record's headers and its bytes exactly, raw
// event bytes included (whitespace, escapes and key order as LINE sent).
func TestBundleRoundTrip(t *testing.T) {
	t.Parallel()
	recs := []Record{
		{Header: map[string][]string{HeaderChannel: {"1650000001"}, HeaderKind: {KindEvent}},
			Data: []byte("{ \"type\" : \"message\",\n\"z\":1, \"a\":\"\\u3042\" }")},
		{Header: map[string][]string{HeaderKind: {KindWebhookLog}}, Data: []byte(`{"webhookId":"w"}`)},
		{Header: map[string][]string{}, Data: nil},
	}
	got, err := DecodeBundle(EncodeBundle(recs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records back, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i].Data, recs[i].Data) {
			t.Errorf("record %d data %q, want %q", i, got[i].Data, recs[i].Data)
		}
		for k, v := range recs[i].Header {
			if HeaderValue(got[i].Header, k) != v[0] {
				t.Errorf("record %d header %s = %q, want %q", i, k, HeaderValue(got[i].Header, k), v[0])
			}
		}
	}
}

// Truncated, empty or foreign bytes are an error, never a short read.
func TestBundleRejectsMalformed(t *testing.T) {
	t.Parallel()
	good := EncodeBundle([]Record{{Header: map[string][]string{"k": {"v"}}, Data: []byte("data")}})
	for name, b := range map[string][]byte{
		"empty":            nil,
		"version only":     {bundleVersion},
		"other version":    append([]byte{2}, good[1:]...),
		"truncated data":   good[:len(good)-1],
		"truncated sizes":  good[:2],
		"bad header count": {bundleVersion, 9, 1, 'k'},
		"huge length":      {bundleVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := DecodeBundle(b); !errors.Is(err, ErrBadBundle) {
			t.Errorf("%s: %v, want ErrBadBundle", name, err)
		}
	}
	// Only a later format is ErrNewerBundle: the worker keeps those on the
	// stream for a newer worker and dead-letters the rest.
	for name, c := range map[string]struct {
		b     []byte
		newer bool
	}{
		"next version":     {append([]byte{bundleVersion + 1}, good[1:]...), true},
		"version zero":     {append([]byte{0}, good[1:]...), false},
		"truncated data":   {good[:len(good)-1], false},
		"empty":            {nil, false},
		"this version, ok": {good, false},
	} {
		if _, err := DecodeBundle(c.b); errors.Is(err, ErrNewerBundle) != c.newer {
			t.Errorf("%s: %v, newer format %v", name, err, c.newer)
		}
	}
}

// DecodeBundle never panics, and whatever it reads encodes back to the
// same records.
func FuzzDecodeBundle(f *testing.F) {
	good := EncodeBundle([]Record{{Header: map[string][]string{"k": {"v"}}, Data: []byte("data")}})
	f.Add(good)
	f.Add([]byte{bundleVersion, 2, '{', '}', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeBundle(b)
		if err != nil {
			return
		}
		back, err := DecodeBundle(EncodeBundle(recs))
		if err != nil || len(back) != len(recs) {
			t.Fatalf("re-encoded bundle: %d records, %v; want %d", len(back), err, len(recs))
		}
		for i := range recs {
			if !bytes.Equal(back[i].Data, recs[i].Data) {
				t.Fatalf("record %d changed on re-encoding", i)
			}
		}
	})
}
