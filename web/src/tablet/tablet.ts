// The leader's tablet (/tablet): a unit's KPIs, the ranking of the units
// below it, its overdue and due-soon dossiers and overdue tickets (grouped by
// the officer holding them) and its alerts, live over the websocket. Touch
// first (44 px targets), one column on a phone, light theme, Vietnamese with
// an English toggle. Navigation is history.pushState: /tablet is the token's
// own unit, /tablet/unit/<code> any unit of its scope, ?officer=<id> the
// officer level of the drill-down.
import "../styles/tablet.css";
import { Api, ApiError, type Dashboard, type Unit } from "../lib/api";
import { banner } from "../lib/banner";
import { h, replace } from "../lib/dom";
import { getLocale, setLocale, t } from "../lib/i18n";
import { Live, type Message } from "../lib/live";
import { claims, storedToken, storeToken, tokenFromFragment } from "../lib/session";
import { refreshAsOf } from "./panels";
import { UnitView } from "./view";
import { w } from "./words";

const KIND = "tablet";
/** How many channels' last values the tablet keeps to repaint a view at once. */
const MAX_CACHED = 300;

export function mountTablet(root: HTMLElement) {
  document.body.className = "tablet";
  document.title = w("title");
  const fromFragment = tokenFromFragment();
  if (fromFragment) {
    storeToken(KIND, fromFragment);
    history.replaceState(history.state, "", location.pathname + location.search);
  }
  const token = storedToken(KIND);
  if (!token) return showSignin(root);
  new TabletApp(root, token).start();
}

/** The sign-in form; `reason` says why the previous token was refused. */
export function showSignin(root: HTMLElement, reason?: string, keep?: HTMLElement) {
  delete document.body.dataset.ready;
  const input = h("input", {
    name: "token",
    type: "password",
    autocomplete: "off",
    autocapitalize: "off",
    spellcheck: "false",
    required: true,
    placeholder: "eyJhbGciOi…",
    "aria-label": t("token"),
  });
  const form = h(
    "form#signin",
    { class: "card signin" },
    h("h1", null, w("title")),
    reason ? h("p.error", { "data-code": "unauthorized", role: "alert" }, `${t("unauthorized")}: ${reason}`) : null,
    h("label", null, t("token"), input),
    h("p.help", null, w("signin_help")),
    h("div.actions", null, h("button.primary", { type: "submit" }, t("sign_in")), langButton(() => showSignin(root, reason, keep))),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tok = input.value.trim();
    if (!tok) return;
    storeToken(KIND, tok);
    replace(root);
    new TabletApp(root, tok).start();
  });
  replace(root, keep ?? null, h("main.signin-page", null, form));
  input.focus();
}

function langButton(rerender: () => void): HTMLButtonElement {
  return h(
    "button#lang",
    {
      type: "button",
      class: "ghost",
      lang: getLocale() === "vi" ? "en" : "vi",
      onclick: () => {
        setLocale(getLocale() === "vi" ? "en" : "vi");
        document.title = w("title");
        rerender();
      },
    },
    w("language"),
  );
}

interface Watcher {
  value(data: any, live: boolean): void;
  error?(code: string, message: string): void;
}

export class TabletApp {
  api: Api;
  live: Live;
  role: string;
  /** The token's own unit: the leader's, else the city. */
  home: string;
  private main = h("main.content");
  private title = h("h1.app-title", null, w("title"));
  private view?: UnitView;
  /** The last value of each channel, shown (greyed) at once when a panel comes back. */
  private last = new Map<string, any>();
  private banner: HTMLElement;
  private ticker?: number;

  constructor(private root: HTMLElement, token: string) {
    const c = claims(token);
    this.role = c.role ?? "";
    this.home = (this.role === "leader" && c.unit) || "79";
    this.api = new Api(token);
    this.live = new Live(token);
    this.banner = banner(this.live);
  }

  start() {
    this.renderChrome();
    this.live.onStatus((s) => {
      this.refreshLive();
      if (s === "unauthorized") {
        this.stop();
        this.view = undefined;
        storeToken(KIND, undefined);
        showSignin(this.root, this.live.reason, this.banner);
      }
    });
    window.addEventListener("popstate", this.onPop);
    // A value grows stale without a message: judged again every 15 s.
    this.ticker = window.setInterval(() => refreshAsOf(this.main), 15000);
    this.route();
  }

  /** Ends the session's page: its view, socket, listeners and timer. */
  private stop() {
    window.removeEventListener("popstate", this.onPop);
    window.clearInterval(this.ticker);
    this.view?.destroy();
    this.live.close();
  }

  private onPop = () => this.route();

  private renderChrome() {
    const signOut = h("button#signout", { type: "button", class: "ghost", onclick: () => this.signOut() }, t("sign_out"));
    const header = h(
      "header.top",
      null,
      h("a.brand", { href: "/tablet", onclick: (ev: Event) => this.link(ev, this.home) }, this.title),
      h("div.top-actions", null, langButton(() => this.relabel()), signOut),
    );
    replace(this.root, this.banner, header, this.main);
  }

  /** After a language change: the chrome and the view again; values come back from the cache at once. */
  private relabel() {
    this.renderChrome();
    this.route();
  }

  signOut() {
    this.stop();
    storeToken(KIND, undefined);
    history.pushState(null, "", "/tablet");
    showSignin(this.root);
  }

  setTitle(s: string) {
    this.title.textContent = s;
  }

  /** The unit and officer the URL names. */
  private route() {
    const m = location.pathname.match(/^\/tablet\/unit\/([^/]+)\/?$/);
    const unit = m ? decodeURIComponent(m[1]) : this.home;
    const officer = new URLSearchParams(location.search).get("officer") ?? undefined;
    const old = this.view;
    old?.retire();
    this.view = new UnitView(this, this.main, unit, officer);
    // The new view subscribes before the old one lets go: a channel both
    // show stays subscribed (no new snapshot needed, the cache repaints it).
    this.view.start().finally(() => old?.destroy());
  }

  /** Goes to a unit (and officer) with pushState. */
  go(unit: string, officer?: string) {
    const path = unit === this.home && !officer ? "/tablet" : `/tablet/unit/${encodeURIComponent(unit)}`;
    const url = path + (officer !== undefined ? "?officer=" + encodeURIComponent(officer) : "");
    if (url !== location.pathname + location.search) history.pushState(null, "", url);
    this.route();
    window.scrollTo({ top: 0 });
  }

  /** A click on an in-app link: pushState unless the reader asked for a new tab. */
  link(ev: Event, unit: string, officer?: string) {
    const me = ev as MouseEvent;
    if (me.ctrlKey || me.metaKey || me.shiftKey || me.button === 1) return;
    ev.preventDefault();
    this.go(unit, officer);
  }

  private dashboards = new Map<string, Promise<Dashboard>>();

  /** The tablet dashboard for a unit, asked once per unit (a failure is asked again next time). */
  dashboard(unit: string): Promise<Dashboard> {
    let p = this.dashboards.get(unit);
    if (!p) {
      p = this.api.dashboard("tablet", unit);
      this.dashboards.set(unit, p);
      p.catch((e) => {
        // A 404 (no definition served) stays known; anything else is asked again.
        if (!(e instanceof ApiError && e.status === 404)) this.dashboards.delete(unit);
      });
    }
    return p;
  }

  /** Whether the token may open the unit: a leader its subtree, others everything. */
  inScope(code: string, byCode: Map<string, Unit>): boolean {
    if (this.role !== "leader") return true;
    for (let u = byCode.get(code), n = 0; u && n < 10; u = u.parent ? byCode.get(u.parent) : undefined, n++) if (u.code === this.home) return true;
    return false;
  }

  href(unit: string, officer?: string): string {
    const path = unit === this.home && !officer ? "/tablet" : `/tablet/unit/${encodeURIComponent(unit)}`;
    return path + (officer !== undefined ? "?officer=" + encodeURIComponent(officer) : "");
  }

  /** Follows a channel: the cached value at once (if any), then every value; returns the unsubscribe. */
  watch(channel: string, wt: Watcher): () => void {
    const off = this.live.subscribe(channel, {
      value: (data: any, _m: Message) => {
        // The latest values of the last channels shown, newest last.
        this.last.delete(channel);
        this.last.set(channel, data);
        if (this.last.size > MAX_CACHED) this.last.delete(this.last.keys().next().value!);
        wt.value(data, this.live.isLive(channel));
        this.refreshLive();
      },
      error: (code, message) => wt.error?.(code, message),
    });
    if (this.last.has(channel)) wt.value(this.last.get(channel), this.live.isLive(channel));
    return off;
  }

  /** data-live of every channel element from the connection's state. */
  refreshLive() {
    for (const el of document.querySelectorAll<HTMLElement>("[data-channel]")) {
      const live = String(this.live.isLive(el.dataset.channel!));
      if (el.dataset.live !== live) el.dataset.live = live;
    }
  }
}
