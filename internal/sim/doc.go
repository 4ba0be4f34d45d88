// Package sim simulates a city's administration as CloudEvents — one-stop
// dossiers, 1022 feedback tickets, camera heartbeats and detections,
// satisfaction surveys and indicator reports — and guarantees that every
// event it produces satisfies the ingest contract, that the same seed and
// configuration give the same events byte for byte, and that a scenario
// recounts exactly to the published figures it is built from.
//
// A [Generator] is the live city: arrivals follow the scale of
// domain/BRIEF.md (about 5,000 dossiers and 3,000 tickets a day, 721
// cameras with a heartbeat a minute and a detection every few seconds,
// surveys for about 30 % of resolved dossiers, indicator reports at the
// start of each month), with daily and weekly rhythms, rush hours and rainy
// months. Each dossier or ticket is planned whole when it arrives (deadlines
// from the business calendar via worktime) and its later events wait in a
// time-ordered, bounded queue, so the stream comes out in simulated-time
// order. Unit traits (online share, lateness, satisfaction) derive from the
// seed and the unit code.
//
// A [Scenario] (JSON, embedded under scenarios/ or read from a file) is a
// list of cohorts with exact splits, e.g. 8,191 dossiers resolved in 2023
// of which 8,167 early. Exact counts are allocated by a deterministic
// shuffle; each entity is planned from its own random source so that the
// reception times can be sorted first and the entities replayed in time
// order without holding them all in memory. Only survey cohorts produce
// surveys and only the splits named are exact; the rest is drawn as in the
// live city.
//
// [Run] sends any [Source] through a [Sender] ([HTTPSender] for an ioc
// server) at a controlled rate (a token bucket never bursting beyond one
// batch), pacing the events on a simulated clock that never runs ahead of
// the wall clock. Generators and players are not safe for concurrent use;
// an HTTPSender is.
//
// Personal data in the events (citizen ids, names, phone numbers) is fake
// and shaped like the real thing; ingest pseudonymizes it like real data.
package sim
