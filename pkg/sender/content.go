package sender

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/stream"
)

// The content fetcher is a role of the sender: it needs what the sender
// already holds (the channels' access tokens, the api_log, the rate
// buckets every call to LINE shares), and it scales the same way, by
// replicas claiming rows under fenced leases. It runs beside the outbox
// loop and never holds it up: a NATS outage delays content, not sends.

// ContentSettings configures the sender's content role.
type ContentSettings struct {
	Enabled bool // CONTENT_FETCH
	Fetcher content.Config
	NATS    stream.Config
}

func contentSettingsFromEnv(env *config.Env) (ContentSettings, error) {
	cfg, on, err := content.FromEnv(env)
	return ContentSettings{Enabled: on, Fetcher: cfg, NATS: stream.FromEnv(env)}, err
}

// runContent runs the fetcher until ctx ends, when enabled. It returns
// at once otherwise.
func runContent(ctx context.Context, st ContentSettings, s *Sender, reg prometheus.Registerer, log *zap.Logger) error {
	if !st.Enabled {
		return nil
	}
	nc, js, err := stream.Connect(st.NATS, "linepipe-sender-content", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := st.Fetcher
	cfg.Log, cfg.Registerer = log, reg
	f, err := content.New(cfg, s.db, js, s.tokens)
	if err != nil {
		return err
	}
	return f.Run(ctx)
}
