// One unit on the tablet: breadcrumb, then the panels of the tablet
// dashboard for that unit, each following its websocket channel.
import { ApiError, kpiDefs, type Dashboard, type KPIDef, type Panel, type Unit } from "../lib/api";
import { h, replace, setText } from "../lib/dom";
import { getLocale, t, tr } from "../lib/i18n";
import { errorParts, withRetry } from "./retry";
import { alertsPanel, listPanel, rankingPanel, tilePanel, type PanelCtx } from "./panels";
import type { TabletApp } from "./tablet";
import { w } from "./words";

// The tablet's layout when the server has no dashboard definition for it
// (GET /api/v1/dashboards/tablet answering 404, before dashboards/tablet.yaml
// is served): the KPIs a unit's leader follows every day, the ranking of the
// units below by overdue rate, the alerts and the three drill-down lists.
export const DEFAULT_PANELS: Panel[] = [
  { kind: "tile", kpi: "dossier.received", window: "today" },
  { kind: "tile", kpi: "dossier.on_time_rate", window: "month", target: 0.95 },
  { kind: "tile", kpi: "dossier.overdue_open", window: "now" },
  { kind: "tile", kpi: "dossier.due_soon", window: "now" },
  { kind: "tile", kpi: "feedback.overdue_open", window: "now" },
  { kind: "tile", kpi: "survey.satisfied_rate", window: "month" },
  { kind: "ranking", kpi: "dossier.overdue_rate", window: "month", order: "desc", limit: 20 },
  { kind: "alerts" },
  { kind: "list", list: "dossier.overdue" },
  { kind: "list", list: "dossier.due_soon" },
  { kind: "list", list: "feedback.overdue" },
];

export class UnitView {
  private alive = true;
  private offs: (() => void)[] = [];
  private pending = 0;
  private panelsEl = h("div.panels");
  private statusEl = h("p.loading", { role: "status" }, w("loading"));
  private crumbs = h("nav.crumbs", { "aria-label": "breadcrumb" });
  private heading = h("h2.unit-name");
  private note = h("p.layout-note");
  private forbidden = false;

  constructor(private app: TabletApp, private main: HTMLElement, public unit: string, public officer?: string) {}

  /** Stops showing anything (the page now belongs to another view); keeps the subscriptions. */
  retire() {
    this.alive = false;
  }

  /** Lets go of the subscriptions. */
  destroy() {
    this.alive = false;
    for (const f of this.offs.splice(0)) f();
  }

  async start() {
    delete document.body.dataset.ready;
    const rootEl = h("div.unit-view", { "data-unit-root": this.unit }, this.crumbs, this.heading, this.note, this.statusEl, this.panelsEl);
    replace(this.main, rootEl);
    const stopped = () => !this.alive;
    let units: Unit[];
    try {
      units = await withRetry(() => this.app.api.units(), { stopped, onRetry: (e, ms) => this.retrying(e, ms) });
    } catch (e) {
      if (this.alive) this.fail(e);
      return;
    }
    if (!this.alive) return;
    const byCode = new Map(units.map((u) => [u.code, u]));
    const unit = byCode.get(this.unit);
    if (!unit) {
      this.fail(new ApiError(404, "not_found", `unknown unit ${this.unit}`));
      return;
    }
    this.renderCrumbs(unit, byCode);
    setText(this.heading, unit.name);
    document.title = `${unit.name} — ${w("title")}`;

    // The dashboard: the server's definition for this unit, or the default
    // layout while the server has none (404).
    let dash: Dashboard | undefined;
    try {
      dash = await withRetry(() => this.app.dashboard(this.unit), { tries: 4, stopped, onRetry: (e, ms) => this.retrying(e, ms) });
    } catch (e) {
      if (!this.alive) return;
      const { code } = errorParts(e);
      if (e instanceof ApiError && (e.status === 403 || code === "forbidden")) {
        this.fail(e);
        return;
      }
      // 404 (no definition served yet) or the server still failing after
      // retries: the built-in layout, said on the page.
      setText(this.note, w("default_layout"));
    }
    if (!this.alive) return;
    if (dash?.title) this.app.setTitle(tr(dash.title));
    const panels = dash?.panels?.length ? dash.panels : DEFAULT_PANELS;
    const staleMs = parseDuration(dash?.stale_after) ?? 15 * 60_000;

    let catalog: Map<string, KPIDef>;
    try {
      const c = await withRetry(() => this.app.api.catalog(), { stopped, onRetry: (e, ms) => this.retrying(e, ms) });
      catalog = new Map(kpiDefs(c).map((k) => [k.id, k]));
    } catch (e) {
      if (this.alive) this.fail(e);
      return;
    }
    if (!this.alive) return;
    this.statusEl.remove();

    const ctx: PanelCtx = {
      app: this.app,
      unit: this.unit,
      units: byCode,
      catalog,
      officer: this.officer,
      staleMs,
      canAck: this.app.role === "leader" || this.app.role === "admin",
      watch: (ch, wt, soft) => {
        const off = this.app.watch(ch, {
          value: (d, live) => this.alive && wt.value(d, live),
          error: (code, msg) => {
            if (!this.alive) return;
            // A forbidden KPI, list or alert channel means the unit is out
            // of the token's scope: the whole view says so. A ranking
            // refused (a node without ranking channels says forbidden too)
            // stays the panel's own error.
            if (code === "forbidden" && !soft) this.refuse(code, msg);
            else wt.error?.(code, msg);
          },
        });
        this.offs.push(off);
      },
      firstShown: () => this.shown(),
    };
    const tiles = h("div.tiles");
    const rest: HTMLElement[] = [];
    for (const p of panels) {
      let el: HTMLElement | undefined;
      this.pending++;
      switch (p.kind) {
        case "tile":
          el = tilePanel(ctx, p);
          tiles.appendChild(el);
          continue;
        case "ranking":
          el = rankingPanel(ctx, p);
          break;
        case "list":
          el = listPanel(ctx, p);
          break;
        case "alerts":
          el = alertsPanel(ctx);
          break;
        default:
          // Trends and maps are the wall's; the tablet leaves them out.
          this.pending--;
          continue;
      }
      rest.push(el);
    }
    if (this.forbidden) return;
    replace(this.panelsEl, tiles.childElementCount ? tiles : null, rest);
    this.app.refreshLive();
    if (this.pending === 0) document.body.dataset.ready = "true";
  }

  private shown() {
    if (!this.alive) return;
    this.pending--;
    if (this.pending === 0) document.body.dataset.ready = "true";
  }

  private retrying(e: unknown, ms: number) {
    if (!this.alive) return;
    const { code, message } = errorParts(e);
    this.statusEl.dataset.code = code;
    setText(this.statusEl, `${t("error")}: ${message} — ${w("retrying")} ${Math.round(ms / 1000)} ${w("seconds")}…`);
  }

  /** A refusal of the whole view: the server's message, no numbers. */
  private fail(e: unknown) {
    const { code, message } = errorParts(e);
    this.refuse(code, message);
  }

  private refuse(code: string, message: string) {
    if (this.forbidden) return;
    this.forbidden = true;
    for (const f of this.offs.splice(0)) f();
    const title = code === "forbidden" ? t("forbidden") : code === "not_found" ? w("not_found") : t("error");
    replace(
      this.panelsEl,
      h(
        "div.error.card",
        { "data-code": code, role: "alert" },
        h("strong", null, title),
        h("p.message", null, message),
        this.unit !== this.app.home ? h("a.button", { href: this.app.href(this.app.home), onclick: (ev: Event) => this.app.link(ev, this.app.home) }, w("home")) : null,
      ),
    );
    this.statusEl.remove();
    document.body.dataset.ready = "true";
  }

  private renderCrumbs(unit: Unit, byCode: Map<string, Unit>) {
    const chain: Unit[] = [];
    for (let u: Unit | undefined = unit; u && chain.length < 10; u = u.parent ? byCode.get(u.parent) : undefined) chain.unshift(u);
    const items: (HTMLElement | string)[] = [];
    chain.forEach((u, i) => {
      const last = i === chain.length - 1 && this.officer === undefined;
      const label = u.code === "79" ? w("city") : u.name;
      if (i > 0) items.push(h("span.sep", { "aria-hidden": "true" }, "›"));
      if (last || !this.app.inScope(u.code, byCode)) items.push(h("span.crumb", last ? { "aria-current": "page" } : null, label));
      else items.push(h("a.crumb", { href: this.app.href(u.code), onclick: (ev: Event) => this.app.link(ev, u.code) }, label));
    });
    if (this.officer !== undefined) {
      items.push(h("span.sep", { "aria-hidden": "true" }, "›"));
      items.push(h("span.crumb.officer-crumb", { "aria-current": "page" }, `${t("officer")}:\u00a0`, h("span.officer-name", null, this.officer || w("no_officer"))));
    }
    replace(this.crumbs, items);
    document.documentElement.lang = getLocale();
  }
}

/** "15m", "1h", "90s", "1h30m" → ms. */
function parseDuration(s: string | undefined): number | undefined {
  if (!s) return undefined;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m: RegExpExecArray | null;
  let any = false;
  while ((m = re.exec(s))) {
    any = true;
    ms += parseFloat(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  }
  return any ? ms : undefined;
}
