package stream

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sc := c.StreamConfig()
	if sc.Retention != jetstream.LimitsPolicy || sc.Storage != jetstream.FileStorage || sc.Duplicates != DefaultDuplicates {
		t.Fatalf("stream must be file-stored, purged by the worker (limits retention), with a dedup window: %+v", sc)
	}
	if c.EventSubject("123") != "linepipe.event.123" || c.AllSubjects() != "linepipe.>" {
		t.Fatal("subjects")
	}
	for _, bad := range []Config{{Stream: "a.b"}, {SubjectPrefix: "a>"}, {Replicas: 7}} {
		if bad.WithDefaults().Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestValidChannelID(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{"1234567890": true, "abc_DEF-1": true, "": false, "a.b": false, "a*": false, "a>": false, "a b": false} {
		if ValidChannelID(id) != ok {
			t.Errorf("ValidChannelID(%q) != %v", id, ok)
		}
	}
}

func TestAuthValidation(t *testing.T) {
	t.Parallel()
	good := []Auth{{}, {User: "ingest", Password: "pw"}, {CredsFile: "x.creds"}, {NKeySeedFile: "seed"},
		{TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem"}}
	for _, a := range good {
		if err := a.Validate(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	bad := []Auth{{User: "u", CredsFile: "x"}, {CredsFile: "x", NKeySeedFile: "y"}, {Password: "pw"}, {TLSCert: "c.pem"}}
	for _, a := range bad {
		if a.Validate() == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if _, err := (Auth{NKeySeedFile: "/nonexistent/seed"}).options(); err == nil {
		t.Error("a missing nkey seed file must fail at start")
	}
}
