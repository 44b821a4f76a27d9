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

// startContent sets the content role up, when enabled, and returns what
// runs it until its ctx ends and what closes its connection. A setting
// NATS or the fetcher refuses (a client certificate that cannot be
// loaded, say) is an error here, before the sender starts, as it is for
// ingest and the worker: found only when the fetcher ran, it left the
// sender sending with no content fetched and nothing said until it
// stopped. A NATS server that is down is no error: the connection is
// retried in the background, and content waits for it.
func startContent(st ContentSettings, s *Sender, reg prometheus.Registerer, log *zap.Logger) (run func(context.Context) error, closeFn func(), err error) {
	if !st.Enabled {
		return func(context.Context) error { return nil }, func() {}, nil
	}
	nc, js, err := stream.Connect(st.NATS, "linepipe-sender-content", log)
	if err != nil {
		return nil, nil, err
	}
	cfg := st.Fetcher
	cfg.Log, cfg.Registerer = log, reg
	f, err := content.New(cfg, s.db, js, s.tokens)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return f.Run, nc.Close, nil
}
