// Package sqlapi is the analysts' SQL API: one read-only statement per
// request, checked by a statement guard (SELECT-like statements only, one
// statement, no SETTINGS/FORMAT/INTO, no table functions or system tables
// that reach outside the database), run as ClickHouse's read-only user and
// streamed as JSON, NDJSON, CSV or an Arrow IPC stream with bounded memory.
//
// Guarantees: a statement the guard refuses never reaches ClickHouse; a
// leader's statement reads only curated views, each filtered by the server
// to the leader's unit subtree; a statement whose client goes away, whose
// timeout passes or whose max_rows is reached is stopped in ClickHouse with
// KILL QUERY; every statement, refused ones included, is written to the
// sql_audit table. Service is safe for concurrent use.
package sqlapi
