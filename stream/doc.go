// Package stream is the websocket hub that pushes live KPI values to
// control-room walls and leaders' tablets, guaranteeing each client the
// updates of a channel in seq order, with no gap and no duplicate across a
// subscription or a recovery (or else an explicit fresh snapshot, or an
// update marked coalesced), and that a slow client never slows the hub or
// the other clients.
//
// The node calls Hub.Publish for every update it receives; a client
// subscribes to channels ("kpi:dossier.received:79:today") over a
// websocket and gets a snapshot of the latest value (or, given the last
// seq it saw, the updates it missed) and then every newer update. The
// protocol is in docs/websocket.md.
//
// Guarantees:
//
//   - Per channel and client, seqs only go up: an update whose seq is not
//     above the last one sent is never sent.
//   - Subscribing is race-free: the subscription is registered before the
//     Source is read, and what Publish hands over meanwhile is buffered and
//     sent after the snapshot or the missed updates, from the next seq on.
//   - A recovery ("since") sends exactly the missed updates, or says
//     recovered:false and sends a fresh snapshot instead.
//   - Publish never waits for a client: it puts the update in each
//     subscriber's queue, where a newer update of a channel replaces one
//     not yet written (the client sees "coalesced":true, so it knows seqs
//     were skipped). A client with more than QueueSize messages waiting, or
//     one write past WriteTimeout, is disconnected with 1013.
//   - Everything a client can make the hub hold is bounded: message size,
//     message rate, subscriptions, queue.
//
// Each connection has a reader goroutine and, only while it has something
// to write, one writer goroutine; heartbeats come from one ticker for the
// whole hub. An idle connection costs about 7 KiB, 12 KiB with 20
// subscriptions (BenchmarkIdleConnMemory). A Hub is safe for concurrent
// use.
package stream
