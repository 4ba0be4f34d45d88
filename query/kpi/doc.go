// Package kpi is the KPI catalog and engine: every KPI of catalog.yaml,
// computed in ClickHouse over the curated views for every unit subtree and
// window, published to a NATS KV bucket that every node's websocket hub
// watches.
//
// Guarantees:
//   - one definition, one number: the engine's query for all units and the
//     single-key SQL that /api/v1/kpis/{kpi}/sql shows sum the same integer
//     expressions over the same rows, so they agree to the last digit;
//   - a value is published only when it changed, with the next sequence
//     number of its key (contiguous from 1), after JetStream stored it;
//   - one node computes at a time (a lease in the KV bucket); a node that
//     takes over starts from the values in the bucket, so sequences go on;
//   - the sums read the state views, which fold duplicates away, or tables
//     the engine recomputes from them (rollups, open entities), never
//     increments: a repeated delivery never changes a value.
//
// The engine recomputes the families named by the writer's commit notices
// (debounced), and every family on a sweep timer for what time alone
// changes.
package kpi
