package tests

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/store"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// retentionFetcher runs a fetcher as the sender's database role, with no
// retention rounds of its own: the test calls RetainOnce.
func (r *contentRig) retentionFetcher() *content.Fetcher {
	r.t.Helper()
	cfg := r.fetcherConfig()
	cfg.RetentionInterval = -1
	f, _ := r.runFetcher(cfg, r.db.RolePool(r.t, store.RoleSender))
	return f
}

// backdate moves the rows of ids ago into the past.
func (r *contentRig) backdate(ago string, ids ...string) {
	r.t.Helper()
	if _, err := r.db.Pool.Exec(context.Background(), `UPDATE message_content SET created_at = now() - $1::interval
		WHERE message_id = ANY($2)`, ago, ids); err != nil {
		r.t.Fatal(err)
	}
}

// assertConsistent checks the promise content retention keeps at every
// step: no row claims 'stored' without its object, and no object is in
// the bucket without a row.
func (r *contentRig) assertConsistent() {
	r.t.Helper()
	ctx := context.Background()
	names, err := r.objs.List(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	objects := map[string]bool{}
	for _, n := range names {
		objects[n] = true
		if c := r.count(`SELECT count(*) FROM message_content WHERE channel_id || '/' || message_id = $1`, n); c != 1 {
			r.t.Errorf("object %s has no message_content row", n)
		}
	}
	rows, err := r.db.Pool.Query(ctx, `SELECT channel_id, message_id FROM message_content WHERE status = 'stored'`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ch, id string
		if err := rows.Scan(&ch, &id); err != nil {
			r.t.Fatal(err)
		}
		if !objects[content.ObjectName(ch, id)] {
			r.t.Errorf("row %s/%s claims stored, its object is gone", ch, id)
		}
	}
}

// Content past its retention leaves the bucket and message_content:
// stored objects and their chunks, and the rows of every settled status.
// Fresh content, a fetch in progress and an unsend in progress stay. The
// keep is the operator's: a shorter one applies at the next round, and
// without a retention row content is kept forever. The fetcher runs as
// the sender's database role, so its grants are what is tested.
func TestContentRetentionDeletesObjectsThenRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newContentRig(t, 0)
	f := r.retentionFetcher()

	old1 := r.fake.MediaEvent(r.channel, mediaUser, "image", 300<<10)
	old2 := r.fake.MediaEvent(r.channel, mediaUser, "file", 1000)
	fresh := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
	ext := r.fake.MediaEvent(r.channel, mediaUser, "image", 10)
	ext.Message.ContentProvider = &linefake.ContentProvider{Type: "external", OriginalContentURL: "https://example.com/a.jpg"}
	missing := r.fake.TextEvent(r.channel, mediaUser, "x")
	missing.Message = &linefake.EventMessage{ID: "499999999999999998", Type: "image",
		ContentProvider: &linefake.ContentProvider{Type: "line"}}
	r.webhook(old1, old2, fresh, ext, missing)
	for _, id := range []string{old1.Message.ID, old2.Message.ID, fresh.Message.ID} {
		r.waitStatus(id, store.ContentStored)
	}
	r.waitStatus(ext.Message.ID, store.ContentExternal)
	r.waitStatus(missing.Message.ID, store.ContentMissing)
	// A fetch in progress and an unsend in progress, both long past the
	// keep: they settle first.
	if _, err := r.db.Pool.Exec(ctx, `INSERT INTO message_content
		(channel_id, message_id, message_type, status, claim_id, lease_until, next_attempt_at, created_at) VALUES
		($1, 'busy', 'image', 'processing', gen_random_uuid(), now() + interval '1 hour', now(), now() - interval '1 year'),
		($1, 'unsending', 'image', 'unsent', NULL, NULL, now() + interval '1 hour', now() - interval '1 year')`, r.channel); err != nil {
		t.Fatal(err)
	}
	old := []string{old1.Message.ID, old2.Message.ID, ext.Message.ID, missing.Message.ID}
	r.backdate("91 days", old...)
	r.backdate("89 days", fresh.Message.ID)

	deleted, ran, err := f.RetainOnce(ctx)
	if err != nil || !ran || deleted != 4 {
		t.Fatalf("round: deleted %d, ran %v, %v; want the 4 expired rows", deleted, ran, err)
	}
	for _, id := range old {
		if n := r.count(`SELECT count(*) FROM message_content WHERE message_id = $1`, id); n != 0 {
			t.Errorf("expired row %s is still there", id)
		}
		if _, err := r.objs.Stat(ctx, content.ObjectName(r.channel, id)); err != content.ErrNoObject {
			t.Errorf("object of expired %s: %v, want none", id, err)
		}
	}
	r.assertStored(fresh.Message.ID, 1000)
	if n := r.count(`SELECT count(*) FROM message_content WHERE message_id IN ('busy', 'unsending')
		AND status IN ('processing', 'unsent')`); n != 2 {
		t.Errorf("%d of the rows in progress are left as they were, want 2", n)
	}
	if msgs, subjects := r.chunkStats(); msgs != 1 || subjects != 1 {
		t.Errorf("bucket holds %d chunks on %d subjects, want the fresh image's one", msgs, subjects)
	}
	r.assertConsistent()

	// The operator shortens the keep: it applies at the next round.
	if _, err := r.db.Pool.Exec(ctx, `UPDATE retention SET keep = '1 hour' WHERE table_name = 'message_content'`); err != nil {
		t.Fatal(err)
	}
	r.backdate("2 hours", fresh.Message.ID)
	if deleted, _, err = f.RetainOnce(ctx); err != nil || deleted != 1 {
		t.Fatalf("round after the shorter keep: %d, %v; want 1", deleted, err)
	}
	if n := r.objectCount(); n != 0 {
		t.Errorf("%d objects left, want none", n)
	}
	// Without a retention row nothing expires, however old.
	if _, err := r.db.Pool.Exec(ctx, `DELETE FROM retention WHERE table_name = 'message_content'`); err != nil {
		t.Fatal(err)
	}
	kept := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
	r.webhook(kept)
	r.waitStatus(kept.Message.ID, store.ContentStored)
	r.backdate("10 years", kept.Message.ID)
	if deleted, _, err = f.RetainOnce(ctx); err != nil || deleted != 0 {
		t.Fatalf("round without a retention row: %d, %v; want 0", deleted, err)
	}
	r.assertStored(kept.Message.ID, 1000)
}

// A round cut short at either step leaves nothing inconsistent, and the
// next round finishes it: after the expire step the rows no longer claim
// 'stored'; a purge cut after deleting an object leaves its row
// 'expired'; a completed round leaves neither row nor object.
func TestContentRetentionCrashSafe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newContentRig(t, 0)
	f := r.retentionFetcher()
	sender := r.db.RolePool(t, store.RoleSender)
	a := r.fake.MediaEvent(r.channel, mediaUser, "image", 200<<10)
	b := r.fake.MediaEvent(r.channel, mediaUser, "image", 200<<10)
	r.webhook(a, b)
	r.waitStatus(a.Message.ID, store.ContentStored)
	r.waitStatus(b.Message.ID, store.ContentStored)
	r.backdate("91 days", a.Message.ID, b.Message.ID)

	// Killed after the expire step.
	if n, err := store.ExpireContent(ctx, sender, content.RetentionBatch); err != nil || n != 2 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if n := r.count(`SELECT count(*) FROM message_content WHERE status = 'expired'`); n != 2 {
		t.Fatalf("%d rows expired, want 2", n)
	}
	if n := r.objectCount(); n != 2 {
		t.Fatalf("%d objects, want both still there", n)
	}
	r.assertConsistent()

	// Killed in the purge, after the first object went and before any
	// row did.
	errKilled := errors.New("killed")
	first := true
	_, err := store.PurgeExpiredContent(ctx, sender, content.RetentionBatch, func(ctx context.Context, k store.MessageKey) error {
		if !first {
			return errKilled
		}
		first = false
		return r.objs.Delete(ctx, content.ObjectName(k.ChannelID, k.MessageID))
	})
	if !errors.Is(err, errKilled) {
		t.Fatalf("purge: %v, want the kill", err)
	}
	if n := r.count(`SELECT count(*) FROM message_content WHERE status = 'expired'`); n != 2 {
		t.Fatalf("%d rows left expired after the cut purge, want 2", n)
	}
	if n := r.objectCount(); n != 1 {
		t.Fatalf("%d objects after the cut purge, want 1", n)
	}
	r.assertConsistent()

	// The next round finishes: a missing object is no error.
	deleted, ran, err := f.RetainOnce(ctx)
	if err != nil || !ran || deleted != 2 {
		t.Fatalf("next round: deleted %d, ran %v, %v; want 2", deleted, ran, err)
	}
	if n := r.count(`SELECT count(*) FROM message_content`); n != 0 {
		t.Errorf("%d rows left", n)
	}
	if n := r.objectCount(); n != 0 {
		t.Errorf("%d objects left", n)
	}
	if msgs, subjects := r.chunkStats(); msgs != 0 || subjects != 0 {
		t.Errorf("%d chunks on %d subjects left", msgs, subjects)
	}
}

// One fetcher replica at a time runs a round: while another session
// holds the round's lock, RetainOnce does nothing.
func TestContentRetentionOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newContentRig(t, 0)
	f := r.retentionFetcher()
	img := r.fake.MediaEvent(r.channel, mediaUser, "image", 1000)
	r.webhook(img)
	r.waitStatus(img.Message.ID, store.ContentStored)
	r.backdate("91 days", img.Message.ID)
	conn, err := r.db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The lock key pkg/content's RetainOnce takes.
	const lock = `hashtext('linepipe.content-retention:' || current_schema())`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lock+`)`); err != nil {
		t.Fatal(err)
	}
	if deleted, ran, err := f.RetainOnce(ctx); err != nil || ran || deleted != 0 {
		t.Fatalf("round beside another: deleted %d, ran %v, %v", deleted, ran, err)
	}
	r.assertStored(img.Message.ID, 1000)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(`+lock+`)`); err != nil {
		t.Fatal(err)
	}
	if deleted, ran, err := f.RetainOnce(ctx); err != nil || !ran || deleted != 1 {
		t.Fatalf("round after the lock was freed: deleted %d, ran %v, %v", deleted, ran, err)
	}
}

// As deployed: the fetcher's own rounds (every RETENTION_INTERVAL) delete
// expired content as the sender's Postgres role and NATS user, in the
// default bucket, with no permission beyond those the sender already
// had. The worker's NATS user, whose janitor enforces the other tables,
// cannot reach the bucket at all.
func TestContentRetentionAsDeployed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.NewDB(t)
	names := testenv.NewNames()
	srv := testenv.NewAuthNATS(t, names)
	connect := func(user string, pw string) *stream.Config {
		c := stream.Config{URL: srv.URL, Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
		c.Auth = stream.Auth{User: user, Password: pw}
		return &c
	}
	snc, sjs, err := stream.Connect(*connect(srv.Users.Sender.User, srv.Users.Sender.Password), "sender", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	objs, err := content.EnsureObjects(ctx, sjs, content.DefaultBucket, 1)
	if err != nil {
		t.Fatalf("the sender cannot ensure its bucket: %v", err)
	}
	const channel = "1650000001"
	for _, id := range []string{"old", "new"} {
		if _, err := objs.Put(ctx, content.ObjectName(channel, id), "image/jpeg", bytes.NewReader(make([]byte, 1000)), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO message_content (channel_id, message_id, message_type, status, size, created_at)
		VALUES ($1, 'old', 'image', 'stored', 1000, now() - interval '91 days'), ($1, 'new', 'image', 'stored', 1000, now())`,
		channel); err != nil {
		t.Fatal(err)
	}

	f, err := content.New(content.Config{BaseURL: "http://127.0.0.1:1", RetentionInterval: 200 * time.Millisecond,
		Owner: "sender"}, db.RolePool(t, store.RoleSender), sjs, staticTokens{})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(rctx) }()
	defer func() { stop(); <-done }()
	p := &pipeline{t: t, db: db}
	p.waitCount(0, `SELECT count(*) FROM message_content WHERE message_id = 'old'`)
	if _, err := objs.Stat(ctx, content.ObjectName(channel, "old")); err != content.ErrNoObject {
		t.Errorf("expired object: %v, want none", err)
	}
	if _, err := objs.Stat(ctx, content.ObjectName(channel, "new")); err != nil {
		t.Errorf("fresh object: %v", err)
	}
	if n := p.count(`SELECT count(*) FROM message_content WHERE message_id = 'new' AND status = 'stored'`); n != 1 {
		t.Errorf("fresh row gone")
	}

	wnc, wjs, err := stream.Connect(*connect(srv.Users.Worker.User, srv.Users.Worker.Password), "worker", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer wnc.Close()
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if wobs, err := wjs.ObjectStore(short, content.DefaultBucket); err == nil {
		if err := wobs.Delete(short, content.ObjectName(channel, "new")); err == nil {
			t.Error("the worker's NATS user deleted an object")
		}
	}
	if _, err := objs.Stat(ctx, content.ObjectName(channel, "new")); err != nil {
		t.Errorf("fresh object after the worker's attempt: %v", err)
	}
}
