package tests

import "github.com/linepipe/linepipe/pkg/events"

func signWith(secret string, body []byte) string { return events.Sign(secret, body) }
