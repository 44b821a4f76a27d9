package cli

import (
	"github.com/linepipe/linepipe/pkg/config"
	"github.com/linepipe/linepipe/pkg/content"
	"github.com/linepipe/linepipe/pkg/ingest"
	"github.com/linepipe/linepipe/pkg/linefake"
	"github.com/linepipe/linepipe/pkg/secretbox"
	"github.com/linepipe/linepipe/pkg/sender"
	"github.com/linepipe/linepipe/pkg/worker"
)

// The services, in the order the README's configuration table lists them.
var (
	Ingest = Program{
		Name:     "ingest",
		Summary:  "receives LINE webhooks at POST /webhook/{channelID}, verifies x-line-signature and answers 200 only after JetStream has stored every event (503 otherwise, so LINE redelivers).",
		Settings: func(e *config.Env) { _, _ = ingest.SettingsFromEnv(e) },
	}
	Worker = Program{
		Name:    "worker",
		Summary: "stores the events ingest published into Postgres exactly once, honours unsend, and runs bot handlers in the same transaction.",
		Commands: []Command{
			{Args: []string{"migrate"}, Help: "apply pending migrations (DATABASE_URL) and exit"},
			{Args: []string{"migrate", "status"}, Help: "list applied and pending migrations and exit"},
			{Args: []string{"content", "get", "<channel>", "<message>"}, Help: "write a message's stored content to stdout (NATS_URL, CONTENT_BUCKET, and a NATS user that may read the bucket: the sender's)"},
			{Args: []string{"seal-channels"}, Help: "encrypt every channel's credentials under the first LINEPIPE_SECRET_KEY (after a key rotation, or rows inserted as plaintext) and exit"},
		},
		Settings: func(e *config.Env) {
			_, _ = worker.SettingsFromEnv(e)
			_, _ = worker.LoginUsersFromEnv(e) // worker migrate
			_, _ = secretbox.FromEnv(e)        // worker seal-channels
			_ = content.BucketFromEnv(e)       // worker content get
		},
	}
	Sender = Program{
		Name:     "sender",
		Summary:  "delivers the outbox table to the LINE Messaging API exactly once per row, with a persisted X-Line-Retry-Key, from any number of replicas.",
		Settings: func(e *config.Env) { _, _ = sender.SettingsFromEnv(e) },
	}
	Linefake = Program{
		Name:     "linefake",
		Summary:  "the LINE Platform emulator for tests and development: Messaging API send endpoints, the stateless token endpoint, webhooks and fault injection. Never for production.",
		Settings: func(e *config.Env) { _, _ = linefake.SettingsFromEnv(e) },
	}
	Services = []Program{Ingest, Worker, Sender, Linefake}
)
