package tests

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/stream"
)

// TestContentFetcherChild is the fetcher process the kill test starts and
// kills; it does nothing unless started that way.
func TestContentFetcherChild(t *testing.T) {
	if os.Getenv("LINEPIPE_CONTENT_CHILD") != "1" {
		return
	}
	ctx := context.Background()
	pool, err := store.Open(ctx, os.Getenv("CHILD_DATABASE_URL"), 4)
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := stream.Connect(stream.Config{URL: os.Getenv("CHILD_NATS_URL")}, "child", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := content.Config{BaseURL: os.Getenv("CHILD_API_URL"), Bucket: os.Getenv("CHILD_BUCKET"),
		PollInterval: 50 * time.Millisecond, HTTPTimeout: 2 * time.Second, Lease: 12 * time.Second, Owner: "child"}
	f, err := content.New(cfg, pool, js, staticTokens{})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Run(ctx) // until killed
}

// A fetcher killed (SIGKILL) mid-download, after part of the object was
// written, leaves the row to another fetcher once its lease ends; the end
// is exactly one object with the right bytes.
func TestContentKilledMidDownload(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	const size = 1 << 20
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", size)
	r.gate.after = 400 << 10 // three 128 KiB chunks are in the bucket when the fetcher dies
	started, release := r.gate.hold(img.Message.ID)
	defer release()

	cmd := exec.Command(os.Args[0], "-test.run=^TestContentFetcherChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LINEPIPE_CONTENT_CHILD=1", "CHILD_DATABASE_URL="+r.db.URL,
		"CHILD_NATS_URL="+r.sc.URL, "CHILD_BUCKET="+r.bucket, "CHILD_API_URL="+linefake.DataURL(r.api.URL))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.webhook(img)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the child never started the download")
	}
	r.waitStatus(img.Message.ID, store.ContentProcessing)
	time.Sleep(300 * time.Millisecond) // let the child publish what it read
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if msgs, _ := r.chunkStats(); msgs == 0 {
		t.Fatal("the child wrote no chunk before it died: the crash was not mid-write")
	}

	r.startFetcher(r.fetcherConfig())
	deadline := time.Now().Add(60 * time.Second)
	for r.row(img.Message.ID).Status != store.ContentStored {
		if time.Now().After(deadline) {
			t.Fatalf("row %+v after the lease", r.row(img.Message.ID))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.assertStored(img.Message.ID, size)
	if row := r.row(img.Message.ID); row.Attempts != 1 {
		t.Errorf("attempts %d: want the one recorded attempt of the second fetcher", row.Attempts)
	}
	if n := r.objectCount(); n != 1 {
		t.Fatalf("%d objects in the bucket, want 1", n)
	}
	// The dead put's chunks are orphans; the sweep takes them (age 0 here:
	// no put is in progress) and leaves the object's eight.
	if msgs, _ := r.chunkStats(); msgs <= 8 {
		t.Fatalf("%d chunks before the sweep: the dead put left none", msgs)
	}
	if n, err := r.objs.PurgeOrphans(context.Background(), 0); err != nil || n != 1 {
		t.Fatalf("purged %d orphaned puts (%v), want 1", n, err)
	}
	if msgs, subjects := r.chunkStats(); msgs != 8 || subjects != 1 {
		t.Fatalf("%d chunks on %d subjects after the sweep, want the object's 8 on 1", msgs, subjects)
	}
	r.assertStored(img.Message.ID, size)
}
