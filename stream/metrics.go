package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Why a connection ended: the values of the reason label of
// ioc_ws_disconnects_total.
const (
	reasonSlow      = "slow"      // queue over QueueSize or a write past WriteTimeout
	reasonRate      = "rate"      // kept sending over MessageRate
	reasonSize      = "size"      // a message over MaxMessageBytes
	reasonAuth      = "auth"      // no, late or refused token
	reasonHeartbeat = "heartbeat" // nothing received for 2 × PingInterval
	reasonClient    = "client"    // the client closed or the network failed
	reasonShutdown  = "shutdown"  // Hub.Close
)

var disconnectReasons = []string{reasonSlow, reasonRate, reasonSize, reasonAuth, reasonHeartbeat, reasonClient, reasonShutdown}

// Why an update was not sent to a subscriber: the values of the reason
// label of ioc_ws_updates_dropped_total.
const (
	dropStale      = "stale"      // seq not above the last one the subscriber got
	dropInvalid    = "invalid"    // Publish got data that is not JSON
	dropDisconnect = "disconnect" // still queued when the connection closed
)

type metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	sent          [numKinds]prometheus.Counter
	received      map[string]prometheus.Counter
	errors        *prometheus.CounterVec
	published     prometheus.Counter
	coalesced     prometheus.Counter
	dropped       map[string]prometheus.Counter
	disconnects   map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_messages_sent_total",
		Help: "Messages written to websocket clients, by type (welcome, subscribed, unsubscribed, snapshot, update, error, ping, pong)."}, []string{"type"})
	received := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_messages_received_total",
		Help: "Messages read from websocket clients, by type (auth, subscribe, unsubscribe, rpc, ping, pong, invalid; ping_frame: websocket ping frames, answered with a pong frame while within the message rate)."}, []string{"type"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_updates_dropped_total",
		Help: "Updates not sent to a subscriber, by reason (stale: seq not above the last sent; invalid: data not JSON; disconnect: queued when the connection closed)."}, []string{"reason"})
	disconnects := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_disconnects_total",
		Help: "Websocket connections ended, by reason (slow, rate, size, auth, heartbeat, client, shutdown)."}, []string{"reason"})
	m := &metrics{
		connections:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ws_connections", Help: "Open websocket connections."}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_ws_subscriptions", Help: "Channel subscriptions of all open websocket connections."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_ws_errors_total",
			Help: "Error messages sent to websocket clients, by code (bad_request, unauthorized, forbidden, limit, rate_limited, not_found, unavailable)."}, []string{"code"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_updates_published_total", Help: "Updates handed to the hub by Publish."}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_ws_updates_coalesced_total",
			Help: "Updates replaced by a newer one of the same channel before they were written to a subscriber (slow reader)."}),
		received:    map[string]prometheus.Counter{},
		dropped:     map[string]prometheus.Counter{},
		disconnects: map[string]prometheus.Counter{},
	}
	// Resolve every label value once: the hot paths then touch a counter,
	// never the vector's map.
	for k := range numKinds {
		m.sent[k] = sent.WithLabelValues(kindNames[k])
	}
	for _, t := range []string{msgAuth, msgSubscribe, msgUnsubscribe, msgRPC, msgPing, msgPong, "invalid", "ping_frame"} {
		m.received[t] = received.WithLabelValues(t)
	}
	for _, r := range []string{dropStale, dropInvalid, dropDisconnect} {
		m.dropped[r] = dropped.WithLabelValues(r)
	}
	for _, r := range disconnectReasons {
		m.disconnects[r] = disconnects.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.subscriptions, sent, received, m.errors, m.published, m.coalesced, dropped, disconnects)
	}
	return m
}

func (m *metrics) receivedType(t string) prometheus.Counter {
	if c, ok := m.received[t]; ok {
		return c
	}
	return m.received["invalid"]
}
