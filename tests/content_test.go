package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
)

const mediaUser = "U4af4980629aaaaaaaaaaaaaaaaaaaaaa"

// An image and a file sent through the emulator end stored with the
// emulator's bytes; external content is recorded, never fetched; an id
// LINE does not know ends missing; every call is in api_log.
func TestContentStoredFromEmulator(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	r.startFetcher(r.fetcherConfig())

	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 300<<10)
	file := r.fake.MediaEvent(r.channel, mediaUser, "file", 1000)
	ext := r.fake.MediaEvent(r.channel, mediaUser, "image", 10)
	ext.Message.ContentProvider = &linefake.ContentProvider{Type: "external",
		OriginalContentURL: "https://example.com/a.jpg", PreviewImageURL: "https://example.com/a-p.jpg"}
	unknown := r.fake.TextEvent(r.channel, mediaUser, "x")
	unknown.Message = &linefake.EventMessage{ID: "499999999999999999", Type: "audio",
		ContentProvider: &linefake.ContentProvider{Type: "line"}}
	text := r.fake.TextEvent(r.channel, mediaUser, "no content here")
	r.webhook(img, file, ext, unknown, text)

	r.waitStatus(img.Message.ID, store.ContentStored)
	r.assertStored(img.Message.ID, 300<<10)
	if ct := r.row(img.Message.ID).ContentType; ct != "image/jpeg" {
		t.Errorf("content type %q", ct)
	}
	// The operator's command: worker content get <channel> <message>.
	var out bytes.Buffer
	env := config.FromMap(map[string]string{"NATS_URL": r.sc.URL, "CONTENT_BUCKET": r.bucket})
	if info, err := content.Get(context.Background(), env, r.channel, img.Message.ID, &out); err != nil ||
		fmt.Sprintf("%x", sha256.Sum256(out.Bytes())) != linefake.ContentSHA256(img.Message.ID, 300<<10) || info.ContentType != "image/jpeg" {
		t.Fatalf("content get: %v, %+v", err, info)
	}
	if _, err := content.Get(context.Background(), env, r.channel, "1", &out); err == nil {
		t.Fatal("content get of an unknown message succeeded")
	}
	r.waitStatus(file.Message.ID, store.ContentStored)
	r.assertStored(file.Message.ID, 1000)
	r.waitStatus(unknown.Message.ID, store.ContentMissing)
	r.waitStatus(ext.Message.ID, store.ContentExternal)
	if n := r.count(`SELECT count(*) FROM message_content WHERE message_id = $1
		AND original_url = 'https://example.com/a.jpg' AND preview_url = 'https://example.com/a-p.jpg'`, ext.Message.ID); n != 1 {
		t.Errorf("external URLs not recorded")
	}
	if n := r.count(`SELECT count(*) FROM message_content WHERE message_id = $1`, text.Message.ID); n != 0 {
		t.Errorf("a text message got a content row")
	}
	if n := r.count(`SELECT count(*) FROM api_log WHERE endpoint LIKE '%/' || $1 || '/content%'`, ext.Message.ID); n != 0 {
		t.Errorf("external content was fetched (%d calls)", n)
	}
	if n := r.count(`SELECT count(*) FROM api_log WHERE method = 'GET' AND status = 200 AND channel_id = $2
		AND endpoint = '/v2/bot/message/' || $1 || '/content' AND request_id IS NOT NULL`, img.Message.ID, r.channel); n != 1 {
		t.Errorf("api_log has %d successful content calls for the image, want 1", n)
	}
	if n := r.count(`SELECT count(*) FROM api_log WHERE status = 404 AND endpoint LIKE '%' || $1 || '/content'`, unknown.Message.ID); n != 1 {
		t.Errorf("api_log lacks the 404")
	}
	if n := r.count(`SELECT count(*) FROM outbox_rate WHERE channel_id = $1 AND bucket = 'get:content'`, r.channel); n != 1 {
		t.Errorf("content calls drew no slot from the channel's shared rate bucket")
	}
}

// A video first answers "preparing" (202, then transcoding processing),
// and ends stored once LINE has prepared it.
func TestContentVideoPreparingThenStored(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, time.Hour) // on the emulator's clock, which the test moves
	r.startFetcher(r.fetcherConfig())
	vid := r.fake.MediaEvent(r.channel, mediaUser, "video", 200<<10)
	r.webhook(vid)

	id := vid.Message.ID
	r.waitCount(1, `SELECT count(*) FROM api_log WHERE status = 202 AND endpoint = '/v2/bot/message/' || $1 || '/content'`, id)
	r.waitCount(1, `SELECT least(count(*), 1) FROM api_log WHERE status = 200 AND endpoint = '/v2/bot/message/' || $1 || '/content/transcoding'`, id)
	if row := r.row(id); (row.Status != store.ContentPending && row.Status != store.ContentProcessing) || row.Transcoding != "processing" {
		t.Fatalf("while preparing: %+v", row)
	}
	r.clock.Advance(time.Hour)
	r.waitStatus(id, store.ContentStored)
	r.assertStored(id, 200<<10)
	if row := r.row(id); row.Transcoding != "succeeded" || row.ContentType != "video/mp4" {
		t.Errorf("after preparing: %+v", row)
	}
}

// An unsend deletes the object and its bytes: no chunk is left in the
// bucket's stream, the row ends deleted without its digest, and LINE's
// 410 for the unsent message is never asked for.
func TestContentUnsendDeletesObject(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	r.startFetcher(r.fetcherConfig())
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 500<<10)
	r.webhook(img)
	r.waitStatus(img.Message.ID, store.ContentStored)
	if msgs, _ := r.chunkStats(); msgs == 0 {
		t.Fatal("no chunks stored")
	}
	r.webhook(r.fake.UnsendEvent(mediaUser, img.Message.ID))
	r.waitStatus(img.Message.ID, store.ContentDeleted)
	r.assertGone(img.Message.ID)
	if msgs, subjects := r.chunkStats(); msgs != 0 || subjects != 0 {
		t.Fatalf("%d chunk messages on %d subjects left after the unsend", msgs, subjects)
	}
}

// A fetch in flight when the unsend commits leaves no object: it finds
// the row unsent after its write, and deletes what it wrote.
func TestContentUnsendDuringFetch(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 1<<20)
	started, release := r.gate.hold(img.Message.ID)
	cfg := r.fetcherConfig()
	// No heartbeat falls inside the race: one would find the claim gone
	// and cut the download before its write, which is the other path.
	cfg.Lease = time.Minute
	r.startFetcher(cfg)
	r.webhook(img)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("download never started")
	}
	r.webhook(r.fake.UnsendEvent(mediaUser, img.Message.ID))
	r.waitStatus(img.Message.ID, store.ContentUnsent)
	release()
	r.waitStatus(img.Message.ID, store.ContentDeleted)
	r.assertGone(img.Message.ID)
	if msgs, _ := r.chunkStats(); msgs != 0 {
		t.Fatalf("%d chunk messages left", msgs)
	}
	if r.fake.ContentServed(img.Message.ID) != 1 {
		t.Fatal("the gated download did not complete: the race was not exercised")
	}
}

// TestContentFetchStoppedMidDownloadIsHandedBack: a fetcher stopped
// while a download runs (a deploy) hands the row back at once, pending
// and unclaimed, for the next fetcher, rather than leaving it claimed
// until CONTENT_LEASE ends; and the cut-off fetch uses up none of the
// row's CONTENT_MAX_ATTEMPTS. The next fetcher stores it.
func TestContentFetchStoppedMidDownloadIsHandedBack(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 1<<20)
	started, release := r.gate.hold(img.Message.ID)
	defer release()
	cfg := r.fetcherConfig()
	cfg.Lease = time.Hour
	stop := r.startFetcher(cfg)
	r.webhook(img)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("download never started")
	}
	stop()
	var claimed bool
	if err := r.db.Pool.QueryRow(context.Background(), `SELECT claim_id IS NOT NULL OR lease_until IS NOT NULL
		FROM message_content WHERE message_id = $1`, img.Message.ID).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if c := r.row(img.Message.ID); c.Status != store.ContentPending || claimed || c.Attempts != 0 {
		t.Fatalf("row after its fetcher stopped mid-download: %+v, claimed %v; want pending, unclaimed, no attempt counted", c, claimed)
	}
	release()
	r.startFetcher(r.fetcherConfig())
	r.waitStatus(img.Message.ID, store.ContentStored)
	r.assertStored(img.Message.ID, 1<<20)
}

// TestContentFetcherStoppedMidClaimLeavesNothingClaimed: a fetcher
// stopped under a backlog, whenever the stop lands (in the middle of a
// claim's round trip too), leaves no row claimed behind it: every row it
// took is stored or handed back before Run returns, none waits for
// CONTENT_LEASE. The stop is repeated at varied moments.
func TestContentFetcherStoppedMidClaimLeavesNothingClaimed(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	const media = 400
	var evs []linefake.WebhookEvent
	for range media {
		evs = append(evs, r.fake.MediaEvent(r.channel, mediaUser, "image", 1024))
	}
	for i := 0; i < media; i += 100 {
		r.webhook(evs[i : i+100]...)
	}
	r.waitCount(media, `SELECT count(*) FROM message_content`)
	cfg := r.fetcherConfig()
	cfg.Lease = time.Hour
	for i := range 16 {
		stop := r.startFetcher(cfg)
		time.Sleep(time.Duration(20+11*i) * time.Millisecond)
		stop()
		if n := r.count(`SELECT count(*) FROM message_content WHERE status = 'processing' OR claim_id IS NOT NULL`); n != 0 {
			t.Fatalf("stop %d: %d rows left claimed", i+1, n)
		}
	}
}

// A message unsent before any fetch is never downloaded: neither when
// its row waits for a fetcher, nor when the unsend arrives first.
func TestContentAlreadyUnsentNeverDownloads(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
	r.webhook(img)
	r.waitStatus(img.Message.ID, store.ContentPending)
	r.webhook(r.fake.UnsendEvent(mediaUser, img.Message.ID))
	r.waitStatus(img.Message.ID, store.ContentUnsent)

	early := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
	r.webhook(r.fake.UnsendEvent(mediaUser, early.Message.ID))
	r.waitCount(1, `SELECT count(*) FROM unsent_messages WHERE message_id = $1`, early.Message.ID)
	r.webhook(early)
	r.waitCount(1, `SELECT count(*) FROM events WHERE message_id = $1 AND type = 'message'`, early.Message.ID)

	r.startFetcher(r.fetcherConfig())
	r.waitStatus(img.Message.ID, store.ContentDeleted)
	for _, id := range []string{img.Message.ID, early.Message.ID} {
		if n := r.count(`SELECT count(*) FROM api_log WHERE endpoint LIKE '%/' || $1 || '/content%'`, id); n != 0 {
			t.Errorf("message %s unsent before its fetch was requested %d times", id, n)
		}
		if r.fake.ContentServed(id) != 0 {
			t.Errorf("content of %s was served", id)
		}
	}
	if n := r.count(`SELECT count(*) FROM message_content WHERE message_id = $1`, early.Message.ID); n != 0 {
		t.Errorf("a message stored after its unsend got a content row")
	}
}

// A download cut off mid-stream (500s, 429s and torn bodies from the
// emulator) is retried until the one object holds the right bytes; a
// content larger than the bound ends failed and leaves nothing.
func TestContentFaultsAndBound(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	if err := r.fake.SetContentFaults(linefake.Faults{FailRate: 0.2, TooManyRate: 0.2, DropRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	cfg := r.fetcherConfig()
	cfg.MaxBytes = 400 << 10
	r.startFetcher(cfg)
	var ids []string
	var evs []linefake.WebhookEvent
	for i := 0; i < 4; i++ {
		e := r.fake.MediaEvent(r.channel, mediaUser, "image", 256<<10)
		ids, evs = append(ids, e.Message.ID), append(evs, e)
	}
	big := r.fake.MediaEvent(r.channel, mediaUser, "file", 401<<10)
	r.webhook(append(evs, big)...)
	for _, id := range ids {
		r.waitStatus(id, store.ContentStored)
		r.assertStored(id, 256<<10)
	}
	r.waitStatus(big.Message.ID, store.ContentFailed)
	if _, err := r.objs.Stat(context.Background(), content.ObjectName(r.channel, big.Message.ID)); err != content.ErrNoObject {
		t.Errorf("oversized content left an object: %v", err)
	}
	msgs, subjects := r.chunkStats()
	if subjects != len(ids) || msgs != uint64(len(ids)*2) { // 256 KiB = two 128 KiB chunks
		t.Errorf("bucket holds %d chunks on %d subjects, want exactly the %d objects' %d", msgs, subjects, len(ids), len(ids)*2)
		s, _ := r.js.Stream(context.Background(), "OBJ_"+r.bucket)
		info, _ := s.Info(context.Background(), jetstream.WithSubjectFilter(">"))
		t.Logf("subjects: %v", info.State.Subjects)
	}
	if n := r.count(`SELECT count(*) FROM api_log WHERE status IN (0, 429, 500) OR (status = 200 AND error IS NOT NULL)`); n == 0 {
		t.Error("no fault was exercised")
	}
}
