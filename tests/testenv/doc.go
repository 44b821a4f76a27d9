// Package testenv gives tests real services, resolved the same way
// everywhere:
//
//  1. TEST_DATABASE_URL / TEST_NATS_URL, as CI sets them;
//  2. otherwise a container started with testcontainers-go (needs Docker);
//  3. for NATS only, otherwise an embedded JetStream server in-process.
//
// Every test gets its own Postgres schema and its own stream and subject
// prefix, so tests run in parallel against one server.
package testenv
