package config

// Doc is what a variable means, for --help and the README's
// configuration table. Default, when set, replaces the parser's default
// in both (for defaults that are not a single value, such as LINE's rates).
type Doc struct {
	Meaning string
	Default string
	// Secret marks a value that must never be logged; give it through
	// <NAME>_FILE where the platform mounts secrets as files.
	Secret bool
}

// Docs describes every variable a linepipe service reads. A test fails
// when a service reads a variable missing here, or this lists one that no
// service reads, so help, README and parser cannot drift apart.
var Docs = map[string]Doc{
	"DATABASE_URL":              {Meaning: "Postgres URL. Required by worker and sender; optional for ingest (the `channels` table).", Secret: true},
	"NATS_URL":                  {Meaning: "NATS server(s), comma-separated."},
	"NATS_STREAM":               {Meaning: "JetStream stream name."},
	"NATS_SUBJECT_PREFIX":       {Meaning: "Subjects are `<prefix>.event.<channel>` and `<prefix>.webhook.<channel>`."},
	"NATS_REPLICAS":             {Meaning: "Stream replicas in a NATS cluster (3 for a three-node cluster)."},
	"NATS_DUPLICATES_WINDOW":    {Meaning: "How long JetStream drops a repeated `webhookEventId`. Postgres' unique key covers any later repeat."},
	"LINE_CHANNEL_ID":           {Meaning: "A single channel configured without SQL (with `LINE_CHANNEL_SECRET`). The sender upserts it into `channels` at start; for ingest a row in `channels` wins over it."},
	"LINE_CHANNEL_SECRET":       {Meaning: "That channel's secret: verifies webhooks, and issues stateless access tokens. Never logged.", Secret: true},
	"LINE_CHANNEL_ACCESS_TOKEN": {Meaning: "A static access token for that channel. Without it the sender issues stateless tokens (`/oauth2/v3/token`). Never logged.", Secret: true},
	"LOG_LEVEL":                 {Meaning: "`debug`, `info`, `warn` or `error`."},
	"SHUTDOWN_GRACE":            {Meaning: "How long in-flight requests may take to finish after SIGTERM."},

	"INGEST_ADDR":             {Meaning: "Webhooks at `POST /webhook/{channelID}`, plus `/healthz`, `/readyz`, `/metrics`."},
	"INGEST_MAX_BODY_BYTES":   {Meaning: "Larger bodies get 413 without being read further. Accepts `KiB`/`MiB` suffixes."},
	"INGEST_PUBLISH_TIMEOUT":  {Meaning: "Budget for JetStream's acks; past it, 503 so LINE redelivers. Must be under 2s (LINE's timeout)."},
	"INGEST_CHANNELS_REFRESH": {Meaning: "How often the channel secret cache reloads `channels`."},
	"INGEST_TRUST_PROXY":      {Meaning: "Take the sender IP from `X-Forwarded-For` (only behind a proxy that sets it)."},
	"TLS_CERT_FILE":           {Meaning: "Certificate (PEM) for serving HTTPS, TLS 1.2 or newer; with `TLS_KEY_FILE`."},
	"TLS_KEY_FILE":            {Meaning: "Private key (PEM) for `TLS_CERT_FILE`; keep the file readable by ingest only."},

	"WORKER_ADDR":            {Meaning: "`/healthz`, `/readyz`, `/metrics`."},
	"WORKER_CONSUMER":        {Meaning: "Durable consumer name shared by all replicas."},
	"WORKER_CONCURRENCY":     {Meaning: "Consuming loops per process; each holds one Postgres connection while it stores a batch. Storage is bound by commit latency, so more loops overlap commits (see docs/PERFORMANCE.md)."},
	"WORKER_BATCH_SIZE":      {Meaning: "Most events stored in one transaction."},
	"WORKER_ACK_WAIT":        {Meaning: "An unacknowledged message (its worker died) is redelivered after this, then 2×, 4×. A slow batch signals progress, so it is never redelivered while being stored."},
	"WORKER_MAX_ATTEMPTS":    {Meaning: "Failures of a message's own making before it goes to `dead_letters`, counted per event in `worker_failures` (not JetStream deliveries). Outage-shaped errors (connection loss, shutdown, read-only, serialization, deadlock, too many connections, statement or lock timeout) never count."},
	"ECHO_BOT":               {Meaning: "Reply to every text message with its text (the sample bot; never in standby mode)."},
	"WORKER_REPLAY_INTERVAL": {Meaning: "How often a worker looks for dead letters an operator asked to replay (`replay_requested_at`)."},
	"RETENTION_INTERVAL":     {Meaning: "How often the `retention` table is enforced (one worker replica at a time); `0` turns the janitor off."},
	"WORKER_STATS_INTERVAL":  {Meaning: "How often the outbox, dead-letter and JetStream consumer gauges are refreshed."},

	"LINE_API_BASE_URL":        {Meaning: "Messaging API and token endpoint base URL (the emulator in development)."},
	"SENDER_ADDR":              {Meaning: "`/healthz`, `/readyz`, `/metrics`."},
	"SENDER_BATCH_SIZE":        {Meaning: "Most rows one claim takes."},
	"SENDER_POLL_INTERVAL":     {Meaning: "Longest wait between claims when nothing is due. Committed rows wake the sender at once through `LISTEN/NOTIFY`; the poll is the fallback."},
	"SENDER_LEASE":             {Meaning: "Lease after the rate slot; another replica takes a row over when it ends. At least `SENDER_RATE_HORIZON` + 2 × `SENDER_HTTP_TIMEOUT` + 5s."},
	"SENDER_CONCURRENCY":       {Meaning: "Requests in flight per replica; a row waiting for its rate slot holds one."},
	"SENDER_HTTP_TIMEOUT":      {Meaning: "Per call to LINE (dial and TLS 5s). Past it the attempt is retried with the same key."},
	"SENDER_BACKOFF_BASE":      {Meaning: "First delay of the exponential backoff with jitter after a 5xx, timeout or 429."},
	"SENDER_BACKOFF_MAX":       {Meaning: "Longest backoff delay."},
	"SENDER_RETRY_KEY_MAX_AGE": {Meaning: "A key first used longer ago is never sent again (LINE forgets keys after 24h); the row ends `expired`."},
	"REPLY_TOKEN_TTL":          {Meaning: "A reply row's validity when `not_after` is null."},
	"SENDER_SKIP_UNFOLLOWED":   {Meaning: "A push to a user `followers` shows as not following ends `skipped`."},
	"SENDER_RATE_PUSH":         {Meaning: "LINE's per-channel push rate, shared by all replicas; `N/duration` or `off`.", Default: "2000/1s"},
	"SENDER_RATE_REPLY":        {Meaning: "LINE's per-channel reply rate; `N/duration` or `off`.", Default: "2000/1s"},
	"SENDER_RATE_MULTICAST":    {Meaning: "LINE's per-channel multicast rate; `N/duration` or `off`.", Default: "200/1s"},
	"SENDER_RATE_NARROWCAST":   {Meaning: "LINE's per-channel narrowcast rate; `N/duration` or `off`.", Default: "60/1h"},
	"SENDER_RATE_BROADCAST":    {Meaning: "LINE's per-channel broadcast rate; `N/duration` or `off`.", Default: "60/1h"},
	"SENDER_RECIPIENT_CAP":     {Meaning: "Message objects pushed to one user; `off` disables it."},
	"SENDER_RATE_SLACK":        {Meaning: "How late a send may start after its reserved slot."},
	"SENDER_RATE_HORIZON":      {Meaning: "How far ahead a claim reserves slots."},
	"SENDER_DB_MAX_CONNS":      {Meaning: "Postgres pool size."},

	"LINEFAKE_ADDR":             {Meaning: "The emulator's address (also `/healthz`, `/readyz`, `/metrics`, and its admin API)."},
	"LINEFAKE_CHANNELS":         {Meaning: "`id:secret[:statictoken],…`", Secret: true},
	"LINEFAKE_FAIL_RATE":        {Meaning: "Share of sends answered 500."},
	"LINEFAKE_429_RATE":         {Meaning: "Share of sends answered 429."},
	"LINEFAKE_DROP_RATE":        {Meaning: "Share of sends accepted and then dropped without an answer."},
	"LINEFAKE_LATENCY":          {Meaning: "Fixed delay per send."},
	"LINEFAKE_LATENCY_JITTER":   {Meaning: "Random delay per send, added to `LINEFAKE_LATENCY`."},
	"LINEFAKE_SEED":             {Meaning: "Random seed, for reproducible faults (0: from the clock)."},
	"LINEFAKE_RATE_PUSH":        {Meaning: "Push rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_REPLY":       {Meaning: "Reply rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_MULTICAST":   {Meaning: "Multicast rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_NARROWCAST":  {Meaning: "Narrowcast rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_BROADCAST":   {Meaning: "Broadcast rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_USER_CAP":         {Meaning: "`N/duration` messages to one user."},
	"LINEFAKE_REPLY_TOKEN_TTL":  {Meaning: "Reply token validity."},
	"LINEFAKE_RETRY_KEY_WINDOW": {Meaning: "How long accepted retry keys are remembered."},
}
