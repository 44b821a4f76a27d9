package tests

import (
	"context"
	"testing"
	"time"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
)

// A download slower than the lease keeps its claim: the fetcher's
// heartbeat extends the lease while the bytes flow, so the second fetcher
// never takes the row over, LINE is asked once, and exactly one object
// results.
func TestContentSlowDownloadKeepsItsLease(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	const size = 1 << 20
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", size)
	id := img.Message.ID
	// 32 KiB every 450 ms: about 15 s in all, past the 12 s lease, with
	// no pause near CONTENT_HTTP_TIMEOUT and a whole chunk every 2 s.
	r.pacer.slow(id, 32<<10, 450*time.Millisecond)
	a, b := r.fetcherConfig(), r.fetcherConfig()
	a.Owner, b.Owner = "fetcher-a", "fetcher-b"
	r.startFetcher(a)
	r.startFetcher(b)
	r.webhook(img)

	claims := map[string]bool{}
	var first time.Time
	extended := false
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the content was not stored within 90s")
		}
		var status, claim string
		var left float64
		if err := r.db.Pool.QueryRow(context.Background(), `SELECT status, coalesce(claim_id::text, ''),
				coalesce(extract(epoch FROM lease_until - clock_timestamp()), 0)
			FROM message_content WHERE message_id = $1`, id).Scan(&status, &claim, &left); err != nil {
			continue // the worker has not stored the message yet
		}
		if status == store.ContentProcessing {
			claims[claim] = true
			if first.IsZero() {
				first = time.Now()
			}
			if time.Since(first) > a.Lease && left > 0 {
				extended = true
			}
		}
		if status != store.ContentPending && status != store.ContentProcessing {
			break
		}
	}
	if took := time.Since(first); took <= a.Lease {
		t.Fatalf("the download took %s, within the %s lease: the heartbeat was not exercised", took, a.Lease)
	}
	if len(claims) != 1 || !extended {
		t.Fatalf("claims %v, lease extended past its first end %v: want one claim, held throughout", claims, extended)
	}
	r.assertStored(id, size)
	if row := r.row(id); row.Attempts != 1 {
		t.Errorf("%d attempts, want 1", row.Attempts)
	}
	// The emulator counts a body once its handler returns, a moment
	// after the client has it all.
	for deadline := time.Now().Add(5 * time.Second); r.fake.ContentServed(id) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.fake.ContentServed(id); n != 1 {
		t.Errorf("LINE served the content %d times, want 1", n)
	}
	if n := r.count(`SELECT count(*) FROM api_log WHERE endpoint = '/v2/bot/message/' || $1 || '/content'`, id); n != 1 {
		t.Errorf("%d content calls, want 1", n)
	}
	if n := r.objectCount(); n != 1 {
		t.Errorf("%d objects, want 1", n)
	}
	if msgs, subjects := r.chunkStats(); msgs != size/content.ChunkSize || subjects != 1 {
		t.Errorf("%d chunk messages on %d subjects, want %d on 1", msgs, subjects, size/content.ChunkSize)
	}
}

// A fetcher that lost its claim cannot extend it: when another owner
// holds the row, the heartbeat's fenced update changes nothing, and the
// download is cut at once, leaving no object and the new owner's lease
// as it was.
func TestContentLostClaimIsNotExtended(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	const size = 1 << 20
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", size)
	id := img.Message.ID
	r.pacer.slow(id, 32<<10, 450*time.Millisecond)
	r.startFetcher(r.fetcherConfig())
	r.webhook(img)
	r.waitStatus(id, store.ContentProcessing)
	time.Sleep(time.Second) // some chunks are written

	// Another owner takes the row, as a fetcher whose claim followed an
	// ended lease would.
	var lease time.Time
	if err := r.db.Pool.QueryRow(context.Background(), `UPDATE message_content
		SET claim_id = gen_random_uuid(), claimed_by = 'intruder', lease_until = clock_timestamp() + interval '1 hour'
		WHERE message_id = $1 AND status = 'processing' RETURNING lease_until`, id).Scan(&lease); err != nil {
		t.Fatal(err)
	}
	r.waitCount(1, `SELECT count(*) FROM api_log WHERE endpoint = '/v2/bot/message/' || $1 || '/content'
		AND error = $2`, id, store.ErrContentClaimLost.Error())
	var owner string
	var now time.Time
	if err := r.db.Pool.QueryRow(context.Background(), `SELECT claimed_by, lease_until FROM message_content
		WHERE message_id = $1 AND status = 'processing'`, id).Scan(&owner, &now); err != nil || owner != "intruder" || !now.Equal(lease) {
		t.Fatalf("after the loss: owner %q lease %s (%v), want the intruder's %s untouched", owner, now, err, lease)
	}
	if n := r.fake.ContentServed(id); n != 0 {
		t.Errorf("the cut download was served whole %d times", n)
	}
	if _, err := r.objs.Stat(context.Background(), content.ObjectName(r.channel, id)); err != content.ErrNoObject {
		t.Errorf("object after the cut: %v, want none", err)
	}
	waitChunks(t, r, 0)
}

// A message unsent while its slow download runs stops being downloaded
// at the next heartbeat, which finds the claim gone: the row ends
// deleted long before the body would have ended, and nothing is left.
func TestContentUnsendStopsSlowDownload(t *testing.T) {
	t.Parallel()
	r := newContentRig(t, 0)
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 1<<20)
	id := img.Message.ID
	r.pacer.slow(id, 32<<10, 450*time.Millisecond) // about 15 s in all
	r.startFetcher(r.fetcherConfig())
	r.webhook(img)
	r.waitStatus(id, store.ContentProcessing)
	start := time.Now()
	r.webhook(r.fake.UnsendEvent(mediaUser, id))
	r.waitStatus(id, store.ContentDeleted)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the unsent content's download ran %s after the unsend, want it cut at the next heartbeat", took)
	}
	r.assertGone(id)
	if n := r.fake.ContentServed(id); n != 0 {
		t.Errorf("the unsent content was served whole %d times", n)
	}
	waitChunks(t, r, 0)
}

// LINE's 429 on the data API is retried with exponential backoff, never
// at once, until the content is stored. The emulator's own limit is what
// answers 429 here (the fetcher's rate buckets are off).
func TestContentBacksOffOn429(t *testing.T) {
	t.Parallel()
	r := newContentRigWith(t, 0, func(c *linefake.Config) {
		// Two requests, then nothing until the test moves the clock.
		c.RateLimits.Other = linefake.Limit{Requests: 2, Per: time.Hour}
	})
	cfg := r.fetcherConfig()
	cfg.RateLimit = -1
	cfg.BackoffBase, cfg.BackoffMax = 200*time.Millisecond, 2*time.Second
	r.startFetcher(cfg)
	var ids []string
	var evs []linefake.WebhookEvent
	for range 3 {
		e := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
		ids, evs = append(ids, e.Message.ID), append(evs, e)
	}
	r.webhook(evs...)
	r.waitCount(2, `SELECT count(*) FROM message_content WHERE status = 'stored'`)
	r.waitCount(1, `SELECT (count(*) >= 4)::int FROM api_log WHERE status = 429`)
	var limited string
	if err := r.db.Pool.QueryRow(context.Background(), `SELECT message_id FROM message_content WHERE status <> 'stored'`).
		Scan(&limited); err != nil {
		t.Fatal(err)
	}
	rows, err := r.db.Pool.Query(context.Background(), `SELECT called_at, status FROM api_log
		WHERE endpoint = '/v2/bot/message/' || $1 || '/content' ORDER BY called_at`, limited)
	if err != nil {
		t.Fatal(err)
	}
	var calls []time.Time
	for rows.Next() {
		var at time.Time
		var status int
		if err := rows.Scan(&at, &status); err != nil {
			t.Fatal(err)
		}
		if status != 429 {
			t.Fatalf("call %d of the limited message answered %d, want 429", len(calls)+1, status)
		}
		calls = append(calls, at)
	}
	if len(calls) < 4 {
		t.Fatalf("%d calls for the limited message, want at least 4", len(calls))
	}
	// After the nth 429 the next call waits base·2^(n-1), less 20% jitter.
	for n := 1; n < 4; n++ {
		want := time.Duration(float64(min(cfg.BackoffBase<<(n-1), cfg.BackoffMax)) * 0.8)
		if gap := calls[n].Sub(calls[n-1]); gap < want {
			t.Errorf("call %d came %s after the 429 before it, want at least %s of backoff", n+1, gap, want)
		}
	}
	r.clock.Advance(time.Hour) // LINE's bucket refills
	r.waitStatus(limited, store.ContentStored)
	for _, id := range ids {
		r.assertStored(id, 1000)
	}
	if st := r.fake.Stats(); st.Count(linefake.EndpointContent, 429) < 4 || st.Count(linefake.EndpointContent, 200) != 3 {
		t.Errorf("emulator answers %v, want 3 bodies and the 429s", st.Requests[linefake.EndpointContent])
	}
}

// waitChunks waits until the bucket holds want chunk messages.
func waitChunks(t *testing.T, r *contentRig, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		msgs, _ := r.chunkStats()
		if msgs == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bucket holds %d chunk messages, want %d", msgs, want)
		}
	}
}
