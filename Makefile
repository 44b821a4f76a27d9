# linepipe developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export TEST_NATS_URL ?= nats://127.0.0.1:4222

# Development stack: the LINE emulator in place of LINE, the echo bot on,
# and a demo channel whose secret and token the emulator shares. The
# passwords are for development only; compose refuses to start without them.
DEV_ENV := COMPOSE_PROFILES=dev LINE_API_BASE_URL=http://linefake:8090 \
	LINE_DATA_API_BASE_URL=http://linefake:8090/data ECHO_BOT=true \
	LINE_CHANNEL_ID=1234567890 LINE_CHANNEL_SECRET=0123456789abcdef0123456789abcdef \
	LINE_CHANNEL_ACCESS_TOKEN=dev-static-token \
	POSTGRES_PASSWORD=dev-owner INGEST_DB_PASSWORD=dev-ingest WORKER_DB_PASSWORD=dev-worker \
	SENDER_DB_PASSWORD=dev-sender NATS_INGEST_PASSWORD=dev-ingest NATS_WORKER_PASSWORD=dev-worker \
	NATS_SENDER_PASSWORD=dev-sender \
	NATS_ADMIN_PASSWORD=dev-admin

# What --version and linepipe_build_info report, stamped at link time.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
export VERSION COMMIT
LDFLAGS := -X github.com/linepipe/linepipe/pkg/buildinfo.version=$(VERSION) -X github.com/linepipe/linepipe/pkg/buildinfo.commit=$(COMMIT)
CLUSTER := -f docker-compose.yml -f docker-compose.cluster.yml

.PHONY: test up down compose up-observability up-cluster down-cluster build vet bench chaos chaos-short chaos-cluster fuzz mutate

## test: every unit and integration test against real Postgres and NATS,
## and the alert rules and dashboard (deploy/, a module of its own)
test:
	go test -count=1 -timeout 20m ./...
	cd deploy && go test -count=1 ./...

## up: the development stack with the emulator (needs Docker)
up:
	$(DEV_ENV) docker compose up --build -d

down:
	$(DEV_ENV) docker compose down

## up-observability: the development stack with Prometheus and Grafana beside it
up-observability:
	$(DEV_ENV) COMPOSE_PROFILES=dev,observability docker compose up --build -d

## compose: any docker compose command against the development stack, with
## the variables `make up` sets, e.g. make compose ARGS='logs -f worker'
compose:
	$(DEV_ENV) docker compose $(ARGS)

## up-cluster: the development stack on a three-node NATS JetStream cluster (needs Docker)
up-cluster:
	$(DEV_ENV) docker compose $(CLUSTER) up --build -d

down-cluster:
	$(DEV_ENV) docker compose $(CLUSTER) down

build:
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

vet:
	gofmt -l . | tee /dev/stderr | (! read)
	go vet ./...
	cd deploy && go vet ./...

## bench: one table of throughput, latency and memory, each against its ceiling
bench:
	go run ./cmd/bench

## chaos: five minutes of load with processes, NATS and Postgres killed, then an audit
chaos:
	go run ./cmd/chaos

chaos-short:
	go run ./cmd/chaos -short

## chaos-cluster: chaos against a private three-node NATS cluster, one node killed mid-run
chaos-cluster:
	go run ./cmd/chaos -cluster

fuzz:
	go test -run XXX -fuzz FuzzWebhookHandler -fuzztime 60s ./pkg/ingest/

## mutate: break each documented guarantee in turn (docs/mutations.txt) and
## show that a test fails for every one; before a release, after changing a guarantee
mutate:
	go run ./cmd/mutate
