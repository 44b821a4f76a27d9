// Package migrations embeds linepipe's schema changes: plain SQL files,
// applied in lexical order by `worker migrate` (see pkg/store.Migrate).
// A file, once released, is never edited; changes go in a new file.
package migrations

import "embed"

// FS holds every *.sql file in this directory.
//
//go:embed *.sql
var FS embed.FS
