package store

import "github.com/jackc/pgx/v5/pgtype"

// Seams for the external tests.
var (
	MigrateFS         = migrateFS
	MigrationStatusFS = migrationStatusFS
	SchemaReadyFor    = schemaReady
	ScramVerifier     = scramVerifier
)

// ContentDueSQL is the statement a content claim reads its rows with.
var ContentDueSQL = contentDueSQL

// TextArray is textArray, for the round trip through Postgres.
var TextArray = textArray

// IsFastArrayPlan tells the one-pass array plans (arrays.go) from pgx's.
func IsFastArrayPlan(p pgtype.EncodePlan) bool {
	switch p.(type) {
	case textArrayPlan, timeArrayPlan:
		return true
	}
	return false
}
