package store

// Seams for the external tests.
var (
	MigrateFS         = migrateFS
	MigrationStatusFS = migrationStatusFS
	SchemaReadyFor    = schemaReady
)

// TextArray is textArray, for the round trip through Postgres.
var TextArray = textArray
