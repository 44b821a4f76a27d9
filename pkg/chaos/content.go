package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
)

// The content part of a chaos run: during the load, the emulator sends
// image and video messages (its data API serving their bytes, with
// faults, and videos "being prepared" for a while) and unsends about a
// quarter of them, some while their fetch is in flight. The audit then
// checks that every accepted, not unsent content is stored exactly once
// with the emulator's SHA-256, and that no unsent content is left.

const (
	mediaEvery     = 500 * time.Millisecond
	mediaPreparing = 2 * time.Second
	mediaUser      = "U0000000000000000000000000000c0de"
)

// contentEnv shortens the fetcher's clocks like the rest of the run's.
func contentEnv(emuURL string) []string {
	return []string{"LINE_DATA_API_BASE_URL=" + linefake.DataURL(emuURL), "CONTENT_HTTP_TIMEOUT=2s", "CONTENT_LEASE=12s",
		"CONTENT_BACKOFF_BASE=200ms", "CONTENT_BACKOFF_MAX=3s", "CONTENT_MAX_ATTEMPTS=1000"}
}

// contentFaults are the data API's faults while the load runs.
var contentFaults = linefake.Faults{FailRate: 0.05, TooManyRate: 0.05, DropRate: 0.1}

// mediaLoad is what the media sender did.
type mediaLoad struct {
	mu       sync.Mutex
	accepted map[string]int64 // message id -> content size, webhook answered 200
	unsent   map[string]bool  // unsend webhook answered 200
	sent     int
	rnd      *rand.Rand // its own source: the fault injector draws from the run's
	wg       sync.WaitGroup
}

// ContentAudit is what the content checks found.
type ContentAudit struct {
	MediaSent     int `json:"mediaSent"`
	MediaAccepted int `json:"mediaAccepted"`
	Unsent        int `json:"unsent"`
	Stored        int `json:"stored"`
	Open          int `json:"open"`                // rows not in a final status at the end
	NotStored     int `json:"notStored"`           // accepted, not unsent, not stored
	WrongDigest   int `json:"wrongDigest"`         // row or object digest differs from the emulator's bytes
	ObjectMissing int `json:"objectMissing"`       // stored row without its object
	Extra         int `json:"extraObjects"`        // objects no stored row accounts for
	UnsentLeft    int `json:"unsentLeft"`          // unsent content still in the bucket
	OrphanChunks  int `json:"orphanChunkSubjects"` // informational: chunks of puts cut off by a kill
	Served        int `json:"servedBodies"`        // informational: full bodies the emulator served
}

// OK reports content stored exactly once, right, and unsent content gone.
func (c ContentAudit) OK() bool {
	return c.Open == 0 && c.NotStored == 0 && c.WrongDigest == 0 && c.ObjectMissing == 0 && c.Extra == 0 && c.UnsentLeft == 0
}

// startMedia sends media webhooks through url until ctx ends.
func (r *run) startMedia(ctx context.Context, url string) *mediaLoad {
	seed := r.cfg.Seed ^ 0xc0de
	if r.cfg.Seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	m := &mediaLoad{accepted: map[string]int64{}, unsent: map[string]bool{}, rnd: rand.New(rand.NewPCG(seed, 1))}
	_ = r.emu.SetContentFaults(contentFaults)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(mediaEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			typ, size := "image", int64(8<<10+m.intN(256<<10))
			if i%3 == 2 {
				typ, size = "video", int64(128<<10+m.intN(512<<10))
			}
			ev := r.emu.MediaEvent(r.stack.ChannelID, mediaUser, typ, size)
			m.mu.Lock()
			m.sent++
			m.mu.Unlock()
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				if !r.deliverWebhook(url, ev) {
					return
				}
				m.mu.Lock()
				m.accepted[ev.Message.ID] = size
				m.mu.Unlock()
				if m.intN(4) != 0 {
					return
				}
				time.Sleep(time.Duration(m.intN(2000)) * time.Millisecond)
				if r.deliverWebhook(url, r.emu.UnsendEvent(mediaUser, ev.Message.ID)) {
					m.mu.Lock()
					m.unsent[ev.Message.ID] = true
					m.mu.Unlock()
				}
			}()
		}
	}()
	return m
}

// deliverWebhook sends one event as LINE would, redelivering on failure
// for up to a dozen tries; it reports whether it was answered 200.
func (r *run) deliverWebhook(url string, ev linefake.WebhookEvent) bool {
	target := url + "/webhook/" + r.stack.ChannelID
	wait := 250 * time.Millisecond
	for try := 0; try < 12; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), linefake.DefaultWebhookTimeout)
		send := r.emu.SendWebhook
		if try > 0 {
			send = r.emu.RedeliverWebhook
		}
		code, err := send(ctx, target, r.stack.ChannelID, ev)
		cancel()
		if err == nil && code == http.StatusOK {
			return true
		}
		time.Sleep(wait)
		wait = min(2*wait, 3*time.Second)
	}
	return false
}

// stopMedia waits for the media sender's last webhooks and lifts the
// data API's faults for the drain.
func (r *run) stopMedia(m *mediaLoad) {
	m.wg.Wait()
	_ = r.emu.SetContentFaults(linefake.Faults{})
	r.logf("media: %d image/video messages sent, %d accepted, %d unsent", m.sent, len(m.accepted), len(m.unsent))
}

// auditContent waits until every content row is final, then checks the
// rows and the bucket against what the emulator served.
func (r *run) auditContent(ctx context.Context, conn *pgx.Conn, js jetstream.JetStream, a *ContentAudit) error {
	m := r.media
	if m == nil {
		return nil
	}
	a.MediaSent, a.MediaAccepted, a.Unsent = m.sent, len(m.accepted), len(m.unsent)
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	for {
		err := conn.QueryRow(ctx, `SELECT count(*) FROM message_content
			WHERE status IN ('pending', 'processing', 'unsent')`).Scan(&a.Open)
		if err == nil && a.Open == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	objs, err := content.OpenObjects(ctx, js, content.DefaultBucket)
	if err != nil {
		return err
	}
	rows := map[string][2]string{} // message id -> status, sha256
	q, err := conn.Query(ctx, `SELECT message_id, status, coalesce(sha256, '') FROM message_content WHERE channel_id = $1`, r.stack.ChannelID)
	if err != nil {
		return err
	}
	for q.Next() {
		var id, st, sum string
		if err := q.Scan(&id, &st, &sum); err != nil {
			q.Close()
			return err
		}
		rows[id] = [2]string{st, sum}
	}
	q.Close()
	for id, size := range m.accepted {
		name := content.ObjectName(r.stack.ChannelID, id)
		info, statErr := objs.Stat(ctx, name)
		a.Served += r.emu.ContentServed(id)
		if m.unsent[id] {
			if statErr != content.ErrNoObject {
				a.UnsentLeft++
			}
			continue
		}
		row := rows[id]
		if row[0] != "stored" {
			a.NotStored++
			continue
		}
		a.Stored++
		want := linefake.ContentSHA256(id, size)
		switch {
		case statErr != nil:
			a.ObjectMissing++
		case row[1] != want || info.SHA256 != want || info.Size != size:
			a.WrongDigest++
		}
	}
	// Exactly once: one object per stored row, and nothing else.
	list, err := objs.List(ctx)
	if err != nil {
		return err
	}
	for _, o := range list {
		_, id, _ := cutObjectName(o)
		if row, ok := rows[id]; !ok || row[0] != "stored" {
			a.Extra++
		}
	}
	if a.OrphanChunks, err = objs.Orphans(ctx); err != nil {
		return err
	}
	return nil
}

func cutObjectName(name string) (string, string, bool) {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i], name[i+1:], true
		}
	}
	return "", name, false
}

// writeChecks adds the content lines to the run's summary.
func (c ContentAudit) writeChecks(check func(string, any, bool), info func(string, any)) {
	info("media sent / accepted / unsent", fmt.Sprintf("%d / %d / %d", c.MediaSent, c.MediaAccepted, c.Unsent))
	check("content rows not final", c.Open, c.Open == 0)
	check("accepted content not stored", c.NotStored, c.NotStored == 0)
	check(fmt.Sprintf("stored content with a wrong digest or size (%d stored)", c.Stored), c.WrongDigest, c.WrongDigest == 0)
	check("stored rows without their object", c.ObjectMissing, c.ObjectMissing == 0)
	check("objects beyond one per stored row", c.Extra, c.Extra == 0)
	check("unsent content left in the bucket", c.UnsentLeft, c.UnsentLeft == 0)
	info("full bodies the emulator served", c.Served)
	info("orphaned chunk subjects (purged after two leases)", c.OrphanChunks)
}

func (m *mediaLoad) intN(n int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rnd.IntN(n)
}
