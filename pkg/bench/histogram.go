package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	var out map[string]histogram
	err := scrape(ctx, addr, func(r io.Reader) (err error) {
		out, err = parseHistograms(r, names...)
		return err
	})
	return out, err
}

// scrapeCounters reads the named counters from http://addr/metrics, each
// summed over its label sets. A name the service does not export is an
// error, so a renamed series cannot read as zero.
func scrapeCounters(ctx context.Context, addr string, names ...string) (map[string]float64, error) {
	out := map[string]float64{}
	err := scrape(ctx, addr, func(r io.Reader) error {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(r)
		if err != nil {
			return err
		}
		for _, name := range names {
			if fams[name] == nil {
				return fmt.Errorf("no counter %s", name)
			}
			for _, m := range fams[name].GetMetric() {
				out[name] += m.GetCounter().GetValue()
			}
		}
		return nil
	})
	return out, err
}

// scrape hands the body of http://addr/metrics to parse.
func scrape(ctx context.Context, addr string, parse func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parse(resp.Body)
}

// parseHistograms reads the named histograms from Prometheus' text
// format, with client_golang's own parser (prometheus/common/expfmt).
func parseHistograms(r io.Reader, names ...string) (map[string]histogram, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]histogram{}
	for _, name := range names {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram() == nil {
			return nil, fmt.Errorf("no histogram %s", name)
		}
		dh := f.GetMetric()[0].GetHistogram()
		h := histogram{count: float64(dh.GetSampleCount())}
		for _, b := range dh.GetBucket() { // ascending, as the format has them
			h.bounds, h.counts = append(h.bounds, b.GetUpperBound()), append(h.counts, float64(b.GetCumulativeCount()))
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
