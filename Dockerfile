# One image with every linepipe command; docker-compose picks the command.
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/ingest ./cmd/worker ./cmd/sender ./cmd/linefake ./cmd/sendwebhook ./cmd/loadgen

# Alpine rather than scratch: its busybox wget runs the health checks.
FROM alpine:3.20
RUN adduser -D -H -u 10001 linepipe
COPY --from=build /out/ /usr/local/bin/
USER linepipe
