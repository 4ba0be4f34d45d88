// Package query owns ClickHouse: the one place that opens a connection, the
// embedded schema migrations (versioned, idempotent, recorded in
// schema_migrations, creatable as Replicated + Distributed tables on a named
// cluster), and — as the product grows — the KPI catalog and the analyst SQL
// API. Every statement it issues stays within what both ClickHouse 18.16 and
// current releases accept.
package query
