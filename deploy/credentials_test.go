package deploy

import (
	"slices"
	"sort"
	"testing"
)

// docker-compose.yml gives channel credentials, and the key that seals
// them in Postgres, only to the services that read them: a worker's or
// the migrate step's container holding the channel secret could sign
// webhooks ingest would accept (docs/SECURITY.md, least privilege).
func TestCredentialsOnlyWhereRead(t *testing.T) {
	t.Parallel()
	compose := readCompose(t)
	readers := map[string][]string{
		"LINE_CHANNEL_SECRET":       {"ingest", "sender"},
		"LINE_CHANNEL_ACCESS_TOKEN": {"sender"},
		"LINEPIPE_SECRET_KEY":       {"ingest", "sender"},
	}
	for key, want := range readers {
		var got []string
		for name, svc := range compose.Services {
			if _, ok := svc.Environment[key]; ok {
				got = append(got, name)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s is given to %v, want exactly %v", key, got, want)
		}
	}
}
