// Package deploy holds what runs beside linepipe: Prometheus' alert rules
// and scrape configuration, and the Grafana dashboard. It is a module of
// its own so that its test, which loads the rules with Prometheus' own
// parser, does not add Prometheus' dependencies to linepipe's go.mod.
// `make test` runs it.
package deploy
