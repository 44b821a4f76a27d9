# One image with every linepipe command; docker-compose picks the command.
# The exact Go release go.mod names: the image sets GOTOOLCHAIN=local, so
# an older 1.26.x (a cached 1.26 tag, say) would refuse to build.
FROM golang:1.26.8-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# --version and linepipe_build_info report these; `make up` passes them
# from git (docker compose build args VERSION and COMMIT).
ARG VERSION=devel
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags="-s -w -X github.com/linepipe/linepipe/pkg/buildinfo.version=${VERSION} -X github.com/linepipe/linepipe/pkg/buildinfo.commit=${COMMIT}" \
        -o /out/ ./cmd/ingest ./cmd/worker ./cmd/sender ./cmd/linefake ./cmd/sendwebhook ./cmd/loadgen

# Alpine rather than scratch: its busybox wget runs the health checks.
FROM alpine:3.20
RUN adduser -D -H -u 10001 linepipe
COPY --from=build /out/ /usr/local/bin/
USER linepipe
