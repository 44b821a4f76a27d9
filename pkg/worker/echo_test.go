package worker

import (
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

func TestTruncateUTF16KeepsSurrogatePairsWhole(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("a", 4999) + "😀" + "b" // the emoji is two UTF-16 units
	got := truncateUTF16(s, 5000)
	if got != strings.Repeat("a", 4999) {
		t.Fatalf("cut into a surrogate pair: %d units", len(utf16.Encode([]rune(got))))
	}
	if truncateUTF16("short", 5000) != "short" {
		t.Fatal("short text changed")
	}
}

func TestReplyDeadline(t *testing.T) {
	t.Parallel()
	recv := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	if got := replyDeadline(recv, recv.Add(-time.Second), false); !got.Equal(recv.Add(time.Minute)) {
		t.Fatalf("first delivery: %s", got)
	}
	// A redelivery 19m30s after the event: 20 minutes after the event comes first.
	occurred := recv.Add(-19*time.Minute - 30*time.Second)
	if got := replyDeadline(recv, occurred, true); !got.Equal(occurred.Add(20 * time.Minute)) {
		t.Fatalf("late redelivery: %s", got)
	}
	if got := replyDeadline(recv, recv.Add(-time.Minute), true); !got.Equal(recv.Add(time.Minute)) {
		t.Fatalf("early redelivery: %s", got)
	}
}

func TestRedeliveryDelayBacksOffToAMinute(t *testing.T) {
	t.Parallel()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := redeliveryDelay(uint64(i + 1)); got != w {
			t.Errorf("delivery %d: %s, want %s", i+1, got, w)
		}
	}
	if got := redeliveryDelay(100); got != time.Minute {
		t.Errorf("cap: %s", got)
	}
}
