package store

// Seams for the external tests.
var (
	MigrateFS         = migrateFS
	MigrationStatusFS = migrationStatusFS
	SchemaReadyFor    = schemaReady
)

// ContentDueSQL is the statement a content claim reads its rows with.
var ContentDueSQL = contentDueSQL

// TextArray is textArray, for the round trip through Postgres.
var TextArray = textArray
