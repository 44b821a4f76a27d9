package store

// Seams for the external tests.
var (
	MigrateFS         = migrateFS
	MigrationStatusFS = migrationStatusFS
	SchemaReadyFor    = schemaReady
)
