package content

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/linepipe/linepipe/pkg/config"
)

func TestFromEnvDefaultsAndErrors(t *testing.T) {
	t.Parallel()
	cfg, on, err := FromEnv(config.FromMap(nil))
	if err != nil || !on || cfg.BaseURL != DefaultDataBaseURL || cfg.Bucket != DefaultBucket || cfg.MaxBytes != DefaultMaxBytes ||
		cfg.RateLimit != 2000 || cfg.RatePer != time.Second || cfg.RetentionInterval != DefaultRetentionInterval {
		t.Fatalf("defaults: %+v %v %v", cfg, on, err)
	}
	cfg, on, err = FromEnv(config.FromMap(map[string]string{"CONTENT_FETCH": "false", "CONTENT_RATE": "off",
		"CONTENT_MAX_BYTES": "2MiB", "LINE_DATA_API_BASE_URL": "http://x/", "RETENTION_INTERVAL": "0"}))
	if err != nil || on || cfg.RateLimit >= 0 || cfg.MaxBytes != 2<<20 || cfg.RetentionInterval >= 0 {
		t.Fatalf("set: %+v %v %v", cfg, on, err)
	}
	for k, v := range map[string]string{"CONTENT_RATE": "fast", "CONTENT_LEASE": "5s", "CONTENT_MAX_BYTES": "0",
		"CONTENT_CONCURRENCY": "0", "NATS_REPLICAS": "9", "RETENTION_INTERVAL": "10ms"} {
		if _, _, err := FromEnv(config.FromMap(map[string]string{k: v})); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	t.Parallel()
	mid := func() float64 { return 0.5 }
	if d := backoff(1, time.Second, time.Minute, mid); d != time.Second {
		t.Errorf("first: %s", d)
	}
	if d := backoff(4, time.Second, time.Minute, mid); d != 8*time.Second {
		t.Errorf("fourth: %s", d)
	}
	if d := backoff(40, time.Second, time.Minute, mid); d != time.Minute {
		t.Errorf("capped: %s", d)
	}
}

// The size bound passes exactly maxBytes and refuses one byte more.
func TestLimitReader(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 100)
	lr := &limitReader{r: bytes.NewReader(data), left: 100}
	if b, err := io.ReadAll(lr); err != nil || len(b) != 100 || lr.over {
		t.Fatalf("exactly the bound: %d %v %v", len(b), err, lr.over)
	}
	lr = &limitReader{r: bytes.NewReader(data), left: 99}
	if _, err := io.ReadAll(lr); !errors.Is(err, ErrTooLarge) || !lr.over {
		t.Fatalf("one over: %v %v", err, lr.over)
	}
}

// fullReader fills whole chunks from a reader that returns bytes one at a
// time, and passes a failure on.
func TestFullReader(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("ab"), 300)
	f := fullReader{iotest.OneByteReader(bytes.NewReader(data))}
	buf := make([]byte, 256)
	var sizes []int
	for {
		n, err := f.Read(buf)
		if n > 0 {
			sizes = append(sizes, n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(sizes) != 3 || sizes[0] != 256 || sizes[1] != 256 || sizes[2] != 88 {
		t.Fatalf("chunks %v", sizes)
	}
	f = fullReader{iotest.TimeoutReader(bytes.NewReader(data))}
	if _, err := f.Read(make([]byte, 1000)); err == nil {
		t.Fatal("a read error was swallowed")
	}
}

func TestDecodeDigest(t *testing.T) {
	t.Parallel()
	if h, ok := decodeDigest("SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="); !ok ||
		h != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("%s %v", h, ok)
	}
	if _, ok := decodeDigest("MD5=x"); ok {
		t.Fatal("foreign digest accepted")
	}
}
