// Package ingest takes the city's events in and lands them in ClickHouse.
//
// The contract: CloudEvents 1.0 in structured JSON mode, types
// vn.ioc.<family>.<transition>, data validated against the JSON Schemas under
// schema/ (the same interpreter on every path: HTTP, NATS, Arrow backfill).
// Personal data is replaced by keyed pseudonyms before an event leaves the
// intake. A sender is acknowledged only after JetStream stored its accepted
// events; source+id is the idempotency key (JetStream de-duplicates within
// its window, ClickHouse tables collapse or ignore any later repeat).
//
// The writer drains JetStream into ClickHouse in batches bounded by size and
// time, acks JetStream only after ClickHouse accepted the insert, retries
// failed inserts with capped backoff and never drops them, moves events that
// can never be inserted to the dead_letters table with the reason, and
// publishes a commit notice per batch on ioc.commits.<family>.
package ingest
