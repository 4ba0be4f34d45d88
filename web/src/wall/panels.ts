// The wall's panel kinds but the map (map.ts): KPI tile, trend chart,
// ranking table, alert ticker and drill-down list. Each subscribes to its
// channels, updates its elements in place, and greys itself whenever its
// channels are not live on this connection or the page's data is stale.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { KPIDef, KPIValue, Panel, Point, Ranking, Series } from "../lib/api";
import { h, setText, svg } from "../lib/dom";
import { clock, dateTime, dayMonth, kpiValue, num, pct, ZONE } from "../lib/format";
import { getLocale, heldLine, t, tr, windowName } from "../lib/i18n";
import { clearPanelError, frame, panelError, type Ctx, type PanelView } from "./context";
import { previousPeriod } from "./prev";

/** data-value: the raw value as the API gives it ("" for null). */
export function rawValue(v: number | null | undefined): string {
  return v === null || v === undefined ? "" : String(v);
}

function title(p: Panel, def: KPIDef | undefined): string {
  return p.title ? tr(p.title) : def ? tr(def.title) : p.kpi ?? p.kind;
}

/** Subscribes and reports the first value or error once. Errors are shown
 * in `errors` (a panel's body) until the channel's next value, or handed
 * to a function. */
export function watch(ctx: Ctx, channel: string, onValue: (data: any) => void,
  errors: HTMLElement | ((code: string, msg: string) => void)) {
  const done = ctx.expect();
  ctx.live.subscribe(channel, {
    value(data) {
      if (errors instanceof HTMLElement) clearPanelError(errors);
      onValue(data);
      done();
    },
    error(code, msg) {
      if (errors instanceof HTMLElement) panelError(errors, code, msg);
      else errors(code, msg);
      done();
    },
  });
}

/** The view of a panel that greys itself when one of its channels is not
 * live (or, for KPI data, when the page's data is stale). */
export function liveView(ctx: Ctx, f: ReturnType<typeof frame>, channels: string[], watermarked = true): PanelView {
  return {
    el: f.el,
    tick(now) {
      f.setLive(channels.every((c) => ctx.live.isLive(c)) && !(watermarked && ctx.stale()));
      f.tickAsOf(now);
    },
  };
}

// ── KPI tile ─────────────────────────────────────────────────────────────

export function tilePanel(ctx: Ctx, p: Panel): PanelView {
  const def = ctx.defs.get(p.kpi!);
  const f = frame("tile", title(p, def), p.size);
  const channel = `kpi:${p.kpi}:${ctx.unit}:${p.window}`;
  const value = h("div.value", null, "—");
  const delta = h("div.delta");
  const target = h("div.target");
  const spark = svg("svg", { class: "spark", viewBox: "0 0 100 30", preserveAspectRatio: "none" });
  const sparkLine = svg("path", { class: "spark-line", d: "" });
  const sparkArea = svg("path", { class: "spark-area", d: "" });
  spark.append(sparkArea, sparkLine);
  const holder = h("div.tile", { "data-channel": channel, "data-value": "", "data-live": "false" },
    h("div.tile-window", null, windowName(p.window!)),
    value,
    h("div.tile-meta", null, delta, target),
    p.sparkline ? spark : null,
  );
  f.body.append(holder);
  let cur: KPIValue | null = null;
  let prevKey = "";
  let prevValue: number | null | undefined;
  let prevAt = 0;

  const fmt = (v: number | null | undefined) => kpiValue(v, def?.format, getLocale());
  const render = () => {
    const v = cur?.value;
    setText(value, fmt(v));
    holder.dataset.value = rawValue(v);
    if (p.target !== undefined) {
      setText(target, `${t("target")} ${fmt(p.target)}`);
      const good = v === null || v === undefined ? undefined : def?.better === "lower" ? v <= p.target : v >= p.target;
      value.dataset.goal = good === undefined ? "" : good ? "met" : "missed";
    }
    renderDelta();
  };
  const renderDelta = () => {
    const v = cur?.value;
    if (!p.compare || v === null || v === undefined || prevValue === null || prevValue === undefined) {
      setText(delta, "");
      return;
    }
    let text: string;
    let d: number;
    if (def?.format === "percent") {
      d = (v - prevValue) * 100; // percentage points
      text = `${num(Math.abs(d), 1, getLocale())} ${getLocale() === "vi" ? "điểm %" : "pp"}`;
    } else {
      if (prevValue === 0) return setText(delta, "");
      d = (v - prevValue) / Math.abs(prevValue);
      text = pct(Math.abs(d), 1, getLocale());
    }
    const arrow = d > 0 ? "▲" : d < 0 ? "▼" : "▶";
    setText(delta, `${arrow} ${text} ${t("vs_prev")}`);
    delta.dataset.trend = def?.better === "neutral" || d === 0 ? "neutral" : (d > 0) === (def?.better !== "lower") ? "good" : "bad";
  };
  const fetchPrev = async () => {
    if (!p.compare || !cur?.from || !cur.at) return;
    // The value holds until the next one comes (the engine publishes every
    // change, time-driven ones included): it is the window's up to now, so
    // the previous period is cut at the time elapsed until now. A rolling
    // window's start moves with now.
    const now = Date.now();
    const rolling = ["24h", "7d", "30d"].includes(p.window!);
    const from = rolling ? new Date(now - (Date.parse(cur.at) - Date.parse(cur.from))).toISOString() : cur.from;
    const span = previousPeriod(p.window!, from, new Date(now).toISOString());
    if (!span) return;
    // A calendar window's start changes with its period; within it, and for
    // rolling windows, the previous period is asked again every 5 min.
    const key = rolling ? p.window! : cur.from;
    if (key === prevKey && now - prevAt < 5 * 60_000) return;
    prevKey = key;
    prevAt = Date.now();
    try {
      const pv = await ctx.api.value(p.kpi!, ctx.unit, "", span.from, span.to);
      prevValue = pv.value;
      renderDelta();
    } catch {
      prevValue = undefined; // shown as no comparison; tried again in 5 min
    }
  };
  watch(ctx, channel, (data: KPIValue | null) => {
    cur = data;
    ctx.seen(data?.as_of);
    f.asOf(data?.as_of);
    render();
    void fetchPrev();
  }, f.body);
  if (p.sparkline) {
    watch(ctx, `series:${p.kpi}:${ctx.unit}:${p.sparkline.window}:${p.sparkline.step}`, (s: Series | null) => {
      const [line, area] = sparkPaths(s?.points ?? []);
      sparkLine.setAttribute("d", line);
      sparkArea.setAttribute("d", area);
      spark.style.display = "";
    }, () => (spark.style.display = "none"));
  }
  return {
    el: f.el,
    tick(now) {
      const live = ctx.live.isLive(channel) && !ctx.stale();
      f.setLive(live);
      holder.dataset.live = live ? "true" : "false";
      f.tickAsOf(now);
      if (cur) void fetchPrev();
    },
  };
}

function sparkPaths(points: Point[]): [string, string] {
  const vals = points.map((p) => p.value);
  const nums = vals.filter((v): v is number => v !== null && Number.isFinite(v));
  if (nums.length < 2) return ["", ""];
  const min = Math.min(...nums);
  const max = Math.max(...nums);
  const span = max - min || 1;
  let line = "";
  let first = -1;
  let last = -1;
  vals.forEach((v, i) => {
    if (v === null) return;
    const x = (i / (vals.length - 1)) * 100;
    const y = 28 - ((v - min) / span) * 26;
    line += `${line ? "L" : "M"}${x.toFixed(2)},${y.toFixed(2)}`;
    if (first < 0) first = x;
    last = x;
  });
  return [line, `${line}L${last.toFixed(2)},30L${first.toFixed(2)},30Z`];
}

// ── Trend chart ──────────────────────────────────────────────────────────

export function trendPanel(ctx: Ctx, p: Panel): PanelView {
  const def = ctx.defs.get(p.kpi!);
  const f = frame("trend", `${title(p, def)} — ${windowName(p.window!)}`, p.size ?? 2);
  const channel = `series:${p.kpi}:${ctx.unit}:${p.window}:${p.step}`;
  const box = h("div.chart");
  f.body.append(box);
  let plot: uPlot | undefined;
  let data: uPlot.AlignedData = [[], []];
  const percent = def?.format === "percent";
  const make = () => {
    const w = box.clientWidth;
    const hgt = box.clientHeight;
    if (w < 10 || hgt < 10) return;
    const axis = { stroke: "#94a3b8", grid: { stroke: "rgba(148,163,184,0.15)" }, ticks: { stroke: "rgba(148,163,184,0.3)" }, font: "inherit" };
    plot = new uPlot({
      width: w,
      height: hgt,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true } },
      // Ticks at the city's hours and midnights, whatever the screen's zone.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), ZONE),
      axes: [
        { ...axis, values: (_u, ticks) => ticks.map((s) => (p.step === "hour" ? clock(s * 1000).slice(0, 5) : dayMonth(s * 1000))) },
        { ...axis, size: 70, values: (_u, ticks) => ticks.map((v) => (percent ? num(v * 100, 0) + " %" : num(v, 0))) },
      ],
      series: [
        {},
        { stroke: "#38bdf8", width: 3, fill: "rgba(56,189,248,0.15)", spanGaps: false, points: { show: false } },
        ...(p.target !== undefined ? [{ stroke: "#4ade80", width: 2, dash: [8, 6], points: { show: false } }] : []),
      ],
    }, data, box);
  };
  new ResizeObserver(() => {
    if (!plot) make();
    else plot.setSize({ width: box.clientWidth, height: box.clientHeight });
  }).observe(box);
  watch(ctx, channel, (s: Series | null) => {
    const pts = s?.points ?? [];
    data = [pts.map((x) => Date.parse(x.t) / 1000), pts.map((x) => x.value)];
    if (p.target !== undefined) data.push(pts.map(() => p.target!));
    box.dataset.points = String(pts.length);
    if (plot) plot.setData(data);
    else make();
    f.asOf(s?.at);
  }, f.body);
  return liveView(ctx, f, [channel]);
}

// ── Ranking table ────────────────────────────────────────────────────────

export function rankingPanel(ctx: Ctx, p: Panel): PanelView {
  const def = ctx.defs.get(p.kpi!);
  const f = frame("ranking", p.title ? tr(p.title) : `${t("rank")}: ${title(p, def)} — ${windowName(p.window!)}`, p.size);
  const channel = `ranking:${p.kpi}:${ctx.unit}:${p.window}`;
  const tbody = h("tbody");
  f.body.append(h("table.ranking", null, tbody));
  const limit = p.limit ?? 10;
  watch(ctx, channel, (r: Ranking | null) => {
    const rows = [...(r?.rows ?? [])].filter((x) => x.value !== null);
    rows.sort((a, b) => (p.order === "asc" ? a.value! - b.value! : b.value! - a.value!) || a.unit.localeCompare(b.unit));
    const top = rows.slice(0, limit);
    const max = Math.max(...top.map((x) => Math.abs(x.value!)), 1e-9);
    if (top.length === 0) {
      tbody.replaceChildren(h("tr.empty", null, h("td", { colspan: 4 }, t("no_value"))));
    } else tbody.replaceChildren(...top.map((x, i) =>
      h("tr", { "data-unit": x.unit, "data-value": rawValue(x.value) },
        h("td.rank", null, String(i + 1)),
        h("td.name", { title: x.name }, shortName(x.name || ctx.units.get(x.unit)?.name || x.unit)),
        h("td.bar", null, h("span", { style: `width:${((Math.abs(x.value!) / max) * 100).toFixed(1)}%` })),
        h("td.num.value", null, kpiValue(x.value, def?.format, getLocale())),
      )));
    f.note.textContent = `${rows.length} ${t("wards").toLowerCase()}`;
    f.asOf(r?.as_of);
    ctx.seen(r?.as_of);
  }, f.body);
  return liveView(ctx, f, [channel]);
}

/** A ward's name without "Phường " (most of them are wards; communes keep "Xã"). */
export function shortName(name: string): string {
  return name.replace(/^Phường /, "");
}

// ── Alert ticker ─────────────────────────────────────────────────────────

interface AlertRow {
  id: string;
  severity: string;
  state: string;
  unit: string;
  title: string;
  title_vi: string;
  detail: string;
  raised_at: string;
  acked_by?: string;
}

export function alertsPanel(ctx: Ctx, p: Panel): PanelView {
  const f = frame("alerts", p.title ? tr(p.title) : t("alerts"), p.size ?? 2);
  const channel = `alerts:${ctx.unit}`;
  const counts = h("div.alert-counts");
  const held = h("div.alerts-held");
  const list = h("ul.alerts");
  f.body.append(counts, held, list);
  watch(ctx, channel, (d: { total: number; by_severity?: Record<string, number>; alerts: AlertRow[]; hold?: { reason: string; until: string; families?: string[] }; at?: string } | null) => {
    const alerts = d?.alerts ?? [];
    held.textContent = heldLine(d?.hold, (u) => dateTime(u, getLocale()));
    counts.replaceChildren(...Object.entries(d?.by_severity ?? {}).map(([s, n]) => h("span.sev", { "data-severity": s }, `${s}: ${num(n, 0, getLocale())}`)));
    list.replaceChildren(...(alerts.length === 0
      ? [h("li.none", null, t("no_alerts"))]
      : alerts.slice(0, 12).map((a) =>
          h("li", { "data-alert": a.id, "data-severity": a.severity, "data-state": a.state },
            h("span.when", null, when(a.raised_at)),
            h("span.what", null, getLocale() === "vi" ? a.title_vi || a.title : a.title || a.title_vi),
            h("span.where", null, shortName(ctx.units.get(a.unit)?.name ?? a.unit)),
            a.state === "acknowledged" ? h("span.acked", null, "✓ " + t("acknowledged")) : null,
          ))));
    f.note.textContent = `${t("total")}: ${num(d?.total ?? 0, 0, getLocale())}`;
    f.asOf(d?.at);
  }, f.body);
  return liveView(ctx, f, [channel], false);
}

/** An alert's time: 14:05 today, 23/11 14:05 on an earlier day (Ho Chi Minh City). */
function when(iso: string): string {
  const hm = clock(iso, getLocale()).slice(0, 5);
  const day = dayMonth(iso, getLocale());
  return day === dayMonth(Date.now(), getLocale()) ? hm : `${day} ${hm}`;
}

// ── Drill-down list ──────────────────────────────────────────────────────

interface ListRow {
  dossier_id?: string;
  ticket_id?: string;
  unit: string;
  unit_name: string;
  procedure_name?: string;
  category?: string;
  officer: string;
  officer_name: string;
  working_days_late?: number;
  working_hours_left?: number;
}

export function listPanel(ctx: Ctx, p: Panel): PanelView {
  const names: Record<string, "overdue_dossiers" | "due_soon_dossiers" | "overdue_tickets"> = {
    "dossier.overdue": "overdue_dossiers",
    "dossier.due_soon": "due_soon_dossiers",
    "feedback.overdue": "overdue_tickets",
  };
  const f = frame("list", p.title ? tr(p.title) : t(names[p.list!] ?? "overdue_dossiers"), p.size ?? 2);
  const channel = `list:${p.list}:${ctx.unit}`;
  const tickets = p.list === "feedback.overdue";
  const dueSoon = p.list === "dossier.due_soon";
  const tbody = h("tbody");
  f.body.append(h("table.list", null,
    h("thead", null, h("tr", null,
      h("th", null, `${tickets ? t("category") : t("procedure")} · ${t("unit")} · ${t("officer")}`),
      h("th.num", null, dueSoon ? t("hours_left") : t("days_late")))),
    tbody));
  const limit = p.limit ?? 8;
  watch(ctx, channel, (d: { total: number; rows: ListRow[]; at: string } | null) => {
    const rows = d?.rows ?? [];
    // Two lines a row: what (procedure or category), then where and who holds it.
    if (rows.length === 0) {
      tbody.replaceChildren(h("tr.none", null, h("td", { colspan: 2 }, t("none_late"))));
    } else tbody.replaceChildren(...rows.slice(0, limit).map((r) =>
      h("tr", { "data-id": r.dossier_id ?? r.ticket_id ?? "" },
        h("td", null,
          h("div.what", null, (tickets ? r.category : r.procedure_name) ?? ""),
          h("div.who", null, shortName(r.unit_name || r.unit), " · ", h("span.officer", null, r.officer_name || r.officer || "—"))),
        h("td.num.value", null, num(dueSoon ? r.working_hours_left : r.working_days_late, 1, getLocale())))));
    f.note.textContent = `${t("total")}: ${num(d?.total ?? 0, 0, getLocale())}`;
    f.asOf(d?.at);
  }, f.body);
  return liveView(ctx, f, [channel], false);
}
