// Unit tests of the websocket client (src/lib/live.ts) with a fake socket
// and fake timers: `node --test` on the client compiled by tsc into
// $IOC_LIVE_JS (web/ui_test.go does both).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

let listeners, timers, now, nextTimer, sockets;

class FakeSocket {
  static OPEN = 1;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    sockets.push(this);
  }
  send(m) {
    this.sent.push(JSON.parse(m));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  msg(m) {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function advance(ms) {
  const end = now + ms;
  for (;;) {
    timers.sort((a, b) => a.at - b.at);
    const t = timers[0];
    if (!t || t.at > end) break;
    now = t.at;
    if (t.every) t.at += t.every;
    else timers.shift();
    t.f();
  }
  now = end;
}

beforeEach(() => {
  listeners = {};
  timers = [];
  now = 1_000_000;
  nextTimer = 1;
  sockets = [];
  globalThis.location = { protocol: "http:", host: "node" };
  globalThis.window = {
    addEventListener: (type, f) => (listeners[type] ??= []).push(f),
    setTimeout: (f, ms) => {
      const id = nextTimer++;
      timers.push({ id, at: now + ms, f });
      return id;
    },
    clearTimeout: (id) => (timers = timers.filter((t) => t.id !== id)),
    setInterval: (f, ms) => {
      const id = nextTimer++;
      timers.push({ id, at: now + ms, f, every: ms });
      return id;
    },
    clearInterval: (id) => (timers = timers.filter((t) => t.id !== id)),
  };
  globalThis.WebSocket = FakeSocket;
  Date.now = () => now;
});

const { Live } = await import(process.env.IOC_LIVE_JS);
const welcome = { type: "welcome", heartbeat_s: 25, limits: { messages_per_s: 20 } };
const last = () => sockets[sockets.length - 1];

function connected(live) {
  last().open();
  last().msg(welcome);
  assert.equal(live.status, "live");
}

test("a revoked scope reconnects with the same token", () => {
  const live = new Live("tok");
  connected(live);
  last().msg({ type: "error", code: "unauthorized", message: "unit 26740 left the subtree" });
  last().drop(1008, "access revoked");
  assert.equal(live.status, "offline");
  advance(60_000);
  assert.equal(sockets.length, 2, "no new connection after access revoked");
  last().open();
  assert.deepEqual(last().sent[0], { type: "auth", token: "tok" });
});

test("a refused or expired token needs a new one", () => {
  for (const reason of ["token expired", "unauthorized"]) {
    sockets = [];
    const live = new Live("tok");
    connected(live);
    last().msg({ type: "error", code: "unauthorized", message: "the token expired at …" });
    last().drop(1008, reason);
    assert.equal(live.status, "unauthorized", reason);
    assert.equal(live.reason, "the token expired at …");
    advance(120_000);
    assert.equal(sockets.length, 1, `${reason}: reconnected without a new token`);
  }
});

test("the network coming back during a retry opens no second socket", () => {
  const live = new Live("tok");
  connected(live);
  last().drop(1006);
  advance(600); // the retry is connecting
  assert.equal(sockets.length, 2);
  for (const f of listeners.online) f();
  assert.equal(sockets.length, 2, "a second socket was opened");
  connected(live);
  assert.equal(timers.filter((t) => t.every).length, 2, "one pump and one watchdog");
});

test("the network coming back while waiting retries at once", () => {
  const live = new Live("tok");
  connected(live);
  last().drop(1006);
  for (const f of listeners.online) f();
  assert.equal(sockets.length, 2);
  assert.equal(live.status, "offline");
});

test("a server that keeps cutting the client off gets a growing backoff", () => {
  const live = new Live("tok");
  const waits = [];
  for (let i = 0; i < 6; i++) {
    connected(live);
    last().drop(1013, "slow client");
    const before = sockets.length;
    const start = now;
    while (sockets.length === before) advance(50);
    waits.push(now - start);
  }
  assert.ok(waits[5] >= 8000, `waits ${waits}: no backoff`);
});

test("a connection that stayed up resets the backoff", () => {
  const live = new Live("tok");
  for (let i = 0; i < 5; i++) {
    connected(live);
    last().drop(1013, "slow client");
    advance(31_000);
  }
  connected(live);
  for (let t = 0; t < 31_000; t += 5000) {
    advance(5000);
    last().msg({ type: "pong", id: "hb" }); // answers the client's pings
  }
  assert.equal(sockets.length, 6, "the connection did not stay up");
  last().drop(1006);
  const start = now;
  const before = sockets.length;
  while (sockets.length === before) advance(50);
  assert.ok(now - start <= 500, `waited ${now - start} ms after a stable connection`);
});

test("a refused subscription recovers at its next value, and a limit is asked again", () => {
  const live = new Live("tok");
  const seen = [];
  live.subscribe("kpi:dossier.received:79:today", {
    value: (d) => seen.push(["value", d]),
    error: (code) => seen.push(["error", code]),
  });
  connected(live);
  const subs = () => last().sent.filter((m) => m.type === "subscribe").length;
  assert.equal(subs(), 1);
  last().msg({ type: "error", id: "s:kpi:dossier.received:79:today", code: "limit", message: "node limit" });
  advance(10_500);
  assert.equal(subs(), 2, "a limit was not asked again");
  last().msg({ type: "snapshot", channel: "kpi:dossier.received:79:today", seq: 3, data: { value: 5 } });
  assert.deepEqual(seen, [["error", "limit"], ["value", { value: 5 }]]);
  assert.ok(live.isLive("kpi:dossier.received:79:today"));
});
