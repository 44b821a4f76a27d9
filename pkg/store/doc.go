// Package store holds every SQL statement linepipe runs, grouped by table,
// so an operator can read in one place what the services do to the
// database. Migrations live in /migrations and are applied by Migrate.
package store
