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
	"DATABASE_URL":              {Meaning: "Postgres URL. Required by worker and sender; optional for ingest (the `channels` table). Each service connects as its own login user (`linepipe_<service>_user`, see `*_DB_PASSWORD`); only `worker migrate` and `worker seal-channels` as the schema owner. The password may also come from `PGPASSWORD` or `PGPASSFILE`.", Secret: true},
	"NATS_USER":                 {Meaning: "The service's NATS user (deploy/nats/nats.conf has `ingest`, `worker` and `sender`), with `NATS_PASSWORD`."},
	"NATS_PASSWORD":             {Meaning: "That user's password.", Secret: true},
	"NATS_CREDS":                {Meaning: "Instead of a user and password: a NATS credentials file (JWT and nkey)."},
	"NATS_NKEY_SEED_FILE":       {Meaning: "Instead of a user and password: a file holding an nkey seed."},
	"NATS_TLS_CA":               {Meaning: "Verify the NATS server's certificate against this CA (PEM)."},
	"NATS_TLS_CERT":             {Meaning: "Client certificate (PEM) presented to NATS, with `NATS_TLS_KEY`."},
	"NATS_TLS_KEY":              {Meaning: "Private key (PEM) for `NATS_TLS_CERT`.", Secret: true},
	"LINEPIPE_SECRET_KEY":       {Meaning: "Comma-separated 32-byte keys (64 hex digits or base64). Channel secrets and access tokens are stored sealed (AES-256-GCM) with the first and opened with any, so plaintext rows still read; `worker seal-channels` rewrites rows under the first (rotation: docs/SECURITY.md). Unset: one warning at start, credentials stored in plaintext.", Secret: true},
	"INGEST_DB_PASSWORD":        {Meaning: "`worker migrate` creates or updates the login user `linepipe_ingest_user` (role `linepipe_ingest`: reads `channels` only) with this password. Unset: the user is not touched.", Secret: true},
	"WORKER_DB_PASSWORD":        {Meaning: "Likewise `linepipe_worker_user` (role `linepipe_worker`).", Secret: true},
	"SENDER_DB_PASSWORD":        {Meaning: "Likewise `linepipe_sender_user` (role `linepipe_sender`).", Secret: true},
	"NATS_URL":                  {Meaning: "NATS server(s), comma-separated."},
	"NATS_STREAM":               {Meaning: "JetStream stream name."},
	"NATS_SUBJECT_PREFIX":       {Meaning: "Subjects are `<prefix>.event.<channel>`, `<prefix>.webhook.<channel>` and `<prefix>.bundle`."},
	"NATS_REPLICAS":             {Meaning: "Stream replicas in a NATS cluster (3 for a three-node cluster)."},
	"NATS_DUPLICATES_WINDOW":    {Meaning: "How long JetStream drops a repeated `webhookEventId` published as a message of its own (redeliveries; every event with bundling off). Postgres' unique key covers every other repeat."},
	"LINE_CHANNEL_ID":           {Meaning: "A single channel configured without SQL (with `LINE_CHANNEL_SECRET`). The sender inserts it into `channels` at start only when the row is absent; once the row exists **the table wins** in every service, so a rotation by `UPDATE` survives restarts. Ingest uses the environment's secret only for a channel the table does not have."},
	"LINE_CHANNEL_SECRET":       {Meaning: "That channel's secret: verifies webhooks, and issues stateless access tokens. Never logged.", Secret: true},
	"LINE_CHANNEL_ACCESS_TOKEN": {Meaning: "A static access token for that channel. Without it the sender issues stateless tokens (`/oauth2/v3/token`). Never logged.", Secret: true},
	"LOG_LEVEL":                 {Meaning: "`debug`, `info`, `warn` or `error`."},
	"SHUTDOWN_GRACE":            {Meaning: "How long in-flight requests may take to finish after SIGTERM."},

	"INGEST_ADDR":              {Meaning: "Webhooks at `POST /webhook/{channelID}`, and nothing else: the public port."},
	"INGEST_ADMIN_ADDR":        {Meaning: "`/healthz`, `/readyz`, `/metrics`. Do not publish it (compose does not)."},
	"INGEST_TRUSTED_PROXIES":   {Meaning: "Comma-separated CIDRs of the reverse proxies, with `INGEST_TRUST_PROXY`.", Default: "127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7"},
	"INGEST_MAX_BODY_BYTES":    {Meaning: "Larger bodies get 413 without being read further. Accepts `KiB`/`MiB` suffixes."},
	"INGEST_PUBLISH_TIMEOUT":   {Meaning: "Budget for JetStream's acks; past it, 503 so LINE redelivers. Must be under 2s (LINE's timeout)."},
	"INGEST_BUNDLE_MAX_EVENTS": {Meaning: "Most events of concurrent webhooks published together as one stream message (one JetStream write and fsync for all). Redeliveries always go one message per event. 0 turns bundling off."},
	"INGEST_CHANNELS_REFRESH":  {Meaning: "How often the channel secret cache reloads `channels`."},
	"INGEST_TRUST_PROXY":       {Meaning: "Take the sender IP from `X-Forwarded-For`: the rightmost hop that is not a trusted proxy (`INGEST_TRUSTED_PROXIES`), and only when the peer itself is one."},
	"TLS_CERT_FILE":            {Meaning: "Certificate (PEM) for serving HTTPS, TLS 1.2 or newer; with `TLS_KEY_FILE`."},
	"TLS_KEY_FILE":             {Meaning: "Private key (PEM) for `TLS_CERT_FILE`; keep the file readable by ingest only."},

	"WORKER_ADDR":            {Meaning: "`/healthz`, `/readyz`, `/metrics`."},
	"WORKER_CONSUMER":        {Meaning: "Durable consumer name shared by all replicas."},
	"WORKER_CONCURRENCY":     {Meaning: "Consuming loops per process; each holds one Postgres connection while it stores a batch. Two keep a steady load's commits few and large, which keeps replies fast; four drain a backlog about a tenth faster (see docs/PERFORMANCE.md)."},
	"WORKER_BATCH_SIZE":      {Meaning: "Most events stored in one transaction."},
	"WORKER_ACK_WAIT":        {Meaning: "An unacknowledged message (its worker died) is redelivered after this, then 2×, 4×. A slow batch signals progress, so it is never redelivered while being stored."},
	"WORKER_MAX_ATTEMPTS":    {Meaning: "Failures of a message's own making before it goes to `dead_letters`, counted per event in `worker_failures` (not JetStream deliveries). Outage-shaped errors (connection loss, shutdown, read-only, serialization, deadlock, too many connections, statement or lock timeout) never count."},
	"ECHO_BOT":               {Meaning: "Reply to every text message with its text (the sample bot; never in standby mode)."},
	"WORKER_REPLAY_INTERVAL": {Meaning: "How often a worker looks for dead letters an operator asked to replay (`replay_requested_at`)."},
	"RETENTION_INTERVAL":     {Meaning: "How often the `retention` table is enforced: by one worker replica at a time for its tables, and by one sender replica at a time (the content fetcher) for `message_content`; `0` turns each off."},
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
	"SENDER_RATE_SLACK":        {Meaning: "Widens the spacing of rate slots (limit per period + slack); a send may start a quarter of it after its slot, and the rest absorbs requests bunching on their way to LINE."},
	"SENDER_RATE_HORIZON":      {Meaning: "How far ahead a claim reserves slots."},
	"SENDER_DB_MAX_CONNS":      {Meaning: "Postgres pool size."},

	"CONTENT_FETCH":          {Meaning: "Run the content fetcher beside the outbox loop (see Message content)."},
	"LINE_DATA_API_BASE_URL": {Meaning: "LINE's data API (message content and transcoding status); the emulator in development."},
	"CONTENT_BUCKET":         {Meaning: "JetStream Object Store bucket for message content, objects `<channelID>/<messageID>`; replicas follow `NATS_REPLICAS`. `worker content get` reads it too."},
	"CONTENT_MAX_BYTES":      {Meaning: "Largest content kept; a larger one ends `failed` and nothing of it is stored. Accepts `KiB`/`MiB` suffixes."},
	"CONTENT_CONCURRENCY":    {Meaning: "Downloads in flight per replica; each streams through one 128 KiB chunk at a time."},
	"CONTENT_LEASE":          {Meaning: "A fetch's lease; a dead fetcher's row is taken over when it ends. A fetch in progress extends it every third of the lease (fenced by its `claim_id`), so a download may take longer as long as 128 KiB arrive within each lease. At least `CONTENT_HTTP_TIMEOUT` + 10s."},
	"CONTENT_HTTP_TIMEOUT":   {Meaning: "Wait for LINE's answer headers, and longest pause in a body, before the attempt is retried."},
	"CONTENT_BACKOFF_BASE":   {Meaning: "First delay of the exponential backoff with jitter after a 5xx, 429, timeout or cut body."},
	"CONTENT_BACKOFF_MAX":    {Meaning: "Longest content backoff delay."},
	"CONTENT_MAX_ATTEMPTS":   {Meaning: "Failed attempts before a content row ends `failed`."},
	"CONTENT_RATE":           {Meaning: "Content and transcoding calls per channel and endpoint (LINE's \"other endpoints\" limit), drawn from the `outbox_rate` buckets all replicas share; `N/duration` or `off`."},

	"LINEFAKE_ADDR":              {Meaning: "The emulator's address (also `/healthz`, `/readyz`, `/metrics`, and its admin API)."},
	"LINEFAKE_CHANNELS":          {Meaning: "`id:secret[:statictoken],…`", Secret: true},
	"LINEFAKE_CONTENT_PREPARING": {Meaning: "How long a video or audio answers 202 (transcoding `processing`) after its webhook event."},
	"LINEFAKE_CONTENT_FAIL_RATE": {Meaning: "Share of content downloads answered 500."},
	"LINEFAKE_CONTENT_429_RATE":  {Meaning: "Share of content downloads answered 429."},
	"LINEFAKE_CONTENT_DROP_RATE": {Meaning: "Share of content downloads cut after half the body."},
	"LINEFAKE_FAIL_RATE":         {Meaning: "Share of sends answered 500."},
	"LINEFAKE_429_RATE":          {Meaning: "Share of sends answered 429."},
	"LINEFAKE_DROP_RATE":         {Meaning: "Share of sends accepted and then dropped without an answer."},
	"LINEFAKE_LATENCY":           {Meaning: "Fixed delay per send."},
	"LINEFAKE_LATENCY_JITTER":    {Meaning: "Random delay per send, added to `LINEFAKE_LATENCY`."},
	"LINEFAKE_SEED":              {Meaning: "Random seed, for reproducible faults (0: from the clock)."},
	"LINEFAKE_RATE_PUSH":         {Meaning: "Push rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_REPLY":        {Meaning: "Reply rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_MULTICAST":    {Meaning: "Multicast rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_NARROWCAST":   {Meaning: "Narrowcast rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_BROADCAST":    {Meaning: "Broadcast rate limit, `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_RATE_OTHER":        {Meaning: "LINE's \"other endpoints\" limit, for get content and get transcoding status, each endpoint its own bucket; `N/duration` or `off`.", Default: "LINE's"},
	"LINEFAKE_USER_CAP":          {Meaning: "`N/duration` messages to one user."},
	"LINEFAKE_REPLY_TOKEN_TTL":   {Meaning: "Reply token validity."},
	"LINEFAKE_RETRY_KEY_WINDOW":  {Meaning: "How long accepted retry keys are remembered."},
}
