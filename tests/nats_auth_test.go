package tests

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/natsconf"
	"github.com/linepipe/linepipe/pkg/stream"
	"github.com/linepipe/linepipe/tests/testenv"
)

// NATS accepts only its users, and each only for its job: nobody
// without credentials reaches the event subjects, the worker and the
// sender cannot forge an event, and neither ingest nor the sender can
// read one; ingest cannot delete one either.
func TestNATSAuthorization(t *testing.T) {
	t.Parallel()
	names := testenv.NewNames()
	srv := testenv.NewAuthNATS(t, names)
	sc := stream.Config{URL: srv.URL, Stream: names.Stream, SubjectPrefix: names.SubjectPrefix}.WithDefaults()
	as := func(c natsconf.Credentials) stream.Config {
		s := sc
		s.Auth = stream.Auth{User: c.User, Password: c.Password}
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// No credentials, or wrong ones: no connection at all.
	for _, opts := range [][]nats.Option{nil, {nats.UserInfo("ingest", "wrong")}} {
		nc, err := nats.Connect(srv.URL, opts...)
		if err == nil {
			err = nc.Publish(sc.EventSubject("1650000001"), []byte(`{"forged":true}`))
			if err == nil {
				err = nc.Flush()
			}
			nc.Close()
		}
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("a client without valid credentials connected and published: %v", err)
		}
	}

	// Ingest creates the stream and publishes with JetStream acks.
	inc, ijs, err := stream.Connect(as(srv.Users.Ingest), "ingest", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer inc.Close()
	if _, err := stream.Ensure(ctx, ijs, sc); err != nil {
		t.Fatalf("ingest cannot ensure its stream: %v", err)
	}
	if _, err := ijs.Publish(ctx, sc.EventSubject("1650000001"), []byte(`{}`)); err != nil {
		t.Fatalf("ingest cannot publish an event: %v", err)
	}
	// ...but may not read events, nor publish elsewhere.
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := ijs.CreateOrUpdateConsumer(short(), sc.Stream, jetstream.ConsumerConfig{Durable: "probe"}); err == nil {
		t.Error("ingest created a consumer on the stream")
	}
	if _, err := ijs.Publish(short(), "other.subject", []byte(`{}`)); err == nil {
		t.Error("ingest published outside the event subjects")
	}
	// Its stream handle (ingest reads the stream's info for readiness)
	// neither reads nor removes what it published.
	ist, err := ijs.Stream(ctx, sc.Stream)
	if err != nil {
		t.Fatalf("ingest cannot read its stream's info: %v", err)
	}
	if _, err := ist.GetMsg(short(), 1); err == nil {
		t.Error("ingest read an event off the stream")
	}
	if err := ist.DeleteMsg(short(), 1); err == nil {
		t.Error("ingest deleted an event from the stream")
	}
	if err := ist.Purge(short()); err == nil {
		t.Error("ingest purged the stream")
	}

	// The sender reaches the content bucket only: it can neither forge
	// an event nor read one.
	snc, sjs, err := stream.Connect(as(srv.Users.Sender), "sender", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	if _, err := sjs.Publish(short(), sc.EventSubject("1650000001"), []byte(`{"type":"unsend"}`)); err == nil {
		t.Error("the sender user published to the event subjects")
	}
	if _, err := sjs.CreateOrUpdateConsumer(short(), sc.Stream, jetstream.ConsumerConfig{Durable: "probe"}); err == nil {
		t.Error("the sender user created a consumer on the event stream")
	}

	// The worker may not publish to the event subjects: a forged event
	// (or a forged unsend) never reaches the stream.
	wnc, wjs, err := stream.Connect(as(srv.Users.Worker), "worker", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer wnc.Close()
	if _, err = wjs.Publish(short(), sc.EventSubject("1650000001"), []byte(`{"type":"unsend"}`)); err == nil {
		t.Error("the worker user published to the event subjects")
	}
	anc, ajs, err := stream.Connect(stream.Config{URL: srv.URL, Auth: stream.Auth{User: srv.Users.Admin.User,
		Password: srv.Users.Admin.Password}}, "admin", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	st, err := ajs.Stream(ctx, sc.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want only ingest's 1", info.State.Msgs)
	}

	// The worker removes what it stored: a purge below its consumer's ack
	// floor, and a delete of one message held above it.
	wst, err := wjs.Stream(ctx, sc.Stream)
	if err != nil {
		t.Fatalf("the worker cannot read its stream's info: %v", err)
	}
	if err := wst.Purge(short(), jetstream.WithPurgeSequence(1)); err != nil {
		t.Errorf("the worker cannot purge stored messages: %v", err)
	}
	if err := wst.DeleteMsg(short(), 1); err != nil {
		t.Errorf("the worker cannot delete a stored message: %v", err)
	}
	if info, err := st.Info(ctx); err != nil {
		t.Error(err)
	} else if info.State.Msgs != 0 {
		t.Errorf("stream holds %d messages after the worker deleted the only one", info.State.Msgs)
	}
}

// `worker content get` works with the sender's NATS user, as the README
// has the operator run it (in the sender container); with the worker's,
// which may not touch the content bucket, it fails within
// content.OpenTimeout, naming the bucket, rather than waiting out the
// command's 30 minutes.
func TestContentGetNeedsTheSenderUser(t *testing.T) {
	t.Parallel()
	names := testenv.NewNames()
	srv := testenv.NewAuthNATS(t, names)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	env := func(c natsconf.Credentials) *config.Env {
		return config.FromMap(map[string]string{"NATS_URL": srv.URL, "NATS_USER": c.User, "NATS_PASSWORD": c.Password})
	}

	snc, sjs, err := stream.Connect(stream.Config{URL: srv.URL, Auth: stream.Auth{User: srv.Users.Sender.User,
		Password: srv.Users.Sender.Password}}, "sender", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	objs, err := content.EnsureObjects(ctx, sjs, content.DefaultBucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("a photo")
	if _, err := objs.Put(ctx, content.ObjectName("1650000001", "1"), "image/jpeg", bytes.NewReader(body), 1<<20); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if _, err := content.Get(ctx, env(srv.Users.Sender), "1650000001", "1", &out); err != nil || !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("content get as the sender: %v, %q", err, out.Bytes())
	}

	start := time.Now()
	_, err = content.Get(ctx, env(srv.Users.Worker), "1650000001", "1", &out)
	if took := time.Since(start); took > content.OpenTimeout+5*time.Second {
		t.Errorf("content get as the worker took %s", took)
	}
	if err == nil || !strings.Contains(err.Error(), content.DefaultBucket) || !strings.Contains(err.Error(), "may not read") {
		t.Errorf("content get as the worker: %v, want an error naming the bucket and the permission", err)
	}
}
