package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// histogram is one Prometheus histogram as a service's /metrics shows it:
// cumulative counts by upper bound (seconds), and the total.
type histogram struct {
	bounds []float64 // ascending
	counts []float64 // cumulative, one per bound
	count  float64
}

// scrapeHistograms reads the named label-free histograms from
// http://addr/metrics.
func scrapeHistograms(ctx context.Context, addr string, names ...string) (map[string]histogram, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseHistograms(resp.Body, names...)
}

// parseHistograms reads Prometheus' text format: for each name, its
// name_bucket{le="…"} lines and name_count.
func parseHistograms(r io.Reader, names ...string) (map[string]histogram, error) {
	type bucket struct{ le, n float64 }
	buckets := map[string][]bucket{}
	out := map[string]histogram{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name)
			if !ok {
				continue
			}
			fields := strings.Fields(rest)
			if len(fields) != 2 {
				continue
			}
			v, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", line, err)
			}
			switch {
			case fields[0] == "_count":
				h := out[name]
				h.count = v
				out[name] = h
			case strings.HasPrefix(fields[0], `_bucket{le="`) && strings.HasSuffix(fields[0], `"}`):
				le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(fields[0], `_bucket{le="`), `"}`), 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", line, err)
				}
				buckets[name] = append(buckets[name], bucket{le, v})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, name := range names {
		bs, h := buckets[name], out[name]
		if len(bs) == 0 {
			return nil, fmt.Errorf("no histogram %s", name)
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		for _, b := range bs {
			h.bounds, h.counts = append(h.bounds, b.le), append(h.counts, b.n)
		}
		out[name] = h
	}
	return out, nil
}

// since is what h observed after earlier, a reading of the same series.
func (h histogram) since(earlier histogram) histogram {
	d := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - earlier.count}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(earlier.counts) {
			d.counts[i] -= earlier.counts[i]
		}
	}
	return d
}

// edgeBelow is the largest bucket edge not above bound, in seconds, and
// the share of observations above it: for a bound between two edges, an
// upper estimate of the share above the bound. Both are 0 for no edge.
func (h histogram) edgeBelow(bound float64) (edge, over float64) {
	i := sort.SearchFloat64s(h.bounds, math.Nextafter(bound, math.Inf(1))) - 1
	if i < 0 || h.count <= 0 {
		return 0, 0
	}
	return h.bounds[i], (h.count - h.counts[i]) / h.count
}
