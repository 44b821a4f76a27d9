// Package loadgen plays LINE's side of webhooks at scale against
// linepipe's ingest, because LINE forbids load-testing through its
// platform and warns that webhooks arrive in sudden floods.
//
// It signs each body with the channel secret exactly as LINE does,
// gives every event a fresh ULID webhookEventId, mixes event types by
// weight (including a type LINE has not released), unsends only messages
// the server acknowledged, and redelivers failed requests with
// isRedelivery=true and the same event IDs, like LINE with webhook
// redelivery on. Load is paced open loop at a target rate, so a slow
// server cannot lower what it is offered, or closed loop at a fixed
// concurrency.
//
// A run reports throughput, exact latency percentiles and status counts,
// and keeps an audit record of every acknowledged event and every unsent
// message, which chaos runs check against storage afterwards.
//
// StartNoopServer runs a reference server that verifies signatures and
// answers 200 without publishing: the HTTP ceiling ingest is measured
// against.
package loadgen
