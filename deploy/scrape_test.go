package deploy

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/worker"
)

// The compose profile mounts deploy/prometheus at /etc/prometheus: the
// scrape configuration must load alerts.yml from there, and name its jobs
// as the LinepipeServiceDown alert expects, on the ports the services
// serve /metrics on.
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			Scheme       string `yaml:"scheme"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != "/etc/prometheus/alerts.yml" {
		t.Errorf("rule_files %v, want /etc/prometheus/alerts.yml", cfg.RuleFiles)
	}
	ports := metricsPorts(t)
	for _, sc := range cfg.ScrapeConfigs {
		svc := strings.TrimPrefix(sc.JobName, "linepipe-")
		want, ok := ports[svc]
		if !ok {
			t.Errorf("job %s: not a linepipe service", sc.JobName)
			continue
		}
		if len(sc.DNSSDConfigs) != 1 || sc.DNSSDConfigs[0].Port != want || sc.DNSSDConfigs[0].Names[0] != svc {
			t.Errorf("job %s: %+v, want names [%s] port %d", sc.JobName, sc.DNSSDConfigs, svc, want)
		}
		// The listeners serving /metrics are plain HTTP, even ingest's
		// when its webhook port has TLS.
		if sc.Scheme != "" && sc.Scheme != "http" {
			t.Errorf("job %s: scheme %s, the metrics ports serve plain HTTP", sc.JobName, sc.Scheme)
		}
		delete(ports, svc)
	}
	if len(ports) > 0 {
		t.Errorf("not scraped: %v", ports)
	}
}

// metricsPorts is, per compose service, the port it serves /metrics on:
// the address docker-compose.yml sets, else the service's own default,
// read from its SettingsFromEnv (errors about other, unset variables do
// not matter here).
func metricsPorts(t *testing.T) map[string]int {
	t.Helper()
	ing, _ := ingest.SettingsFromEnv(config.FromMap(nil))
	wrk, _ := worker.SettingsFromEnv(config.FromMap(nil))
	snd, _ := sender.SettingsFromEnv(config.FromMap(nil))
	defaults := map[string]struct{ key, addr string }{
		"ingest": {"INGEST_ADMIN_ADDR", ing.Admin.Addr},
		"worker": {"WORKER_ADDR", wrk.Server.Addr},
		"sender": {"SENDER_ADDR", snd.Addr},
	}
	compose := readCompose(t)
	ports := map[string]int{}
	for svc, d := range defaults {
		addr := d.addr
		if v, ok := compose.Services[svc].Environment[d.key]; ok {
			addr = v
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s %s %q: %v", svc, d.key, addr, err)
		}
		if ports[svc], err = strconv.Atoi(p); err != nil {
			t.Fatalf("%s %s %q: %v", svc, d.key, addr, err)
		}
	}
	return ports
}

// composeFile is what the tests read of docker-compose.yml.
type composeFile struct {
	Services map[string]struct {
		Environment map[string]string `yaml:"environment"`
		StopGrace   string            `yaml:"stop_grace_period"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
