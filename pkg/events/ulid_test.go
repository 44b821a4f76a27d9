package events

import (
	"testing"
	"time"
)

func TestULID(t *testing.T) {
	t.Parallel()
	var max [10]byte
	for i := range max {
		max[i] = 0xff
	}
	if got := ULID(1<<48-1, max); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Fatalf("largest ULID: %s", got)
	}
	at := time.UnixMilli(1462629479859).UTC()
	id := ULID(uint64(at.UnixMilli()), [10]byte{1, 2, 3})
	if got, ok := ULIDTime(id); !ok || !got.Equal(at) {
		t.Fatalf("ULIDTime(%s) = %s %v", id, got, ok)
	}
	if _, ok := ULIDTime("01FZ74A0TDDPYRVKNK77XKC3ZR"); !ok {
		t.Fatal("LINE's example id rejected")
	}
	for _, bad := range []string{"01FZ74A0TDDPYRVKNK77XKC3ZU", "81FZ74A0TDDPYRVKNK77XKC3ZR", "short"} {
		if _, ok := ULIDTime(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
