package openapi

import (
	"strings"
	"testing"
)

// TestLoad: the embedded definition states every limit this package
// reads, with the values LINE's reference documents.
func TestLoad(t *testing.T) {
	t.Parallel()
	l, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for ep := range Endpoints {
		if got := l.Messages[ep]; got != (Range{Min: 1, Max: 5}) {
			t.Errorf("%s messages %+v, want 1..5", ep, got)
		}
	}
	if l.MulticastTo != (Range{Min: 1, Max: 500}) {
		t.Errorf("multicast to %+v, want 1..500", l.MulticastTo)
	}
	if !strings.Contains(strings.Join(l.MessageTypes, ","), "text,textV2") || len(l.MessageTypes) < 10 {
		t.Errorf("message types %v", l.MessageTypes)
	}
}

// TestParseRefusesMissingLimits: a definition that stops stating a limit
// fails loudly instead of leaving the emulator without one.
func TestParseRefusesMissingLimits(t *testing.T) {
	t.Parallel()
	doc := strings.Replace(string(MessagingAPI()), "    MulticastRequest:", "    MulticastRequestRenamed:", 1)
	if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "MulticastRequest") {
		t.Fatalf("Parse without MulticastRequest: %v", err)
	}
	if _, err := Parse([]byte("components: [")); err == nil {
		t.Fatal("Parse accepted broken YAML")
	}
}
