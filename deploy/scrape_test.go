package deploy

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The compose profile mounts deploy/prometheus at /etc/prometheus: the
// scrape configuration must load alerts.yml from there, and name its jobs
// as the LinepipeServiceDown alert expects, on the services' default ports.
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
	ports := map[string]int{"ingest": 8080, "worker": 8081, "sender": 8082}
	for _, sc := range cfg.ScrapeConfigs {
		svc := strings.TrimPrefix(sc.JobName, "linepipe-")
		if len(sc.DNSSDConfigs) != 1 || sc.DNSSDConfigs[0].Port != ports[svc] || sc.DNSSDConfigs[0].Names[0] != svc {
			t.Errorf("job %s: %+v", sc.JobName, sc.DNSSDConfigs)
		}
		delete(ports, svc)
	}
	if len(ports) > 0 {
		t.Errorf("not scraped: %v", ports)
	}
}
