package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/linefake"
)

// The content stage: MB/s the sender's fetcher stores from the emulator
// into the bucket, against a raw copy of the same bytes from the same
// emulator into the same bucket in this process (HTTP GET streamed into
// an object store put, no database, no leases), and the fetcher's peak
// RSS with large and with small files in flight.

const (
	contentBigSize   = 50 << 20
	contentSmallSize = 5 << 20
	contentFiles     = 8
	contentInFlight  = 4
	benchContentUser = "U00000000000000000000000000000001"
)

// TargetContentRatio is the bar for stored MB/s against the raw copy.
const TargetContentRatio = 0.70

// ContentResult is the content stage's measurements.
type ContentResult struct {
	Files           int     `json:"files"`
	FileMiB         int     `json:"fileMiB"`
	InFlight        int     `json:"inFlight"`
	StoredMBps      float64 `json:"storedMBps"`
	RawMBps         float64 `json:"rawMBps"`
	Ratio           float64 `json:"ratio"`
	PeakRSSBigKiB   int64   `json:"peakRssBigKiB"`
	PeakRSSSmallKiB int64   `json:"peakRssSmallKiB"`
	SmallMiB        int     `json:"smallFileMiB"`
	Wrong           int     `json:"wrongDigests"`
}

func (b *Bench) runContent(ctx context.Context, js jetstream.JetStream) (ContentResult, error) {
	res := ContentResult{Files: contentFiles, FileMiB: contentBigSize >> 20, InFlight: contentInFlight, SmallMiB: contentSmallSize >> 20}
	ch := linefake.Channel{ID: b.stack.ChannelID, Secret: b.stack.ChannelSecret, AccessTokens: []string{b.stack.AccessToken}}
	emu, err := StartEmulator(linefake.Config{Channels: []linefake.Channel{ch}, Seed: 3})
	if err != nil {
		return res, err
	}
	defer emu.Close()
	// The bucket deploy/nats/nats.conf lets the sender user write: the
	// run's NATS node is private, so the default name collides with nothing.
	bucket := "linepipe_content"
	objs, err := content.EnsureObjects(ctx, js, bucket, 1)
	if err != nil {
		return res, err
	}
	defer func() { _ = js.DeleteObjectStore(context.Background(), bucket) }()

	// Small files first: the fetcher's RSS when content is small.
	_, rssSmall, _, err := b.fetchAll(ctx, emu, bucket, "content-small", contentSmallSize)
	if err != nil {
		return res, err
	}
	res.PeakRSSSmallKiB = rssSmall
	ids, err := b.contentRows(ctx, emu, contentBigSize)
	if err != nil {
		return res, err
	}
	// Each side of the ratio writes 400 MiB into NATS's store, fsynced,
	// so each starts from a written-out disk. Without it the fetcher, timed
	// first, paid for the writeback the stages before it left: 0.41 of
	// the raw copy in a whole run at 04:34 UTC on 2026-12-02, 0.94-0.98
	// in three runs of the stage alone.
	syscall.Sync()
	stored, rssBig, wrong, err := b.fetchRows(ctx, emu, bucket, "content-big", ids, contentBigSize)
	if err != nil {
		return res, err
	}
	res.StoredMBps, res.PeakRSSBigKiB, res.Wrong = stored, rssBig, wrong
	syscall.Sync()
	res.RawMBps, err = rawCopy(ctx, emu, objs, b.stack.AccessToken, ids, contentBigSize)
	if err != nil {
		return res, err
	}
	res.Ratio = res.StoredMBps / res.RawMBps
	b.logf("content: stored %.0f MB/s, raw copy %.0f MB/s (%.2f); fetcher peak RSS %.0f MiB with %d MiB files, %.0f MiB with %d MiB files",
		res.StoredMBps, res.RawMBps, res.Ratio, float64(rssBig)/1024, res.FileMiB, float64(rssSmall)/1024, res.SmallMiB)
	return res, nil
}

// contentRows registers contentFiles files of size at the emulator and
// queues their fetches as the worker would.
func (b *Bench) contentRows(ctx context.Context, emu *Emulator, size int64) ([]string, error) {
	var ids []string
	for i := 0; i < contentFiles; i++ {
		e := emu.MediaEvent(b.stack.ChannelID, benchContentUser, "file", size)
		ids = append(ids, e.Message.ID)
	}
	_, err := b.schema.Pool.Exec(ctx, `INSERT INTO message_content (channel_id, message_id, message_type, file_size)
		SELECT $1, id, 'file', $3 FROM unnest($2::text[]) AS id`, b.stack.ChannelID, ids, size)
	return ids, err
}

func (b *Bench) fetchAll(ctx context.Context, emu *Emulator, bucket, name string, size int64) (float64, int64, int, error) {
	ids, err := b.contentRows(ctx, emu, size)
	if err != nil {
		return 0, 0, 0, err
	}
	return b.fetchRows(ctx, emu, bucket, name, ids, size)
}

// fetchRows runs a sender (outbox empty: only its fetcher works) until
// ids are stored, and returns MB/s, its peak RSS and wrong digests.
func (b *Bench) fetchRows(ctx context.Context, emu *Emulator, bucket, name string, ids []string, size int64) (float64, int64, int, error) {
	p, err := b.stack.Sender(name, "LINE_DATA_API_BASE_URL="+linefake.DataURL(emu.URL), "CONTENT_BUCKET="+bucket,
		fmt.Sprintf("CONTENT_CONCURRENCY=%d", contentInFlight), "CONTENT_MAX_BYTES=100MiB", "LOG_LEVEL=warn")
	if err != nil {
		return 0, 0, 0, err
	}
	p.Env = append(p.Env, "LINE_API_BASE_URL="+emu.URL)
	start := time.Now()
	if err := b.start(p); err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = p.Stop(10 * time.Second) }()
	deadline := time.Now().Add(b.cfg.DrainTimeout + 2*time.Minute)
	for {
		var open int
		err := b.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM message_content WHERE message_id = ANY($1) AND status <> 'stored'`, ids).Scan(&open)
		if err == nil && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("%s left %d content rows unstored", name, open)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	p.SampleRSS()
	wrong := 0
	for _, id := range ids {
		var got string
		err := b.schema.Pool.QueryRow(ctx, `SELECT sha256 FROM message_content WHERE message_id = $1`, id).Scan(&got)
		if err != nil || got != linefake.ContentSHA256(id, size) {
			wrong++
		}
	}
	return float64(int64(len(ids))*size) / 1e6 / took.Seconds(), p.PeakRSSKB(), wrong, nil
}

// rawCopy streams the same contents from the emulator into the bucket
// under other names, contentInFlight at a time, and returns MB/s.
func rawCopy(ctx context.Context, emu *Emulator, objs *content.Objects, token string, ids []string, size int64) (float64, error) {
	client := &http.Client{}
	start := time.Now()
	sem := make(chan struct{}, contentInFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer func() { <-sem; wg.Done() }()
			copyOnce := func() error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, linefake.DataURL(emu.URL)+"/v2/bot/message/"+id+"/content", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := client.Do(req)
				if err != nil {
					return err
				}
				defer res.Body.Close()
				_, err = objs.Put(ctx, "raw/"+id, res.Header.Get("Content-Type"), res.Body, size)
				return err
			}
			// On a saturated host NATS may push back on the object
			// store's API (429, too many requests); the fetcher retries
			// such a put, and so does the reference, its time counted.
			err := copyOnce()
			for try := 0; try < 3 && jsTooMany(err); try++ {
				time.Sleep(100 * time.Millisecond)
				err = copyOnce()
			}
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}(id)
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(int64(len(ids))*size) / 1e6 / time.Since(start).Seconds(), nil
}

// jsTooMany reports JetStream's 429: its API queue is full for now.
func jsTooMany(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.Code == http.StatusTooManyRequests
}

// contentTableRows appends the content stage's lines to the table.
// ok reports the content target met: the ratio, and every digest right.
func (c ContentResult) ok() bool { return c.Ratio >= TargetContentRatio && c.Wrong == 0 }

func (r *Result) contentTableRows(row func(...string)) {
	c := r.Content
	if c.Files == 0 {
		return
	}
	row(fmt.Sprintf("content MB/s stored (%d × %d MiB, %d in flight)", c.Files, c.FileMiB, c.InFlight), fmt.Sprintf("%.0f", c.StoredMBps),
		fmt.Sprintf("%.0f raw GET→put", c.RawMBps), fmt.Sprintf("%.2f", c.Ratio), "≥ 0.70", verdict(c.ok()))
	row(fmt.Sprintf("content fetcher peak RSS, %d vs %d MiB files", c.FileMiB, c.SmallMiB),
		fmt.Sprintf("%.1f MiB", float64(c.PeakRSSBigKiB)/1024), fmt.Sprintf("%.1f MiB", float64(c.PeakRSSSmallKiB)/1024),
		fmt.Sprintf("%.2f", float64(c.PeakRSSBigKiB)/float64(max(c.PeakRSSSmallKiB, 1))), "independent of size", "")
}
