// The websocket client of every page (docs/websocket.md): authenticates with
// its first message, subscribes within the server's rate, resumes each
// channel with the last seq it saw after a reconnect, notices a dead
// connection within seconds (its own pings go unanswered, or the browser
// reports the network down), and reconnects by itself with a
// capped, jittered backoff. A channel's value is "live" only while the
// connection is up and the channel's snapshot of this connection has arrived:
// panels grey out everything else.

/** How often the client pings, and how long a silence means a dead connection. */
const PING_MS = 5000;
const DEAD_MS = 12000;
/** A connection live this long resets the reconnect backoff: one the server
 * ends sooner (slow, over its rate, shutting down) keeps backing off. */
const STABLE_MS = 30000;
/** The close reason of a connection whose token's scope changed: the token
 * still holds, so the client reconnects and gets what it grants now. */
export const REVOKED = "access revoked";

export type Status = "connecting" | "live" | "offline" | "unauthorized";

export interface Message {
  type: string;
  id?: string;
  channel?: string;
  seq?: number;
  data?: any;
  recovered?: boolean;
  coalesced?: boolean;
  code?: string;
  message?: string;
  heartbeat_s?: number;
  limits?: { subscriptions: number; message_bytes: number; messages_per_s: number; queue: number };
}

export interface Handler {
  /** A value of the channel (snapshot or update); data null: no value yet. */
  value(data: any, m: Message): void;
  /** The server refused the subscription (forbidden, not_found, …). */
  error?(code: string, message: string): void;
}

interface Sub {
  handlers: Set<Handler>;
  seq?: number; // last seq seen, kept across reconnects
  live: boolean; // a value arrived on this connection
  refused?: { code: string; message: string };
}

interface Call {
  resolve(v: any): void;
  reject(e: Error): void;
  timer: number;
}

export class Live {
  status: Status = "connecting";
  /** When the status last changed (ms). */
  since = Date.now();
  /** Why the last connection ended, for the banner. */
  reason = "";
  private ws?: WebSocket;
  private subs = new Map<string, Sub>();
  private listeners = new Set<(s: Status) => void>();
  private outbox: string[] = [];
  private budget = 30;
  private rate = 15; // messages a second, under the server's 20
  private pump?: number;
  private watchdog?: number;
  private lastHeard = 0;
  private lastPing = 0;
  private attempt = 0;
  private retry?: number;
  private liveSince = 0;
  /** The server's "unauthorized" error, until the close says whether a new token is needed. */
  private authError?: string;
  private closed = false;
  private nextId = 1;
  private calls = new Map<string, Call>();

  constructor(private token: string, private url = wsURL()) {
    this.connect();
    // The browser knows at once when the machine loses its network.
    window.addEventListener("offline", () => {
      const ws = this.ws;
      if (!ws) return;
      this.dropped(ws, "the network is down");
      ws.close(4000, "network down");
    });
    window.addEventListener("online", () => {
      // Retry at once, unless a connection is already being made.
      if (this.status === "offline" && !this.ws) {
        window.clearTimeout(this.retry);
        this.connect();
      }
    });
  }

  /** Subscribes a handler to a channel; returns the function that unsubscribes it. */
  subscribe(channel: string, h: Handler): () => void {
    let s = this.subs.get(channel);
    if (!s) {
      s = { handlers: new Set(), live: false };
      this.subs.set(channel, s);
      if (this.status === "live") this.sendSubscribe(channel, s);
    } else if (s.refused) {
      h.error?.(s.refused.code, s.refused.message);
    }
    s.handlers.add(h);
    return () => {
      const cur = this.subs.get(channel);
      if (!cur) return;
      cur.handlers.delete(h);
      if (cur.handlers.size === 0) {
        this.subs.delete(channel);
        if (this.status === "live" && !cur.refused) this.send({ type: "unsubscribe", channel });
      }
    };
  }

  /** Whether the channel's value on screen is current. */
  isLive(channel: string): boolean {
    return this.status === "live" && !!this.subs.get(channel)?.live;
  }

  onStatus(f: (s: Status) => void): () => void {
    this.listeners.add(f);
    f(this.status);
    return () => this.listeners.delete(f);
  }

  /** A command over the socket (alert.ack); rejects with the server's error. */
  rpc<T>(method: string, data: unknown, timeoutMs = 8000): Promise<T> {
    if (this.status !== "live") return Promise.reject(new Error("offline"));
    const id = "c" + this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.calls.delete(id);
        reject(new Error("no answer within " + timeoutMs / 1000 + " s"));
      }, timeoutMs);
      this.calls.set(id, { resolve, reject, timer });
      this.send({ type: "rpc", id, method, data });
    });
  }

  close() {
    this.closed = true;
    window.clearTimeout(this.retry);
    const ws = this.ws;
    if (ws) {
      this.dropped(ws, "page closed");
      ws.close(1000, "page closed");
    }
  }

  private connect() {
    if (this.closed) return;
    window.clearTimeout(this.retry);
    this.authError = undefined;
    // After a loss the page stays offline, with the time of the loss, until
    // a connection is live again: the retries do not flicker the banner.
    if (this.status !== "offline") this.setStatus("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => this.dropped(ws, ev.reason || (ev.code === 1006 ? "connection lost" : "closed " + ev.code));
  }

  /** Ends a connection once: everything on screen stops being live, then a reconnect is scheduled. */
  private dropped(ws: WebSocket, reason: string) {
    if (this.ws !== ws) return;
    this.ws = undefined;
    window.clearInterval(this.pump);
    window.clearInterval(this.watchdog);
    this.outbox = [];
    for (const s of this.subs.values()) s.live = false;
    for (const [, c] of this.calls) {
      window.clearTimeout(c.timer);
      c.reject(new Error("connection lost"));
    }
    this.calls.clear();
    this.reason = reason;
    if (this.closed) return;
    if (this.authError !== undefined && reason !== REVOKED) {
      // The token was refused or expired: a new one is needed.
      this.reason = this.authError || reason;
      this.setStatus("unauthorized");
      return;
    }
    if (this.authError) this.reason = this.authError;
    if (this.liveSince && Date.now() - this.liveSince >= STABLE_MS) this.attempt = 0;
    this.liveSince = 0;
    this.setStatus("offline");
    // 0.5 s, 1 s, 2 s … up to 30 s, with jitter so a room of walls does
    // not reconnect in step; reset only by a connection that stayed up.
    const base = Math.min(30000, 500 * 2 ** this.attempt++);
    this.retry = window.setTimeout(() => this.connect(), base / 2 + Math.random() * (base / 2));
  }

  private onMessage(raw: string) {
    this.lastHeard = Date.now();
    let m: Message;
    try {
      m = JSON.parse(raw);
    } catch {
      return;
    }
    switch (m.type) {
      case "welcome":
        this.liveSince = Date.now();
        this.lastPing = Date.now();
        if (m.limits?.messages_per_s) this.rate = Math.max(1, Math.floor(m.limits.messages_per_s * 0.75));
        this.budget = this.rate * 2;
        this.pump = window.setInterval(() => this.drain(true), 100);
        this.watchdog = window.setInterval(() => this.watch(), 1000);
        this.setStatus("live");
        for (const [ch, s] of this.subs) {
          s.refused = undefined;
          this.sendSubscribe(ch, s);
        }
        break;
      case "subscribed": {
        // Resumed with nothing missed: what is on screen is current again
        // (missed values, if any, follow as updates).
        const s = this.subs.get(m.channel!);
        if (s && m.recovered) s.live = true;
        break;
      }
      case "snapshot":
      case "update": {
        const s = this.subs.get(m.channel!);
        if (!s) return;
        if (m.type === "snapshot" || s.seq === undefined || (m.seq ?? 0) > s.seq || m.seq === 0) s.seq = m.seq;
        s.live = true;
        s.refused = undefined;
        for (const h of s.handlers) h.value(m.data, m);
        break;
      }
      case "rpc": {
        const c = this.calls.get(m.id!);
        if (c) {
          this.calls.delete(m.id!);
          window.clearTimeout(c.timer);
          c.resolve(m.data);
        }
        break;
      }
      case "ping":
        this.send({ type: "pong" });
        break;
      case "error":
        this.onError(m);
        break;
    }
  }

  private onError(m: Message) {
    const code = m.code ?? "error";
    const msg = m.message ?? "";
    if (code === "unauthorized") {
      // The server closes next; its reason tells a revoked scope (reconnect)
      // from a token refused or expired (a new one is needed).
      this.authError = msg;
      return;
    }
    const c = m.id ? this.calls.get(m.id) : undefined;
    if (c) {
      this.calls.delete(m.id!);
      window.clearTimeout(c.timer);
      c.reject(Object.assign(new Error(msg), { code }));
      return;
    }
    // Subscribe requests carry the channel as their id.
    const ch = m.id?.startsWith("s:") ? m.id.slice(2) : undefined;
    const s = ch ? this.subs.get(ch) : undefined;
    if (!s) return;
    const again = () => this.subs.get(ch!) === s && this.status === "live" && this.sendSubscribe(ch!, s);
    if (code === "rate_limited" || code === "unavailable") {
      window.setTimeout(again, 2000);
      return;
    }
    // A limit may lift (the node follows fewer channels, another panel
    // let one go): shown, and asked again every 10 s.
    if (code === "limit") window.setTimeout(again, 10000);
    s.refused = { code, message: msg };
    for (const h of s.handlers) h.error?.(code, msg);
  }

  private sendSubscribe(channel: string, s: Sub) {
    const req: Record<string, unknown> = { type: "subscribe", id: "s:" + channel, channel };
    if (s.seq !== undefined && s.seq > 0) req.since = s.seq;
    this.send(req);
  }

  private send(m: unknown) {
    this.outbox.push(JSON.stringify(m));
    this.drain(false);
  }

  /** Sends queued messages within the server's rate (a token bucket). */
  private drain(tick: boolean) {
    if (tick) this.budget = Math.min(this.rate * 2, this.budget + this.rate / 10);
    while (this.outbox.length && this.budget >= 1 && this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(this.outbox.shift()!);
      this.budget--;
    }
  }

  /** The client pings every PING_MS; a connection from which nothing came
   * for DEAD_MS (no answer to two pings) is dead: drop it now rather than
   * wait for the network stack, which can take minutes to notice. */
  private watch() {
    const now = Date.now();
    const silent = now - this.lastHeard;
    if (silent > DEAD_MS && this.ws) {
      const ws = this.ws;
      this.dropped(ws, "no answer for " + Math.round(silent / 1000) + " s");
      ws.close(4000, "no answer");
      return;
    }
    if (now - this.lastPing >= PING_MS) {
      this.lastPing = now;
      this.send({ type: "ping", id: "hb" });
    }
  }

  private setStatus(s: Status) {
    if (s === this.status && s !== "connecting") return;
    this.status = s;
    this.since = Date.now();
    for (const f of this.listeners) f(s);
  }
}

function wsURL(): string {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}
