package events

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
		// Headers repeating the previous record's, or not quite: a value
		// that differs, a second value, one value again, an unknown name.
		{Header: map[string][]string{HeaderChannel: {"1650000001"}, HeaderKind: {KindEvent}, "X-Other": {"a", "b"}}},
		{Header: map[string][]string{HeaderChannel: {"1650000001"}, HeaderKind: {KindEvent}, "X-Other": {"a"}}},
		{Header: map[string][]string{HeaderChannel: {"1650000002"}, HeaderKind: {KindEvent}, "X-Other": {"a", "c"}}},
		{Header: map[string][]string{HeaderChannel: {""}, HeaderKind: {}, "X-Other": {"a"}, msgIDHeader: {"m"}}},
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
		if !maps.EqualFunc(got[i].Header, recs[i].Header, slices.Equal) {
			t.Errorf("record %d headers %q, want %q", i, got[i].Header, recs[i].Header)
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
// same records. Of a bundle readable only up to a point, the records
// before it are exactly what the bytes before it decode to, and the rest
// is the bundle's last bytes.
func FuzzDecodeBundle(f *testing.F) {
	good := EncodeBundle([]Record{{Header: map[string][]string{"k": {"v"}}, Data: []byte("data")}})
	f.Add(good)
	f.Add([]byte{bundleVersion, 2, '{', '}', 0})
	f.Add(append(slices.Clone(good), good[1:len(good)-2]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeBundle(b)
		if bad := (*MalformedBundleError)(nil); errors.As(err, &bad) {
			if !errors.Is(err, ErrBadBundle) || len(bad.Rest) == 0 || !bytes.HasSuffix(b, bad.Rest) {
				t.Fatalf("malformed bundle: rest %q is not a non-empty tail of %q (%v)", bad.Rest, b, err)
			}
			if len(bad.Readable) == 0 {
				return
			}
			before, err := DecodeBundle(b[:len(b)-len(bad.Rest)])
			if err != nil || !slices.EqualFunc(before, bad.Readable, sameRecord) {
				t.Fatalf("the records before the damage: %v (%v), the bytes before it decode to %v", bad.Readable, err, before)
			}
			return
		}
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

// The bundle's own name for JetStream's deduplication header is
// JetStream's.
func TestBundleKnowsTheDedupHeader(t *testing.T) {
	t.Parallel()
	if msgIDHeader != jetstream.MsgIDHeader {
		t.Errorf("msgIDHeader %q, want %q", msgIDHeader, jetstream.MsgIDHeader)
	}
}

// BenchmarkDecodeBundle reads a bundle of 13 one-event webhooks of one
// channel, with the headers ingest writes.
func BenchmarkDecodeBundle(b *testing.B) {
	recs := make([]Record, 13)
	at := time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC)
	for i := range recs {
		h := map[string][]string{}
		Meta{ChannelID: "1650000001", Destination: "U0123456789abcdef0123456789abcdef", ReceivedAt: at.Add(time.Duration(i) * time.Millisecond),
			WebhookID: "01JEWEBHOOK000000000000" + string(rune('A'+i))}.SetHeaders(h)
		h[HeaderKind] = []string{KindEvent}
		h[msgIDHeader] = []string{"1650000001:01JEEVENT0000000000000000" + string(rune('A'+i))}
		h[HeaderWebhookLog] = []string{`{"webhookId":"01JEWEBHOOK000000000000","channelId":"1650000001","remoteIp":"203.0.113.7","receivedAt":"2026-12-03T13:00:00Z","method":"POST","path":"/webhook/1650000001","status":200,"eventCount":1}`}
		recs[i] = Record{Header: h, Data: []byte(`{"type":"message","message":{"type":"text","id":"468789577898262530","text":"Hello"},"webhookEventId":"01H810YECXQQZ37VAXPF6H9E6T"}`)}
	}
	bundle := EncodeBundle(recs)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBundle(bundle); err != nil {
			b.Fatal(err)
		}
	}
}

func sameRecord(a, b Record) bool {
	return bytes.Equal(a.Data, b.Data) && maps.EqualFunc(a.Header, b.Header, slices.Equal)
}

// A bundle damaged in its third record gives back the two before it,
// whole, and the bytes from the damage on; one damaged in its first
// gives back no record. A damaged length, which misframes what follows
// it, gives back only the records before the one it cut short.
func TestMalformedBundleKeepsWhatIsReadable(t *testing.T) {
	t.Parallel()
	rec := func(data string) Record {
		return Record{Header: map[string][]string{HeaderChannel: {"1650000001"}, HeaderKind: {KindEvent},
			msgIDHeader: {"1650000001:" + data}}, Data: []byte(data)}
	}
	recs := []Record{rec(`{"a":1}`), rec(`{"b":2}`), rec(`{"c":3}`)}
	whole := EncodeBundle(recs)
	third := len(EncodeBundle(recs[:2]))
	_, err := DecodeBundle(whole[:len(whole)-2])
	var bad *MalformedBundleError
	if !errors.As(err, &bad) || !errors.Is(err, ErrBadBundle) {
		t.Fatalf("truncated bundle: %v, want a MalformedBundleError", err)
	}
	if !slices.EqualFunc(bad.Readable, recs[:2], sameRecord) || !bytes.Equal(bad.Rest, whole[third:len(whole)-2]) {
		t.Errorf("readable %v, rest %q; want the first two records and the third's bytes", bad.Readable, bad.Rest)
	}
	_, err = DecodeBundle(whole[:6])
	if !errors.As(err, &bad) || len(bad.Readable) != 0 || !bytes.Equal(bad.Rest, whole[1:6]) {
		t.Errorf("damaged first record: %v; want nothing readable and the bytes after the version", err)
	}

	// The second record's data length, one less: its data is cut short
	// and the third is read from its last byte on.
	second := len(EncodeBundle(recs[:1]))
	at := third - len(recs[1].Data) - 1
	if whole[at] != byte(len(recs[1].Data)) {
		t.Fatalf("byte %d is %d, not the second record's data length", at, whole[at])
	}
	short := slices.Clone(whole)
	short[at]--
	_, err = DecodeBundle(short)
	if !errors.As(err, &bad) || !slices.EqualFunc(bad.Readable, recs[:1], sameRecord) || !bytes.Equal(bad.Rest, short[second:]) {
		t.Errorf("a damaged length: %v, readable %v, rest %q; want the first record and everything from the second on",
			err, bad.Readable, bad.Rest)
	}
}
