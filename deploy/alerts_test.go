package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/ops"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/worker"
)

// synthetic are series Prometheus makes itself for every target.
var synthetic = map[string]bool{"up": true}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true}

// exported is, per series name a service exports, its label names.
type exported map[string]map[string]bool

// The alert rules load with Prometheus' own parser (syntax, durations,
// PromQL, templates), and every metric they name is one a linepipe
// service exports.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.UTF8Validation, promql(), nil)
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	exported := exportedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: every alert needs a severity label and a summary", r.Alert)
			}
			checkNames(t, r.Alert, r.Expr, exported)
		}
	}
	// What an operator must hear about.
	for _, a := range []string{"LinepipeConsumerLag", "LinepipeOutboxBacklog", "LinepipeDeadLetters",
		"LinepipeLINEServerErrors", "LinepipeLINERateLimited", "LinepipeTokenFailures", "LinepipeIngestAnswering503"} {
		if !alerts[a] {
			t.Errorf("alert %s is missing", a)
		}
	}
}

// Every dashboard query parses and names only exported metrics.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("grafana/linepipe.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics(t)
	queries := 0
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			checkNames(t, p.Title, q.Expr, exported)
		}
	}
	if d.UID == "" || queries < 10 {
		t.Fatalf("dashboard uid %q with %d queries", d.UID, queries)
	}
}

func promql() parser.Parser { return parser.NewParser(parser.Options{}) }

// checkNames fails the test for each metric expr names that is not
// exported, and each label it matches on that the metric does not have.
func checkNames(t *testing.T, where, expr string, exp exported) {
	t.Helper()
	e, err := promql().ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			labels, ok := exp[name]
			switch {
			case name == "":
				t.Errorf("%s: a selector without a metric name: %s", where, vs)
			case synthetic[name]:
			case !ok:
				t.Errorf("%s: %s is not a metric linepipe exports", where, name)
			default:
				for _, m := range vs.LabelMatchers {
					if m.Name != "__name__" && !labels[m.Name] && !targetLabels[m.Name] {
						t.Errorf("%s: %s has no label %q", where, name, m.Name)
					}
				}
			}
		}
		return nil
	})
}

// exportedMetrics is every series name the services register: ingest's,
// the worker's and the sender's own (its content fetcher's included), and
// the Go and process collectors every service serves. Histogram and summary names come with their
// _bucket, _sum and _count series.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	c := &capture{names: exported{}}
	ingest.NewMetrics(c)
	worker.NewMetrics(c)
	if _, err := sender.New(sender.Config{Registerer: c}, nil); err != nil {
		t.Fatal(err)
	}
	// The sender's content fetcher registers on the sender's registry.
	if _, err := content.New(content.Config{Registerer: c}, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	mfs, err := ops.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		c.names[mf.GetName()] = labels
	}
	if c.names["linepipe_worker_events_stored_total"] == nil || !c.names["linepipe_sender_api_calls_total"]["code"] {
		names := make([]string, 0, len(c.names))
		for n := range c.names {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("metric discovery is broken: %s", strings.Join(names, " "))
	}
	for n, labels := range maps.Clone(c.names) {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			c.names[n+s] = maps.Clone(labels)
		}
		c.names[n+"_bucket"]["le"] = true
	}
	return c.names
}

// capture is a Registerer that records the names and label names its
// collectors describe, labelled series included before any is observed.
// Desc has no getters; its String form is stable across client_golang.
type capture struct{ names exported }

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func (c *capture) Register(col prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { col.Describe(ch); close(ch) }()
	var descs []*prometheus.Desc
	for d := range ch {
		descs = append(descs, d)
	}
	for _, d := range descs {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			return fmt.Errorf("unreadable metric description %s", d)
		}
		labels := map[string]bool{}
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				labels[l] = true
			}
		}
		c.names[m[1]] = labels
	}
	return nil
}

func (c *capture) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		if err := c.Register(col); err != nil {
			panic(err)
		}
	}
}

func (c *capture) Unregister(prometheus.Collector) bool { return false }
