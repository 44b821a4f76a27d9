package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linepipe/linepipe/pkg/loadgen"
)

func TestCommandDrivesNoopServerAndWritesRecord(t *testing.T) {
	t.Parallel()
	chans := []loadgen.Channel{{ID: "1656000001", Secret: "8c570fa6dd201bb328f1c1eac23a96d8"}}
	s, err := loadgen.StartNoopServer("127.0.0.1:0", chans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	record := filepath.Join(t.TempDir(), "record.jsonl")

	var out, errOut bytes.Buffer
	code := run([]string{"-url", s.URL, "-channels", "1656000001:8c570fa6dd201bb328f1c1eac23a96d8",
		"-requests", "50", "-concurrency", "2", "-events-per-request", "2", "-retries", "0",
		"-json", "-record", record}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep struct {
		Requests       int64            `json:"requests"`
		EventsAccepted int64            `json:"eventsAccepted"`
		Status         map[string]int64 `json:"status"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, out.String())
	}
	if rep.Requests != 50 || rep.Status["200"] != 50 || rep.EventsAccepted != 100 {
		t.Errorf("report %+v: want 50 requests answered 200 carrying 100 events", rep)
	}
	f, err := os.Open(record)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := loadgen.ReadRecord(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Accepted) != 100 {
		t.Errorf("record file holds %d accepted events, want 100", len(rec.Accepted))
	}
	if strings.Contains(errOut.String(), chans[0].Secret) || strings.Contains(out.String(), chans[0].Secret) {
		t.Error("the channel secret was printed")
	}
}

func TestCommandRejectsBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-channels", "1:s", "-rate", "10", "-concurrency", "2"},
		{"-channels", "1:s", "-mix", "things=1"},
		{"-channels", ""},
		{"-channels", "1:s", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
}
