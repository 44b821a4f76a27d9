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
	// As LINE's reference lists each message object's required fields.
	for typ, want := range map[string]string{
		"text":     "text,type",
		"sticker":  "packageId,stickerId,type",
		"image":    "originalContentUrl,previewImageUrl,type",
		"audio":    "duration,originalContentUrl,type",
		"location": "address,latitude,longitude,title,type",
		"flex":     "altText,contents,type",
		"template": "altText,template,type",
		"coupon":   "couponId,type",
	} {
		if got := strings.Join(l.Required[typ], ","); got != want {
			t.Errorf("%s requires %s, want %s", typ, got, want)
		}
	}
	if len(l.Required) != len(l.MessageTypes) {
		t.Errorf("required properties for %d of %d message types", len(l.Required), len(l.MessageTypes))
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
