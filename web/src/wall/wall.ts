// The operations wall: a dashboard of the dashboards folder on a control-room
// screen, from 1080p to 4K, legible from 5 m, with no interaction. Opened
// as /wall/{dashboard}#token=… (the token stays out of server logs; it is
// kept in this browser so a reload needs no fragment).
import "../styles/wall.css";
import { Api, ApiError, kpiDefs, type Catalog, type Dashboard, type Panel, type Unit } from "../lib/api";
import { banner } from "../lib/banner";
import { h, replace, setText } from "../lib/dom";
import { ago, clock } from "../lib/format";
import { getLocale, t, tr } from "../lib/i18n";
import { Live } from "../lib/live";
import { storedToken, storeToken, tokenFromFragment } from "../lib/session";
import type { Ctx, PanelView } from "./context";
import { mapPanel } from "./map";
import { alertsPanel, listPanel, rankingPanel, tilePanel, trendPanel } from "./panels";

export async function mountWall(root: HTMLElement, id: string) {
  document.body.className = "wall";
  const fromURL = tokenFromFragment();
  if (fromURL) {
    storeToken("wall:" + id, fromURL);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = fromURL ?? storedToken("wall:" + id);
  if (!token) {
    replace(root, h("div.wall-message", null, h("h1", null, "ioc"), h("p", null, `Mở /wall/${id}#token=… với mã truy cập của màn hình (ioc token --role wall --dashboard ${id}).`),
      h("p", null, `Open /wall/${id}#token=… with the wall's token (ioc token --role wall --dashboard ${id}).`)));
    return;
  }
  const api = new Api(token);
  const unitParam = new URLSearchParams(location.search).get("unit") ?? undefined;
  let dash: Dashboard;
  let catalog: Catalog;
  let units: Unit[];
  for (let attempt = 0; ; attempt++) {
    try {
      [dash, catalog, units] = await Promise.all([api.dashboard(id, unitParam), api.catalog(), api.units()]);
      break;
    } catch (e) {
      const err = e as ApiError;
      // A refusal is final; anything else (the node restarting, its database
      // down, the network) is retried, and the screen says so.
      const final = err instanceof ApiError && err.status >= 400 && err.status < 500;
      const wait = Math.min(30000, 1000 * 2 ** attempt);
      replace(root, h("div.wall-message", null, h("h1", null, t("error")),
        h("p.error", { "data-code": err.code ?? "error" }, err.message ?? String(e)),
        final ? null : h("p", null, `${t("retrying_in")} ${Math.round(wait / 1000)} s…`)));
      if (final) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  const live = new Live(token);
  const unitMap = new Map(units.map((u) => [u.code, u]));
  const staleAfter = duration(dash.stale_after) ?? 15 * 60_000;
  let watermark = 0;
  let pending = 0;
  let mounted = false;
  const checkReady = () => {
    if (mounted && pending === 0) document.body.dataset.ready = "true";
  };
  const ctx: Ctx = {
    api,
    live,
    dash,
    unit: dash.unit,
    defs: new Map(kpiDefs(catalog).map((d) => [d.id, d])),
    units: unitMap,
    expect() {
      pending++;
      let called = false;
      return () => {
        if (called) return;
        called = true;
        pending--;
        checkReady();
      };
    },
    seen(asOf) {
      const t = asOf ? Date.parse(asOf) : NaN;
      if (Number.isFinite(t) && t > watermark) watermark = t;
    },
    stale() {
      return watermark > 0 && Date.now() - watermark > staleAfter;
    },
  };

  const clockEl = h("span.clock");
  const mark = h("span.watermark");
  const header = h("header.wall-head", null,
    h("div.wall-title", null, h("h1", null, tr(dash.title)), h("div.wall-unit", null, dash.unit_name ?? unitMap.get(dash.unit)?.name ?? dash.unit)),
    h("div.wall-status", null, mark, clockEl),
  );
  const views: PanelView[] = [];
  const grid = h("main.wall-grid");
  for (const p of dash.panels) {
    // A panel of an instant KPI may leave out its window ("now").
    const def = p.kpi ? ctx.defs.get(p.kpi) : undefined;
    if (def && !p.window) p.window = def.windows.includes("now") ? "now" : "today";
    const make = { tile: tilePanel, trend: trendPanel, ranking: rankingPanel, map: mapPanel, alerts: alertsPanel, list: listPanel }[p.kind];
    if (!make) continue;
    const v = make(ctx, p);
    const sp = span(p);
    v.el.style.gridColumn = `span ${sp.cols}`;
    v.el.style.gridRow = `span ${sp.rows}`;
    views.push(v);
    grid.append(v.el);
  }
  // The whole dashboard fits the screen: as many equal rows as the panels need.
  const cells = dash.panels.reduce((n, p) => n + span(p).cols * span(p).rows, 0);
  grid.style.gridTemplateRows = `repeat(${Math.max(1, Math.ceil(cells / COLUMNS))}, minmax(0, 1fr))`;
  replace(root, banner(live), header, grid);
  mounted = true;
  checkReady();

  const tick = () => {
    const now = Date.now();
    setText(clockEl, clock(now, getLocale()));
    const stale = ctx.stale();
    document.body.dataset.stale = stale ? "true" : "false";
    if (watermark > 0) {
      setText(mark, `${stale ? t("stale") + " — " : ""}${t("as_of")} ${clock(watermark, getLocale())} (${ago(watermark, now, getLocale())})`);
      mark.dataset.stale = stale ? "true" : "false";
    }
    for (const v of views) v.tick(now);
  };
  tick();
  window.setInterval(tick, 1000);
}

/** Columns of the wall's grid; a panel spans `size` of them and `rows` rows (defaults as dashboards.md says). */
const COLUMNS = 6;
function span(p: Panel): { cols: number; rows: number } {
  return { cols: Math.min(COLUMNS, p.size ?? 1), rows: p.rows ?? (p.kind === "map" ? 3 : p.kind === "tile" ? 1 : 2) };
}

/** A Go duration ("15m", "90s", "1h30m0s") in ms. */
function duration(s: string | undefined): number | undefined {
  if (!s || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return ms;
}
