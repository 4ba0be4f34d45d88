// The tablet's panels. Each follows one websocket channel, updates its own
// elements in place, says when it has shown its first value or error
// (body[data-ready]) and carries the test hooks of the UI contract:
// section.panel[data-panel], [data-channel] with data-live, data-value on
// tiles, .as-of with data-as-of, tr[data-unit] / tr[data-id] / [data-alert].
import type { KPIDef, Panel, Unit } from "../lib/api";
import { h, replace, setText, svg } from "../lib/dom";
import { clock, dateTime, kpiValue, num, ZONE, type Locale } from "../lib/format";
import { getLocale, heldLine, t, tr, windowName } from "../lib/i18n";
import { errorParts } from "./retry";
import type { TabletApp } from "./tablet";
import { w } from "./words";

export interface PanelCtx {
  app: TabletApp;
  unit: string;
  units: Map<string, Unit>;
  catalog: Map<string, KPIDef>;
  /** The officer the lists are filtered by ("" = dossiers no officer holds). */
  officer?: string;
  staleMs: number;
  canAck: boolean;
  /** soft: a refusal is the panel's own error, not the whole view's. */
  watch(channel: string, wt: { value(data: any, live: boolean): void; error?(code: string, message: string): void }, soft?: boolean): void;
  firstShown(): void;
}

const loc = (): Locale => getLocale();
const dayKey = new Intl.DateTimeFormat("en-CA", { timeZone: ZONE });

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}

/** "Số liệu đến 14:05:09" (today) or "… 22/11/2026 14:05", with data-as-of; marks the panel stale when old. */
function setAsOf(el: HTMLElement, panel: HTMLElement, iso: string | undefined, staleMs: number) {
  if (!iso) {
    setText(el, "");
    el.removeAttribute("data-as-of");
    return;
  }
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return;
  el.dataset.asOf = iso;
  el.dataset.staleMs = String(staleMs);
  const today = dayKey.format(d) === dayKey.format(new Date());
  const stale = Date.now() - d.getTime() > staleMs;
  panel.classList.toggle("stale", stale);
  setText(el, `${t("as_of")} ${today ? clock(d, loc()) : dateTime(d, loc())}${stale ? " · " + t("stale") : ""}`);
}

/** Judges every shown as-of again (a value grows stale with no message). */
export function refreshAsOf(root: ParentNode) {
  for (const el of root.querySelectorAll<HTMLElement>(".as-of[data-as-of]")) {
    const panel = el.closest<HTMLElement>("section.panel");
    if (panel) setAsOf(el, panel, el.dataset.asOf, Number(el.dataset.staleMs));
  }
}

function errorBox(code: string, message: string): HTMLElement {
  const title = code === "forbidden" ? t("forbidden") : t("error");
  return h("p.error", { "data-code": code, role: "alert" }, h("strong", null, title + ": "), message);
}

function kpiTitle(ctx: PanelCtx, p: Panel): string {
  if (p.title) return tr(p.title);
  const def = p.kpi ? ctx.catalog.get(p.kpi) : undefined;
  return def ? tr(def.title) : p.kpi ?? "";
}

function fmt(def: KPIDef | undefined, v: number | null | undefined): string {
  return kpiValue(v, def?.format ?? def?.kind, loc());
}

// ---------------------------------------------------------------- tiles

export function tilePanel(ctx: PanelCtx, p: Panel): HTMLElement {
  const def = ctx.catalog.get(p.kpi ?? "");
  const win = p.window ?? (def?.windows.includes("now") ? "now" : def?.windows[0] ?? "today");
  const ch = `kpi:${p.kpi}:${ctx.unit}:${win}`;
  const value = h("div.value", null, "—");
  const sub = h("div.sub");
  const asOf = h("div.as-of");
  const errSlot = h("div.err-slot");
  const spark = p.sparkline ? svg("svg", { class: "spark", viewBox: "0 0 100 24", preserveAspectRatio: "none", "aria-hidden": "true" }) : null;
  const el = h(
    "section.panel.tile",
    { "data-panel": "tile", "data-kpi": p.kpi ?? "", "data-window": win, "data-channel": ch, "data-value": "", "data-live": "false" },
    h("h3.tile-title", null, kpiTitle(ctx, p)),
    h("div.tile-window", null, windowName(win)),
    value,
    sub,
    spark,
    asOf,
    errSlot,
  );
  const done = once(ctx.firstShown);
  const show = (d: any, live: boolean) => {
    const v: number | null = d?.value ?? null;
    el.dataset.value = v === null || v === undefined ? "" : String(v);
    el.dataset.live = String(live);
    setText(value, fmt(def, v));
    const parts: string[] = [];
    if (d === null || d === undefined) parts.push(t("no_value"));
    else if (def?.kind === "ratio" || def?.kind === "mean") parts.push(`${num(d.numerator, 0, loc())} / ${num(d.denominator, 0, loc())}`);
    else if (def?.kind === "composite" && typeof d.max === "number") parts.push(`/ ${num(d.max, 0, loc())}${d.missing?.length ? ` · ${d.missing.length} ${w("missing")}` : ""}`);
    if (p.target !== undefined) {
      parts.push(`${t("target")} ${fmt(def, p.target)}`);
      const good = v === null ? undefined : def?.better === "lower" ? v <= p.target : v >= p.target;
      el.classList.toggle("on-target", good === true);
      el.classList.toggle("off-target", good === false);
    }
    setText(sub, parts.join(" · "));
    setAsOf(asOf, el, d?.as_of ?? d?.at, ctx.staleMs);
    replace(errSlot);
    if (live) done(); // a cached value is shown greyed; ready waits for the live one
  };
  if (!def) {
    replace(errSlot, errorBox("not_found", `${p.kpi}`));
    done();
    return el;
  }
  ctx.watch(ch, {
    value: show,
    error: (code, message) => {
      el.dataset.value = "";
      setText(value, "—");
      replace(errSlot, errorBox(code, message));
      done();
    },
  });
  if (spark && p.sparkline) {
    ctx.watch(`series:${p.kpi}:${ctx.unit}:${p.sparkline.window}:${p.sparkline.step}`, {
      value: (d) => drawSpark(spark, (d?.points ?? []).map((x: { value: number | null }) => x.value)),
    }, true);
  }
  return el;
}

function drawSpark(el: SVGSVGElement, vals: (number | null)[]) {
  const xs = vals.map((v, i) => [i, v] as const).filter((x): x is readonly [number, number] => x[1] !== null && Number.isFinite(x[1]));
  el.replaceChildren();
  if (xs.length < 2) return;
  const max = Math.max(...xs.map((x) => x[1]));
  const min = Math.min(...xs.map((x) => x[1]));
  const span = max - min || 1;
  const n = vals.length - 1 || 1;
  const pts = xs.map(([i, v]) => `${((i / n) * 100).toFixed(2)},${(22 - ((v - min) / span) * 20).toFixed(2)}`).join(" ");
  el.appendChild(svg("polyline", { points: pts, fill: "none", "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" }));
}

// -------------------------------------------------------------- ranking

export function rankingPanel(ctx: PanelCtx, p: Panel): HTMLElement {
  const def = ctx.catalog.get(p.kpi ?? "");
  const win = p.window ?? "month";
  const ch = `ranking:${p.kpi}:${ctx.unit}:${win}`;
  const body = h("tbody");
  const empty = h("p.empty");
  const asOf = h("div.as-of");
  const errSlot = h("div.err-slot");
  const title = p.title ? tr(p.title) : `${w("ranking_of")}: ${def ? tr(def.title) : p.kpi}`;
  const el = h(
    "section.panel.ranking",
    { "data-panel": "ranking", "data-kpi": p.kpi ?? "", "data-channel": ch, "data-live": "false" },
    h("header.panel-head", null, h("h3", null, title), h("span.window", null, windowName(win))),
    h("div.live-content", null, h("table.ranking", null, body), empty),
    asOf,
    errSlot,
  );
  const done = once(ctx.firstShown);
  ctx.watch(ch, {
    value: (d, live) => {
      el.dataset.live = String(live);
      let rows: { unit: string; name: string; value: number | null; numerator: number; denominator: number }[] = [...(d?.rows ?? [])];
      const dir = p.order === "asc" ? 1 : -1;
      rows.sort((a, b) => {
        if (a.value === null || b.value === null) return a.value === null ? (b.value === null ? 0 : 1) : -1;
        return dir * (a.value - b.value) || a.unit.localeCompare(b.unit);
      });
      if (p.limit) rows = rows.slice(0, p.limit);
      const max = Math.max(0, ...rows.map((r) => Math.abs(r.value ?? 0))) || 1;
      replace(
        body,
        rows.map((r, i) => {
          const name = r.name || ctx.units.get(r.unit)?.name || r.unit;
          const go = (ev: Event) => ctx.app.link(ev, r.unit);
          return h(
            "tr",
            { "data-unit": r.unit, "data-value": r.value === null || r.value === undefined ? "" : String(r.value), onclick: go },
            h("td.rank", null, String(i + 1)),
            h("td.name", null, h("a", { href: ctx.app.href(r.unit), onclick: (ev: Event) => (ev.stopPropagation(), go(ev)) }, name)),
            h("td.num", null, h("span.v", null, fmt(def, r.value)), def?.kind === "ratio" ? h("span.frac", null, `${num(r.numerator, 0, loc())}/${num(r.denominator, 0, loc())}`) : null),
            h("td.bar", { "aria-hidden": "true" }, h("span", { style: `width:${((Math.abs(r.value ?? 0) / max) * 100).toFixed(1)}%` })),
          );
        }),
      );
      setText(empty, rows.length ? "" : d === null || d === undefined ? t("no_value") : w("no_children"));
      setAsOf(asOf, el, d?.as_of ?? d?.at, ctx.staleMs);
      replace(errSlot);
      if (live) done();
    },
    error: (code, message) => {
      replace(errSlot, errorBox(code, message));
      done();
    },
  }, true);
  return el;
}

// ---------------------------------------------------------------- lists

interface ListRow {
  dossier_id?: string;
  ticket_id?: string;
  unit: string;
  unit_name?: string;
  holder_unit?: string;
  procedure_code?: string;
  procedure_name?: string;
  category?: string;
  officer?: string;
  officer_name?: string;
  received_at?: string;
  due_at?: string;
  working_days_late?: number;
  working_hours_left?: number;
}

function listTitle(list: string): string {
  switch (list) {
    case "dossier.overdue":
      return t("overdue_dossiers");
    case "dossier.due_soon":
      return t("due_soon_dossiers");
    case "feedback.overdue":
      return t("overdue_tickets");
  }
  return list;
}

/** Rows of a list shown before "show all". */
const LIST_SHOWN = 15;

const officerName = (r: ListRow) => r.officer_name || r.officer || w("no_officer");

export function listPanel(ctx: PanelCtx, p: Panel): HTMLElement {
  const list = p.list ?? "";
  const ch = `list:${list}:${ctx.unit}`;
  const isDossier = list.startsWith("dossier.");
  const filter = isDossier ? ctx.officer : undefined;
  const count = h("span.count");
  const body = h("tbody");
  const more = h("p.more");
  const toggle = h("button.show-all", { type: "button", hidden: true });
  const asOf = h("div.as-of");
  const errSlot = h("div.err-slot");
  const byOfficer = list === "dossier.overdue" ? h("div.by-officer") : null;
  const filterBar =
    filter !== undefined
      ? h(
          "div.filter",
          null,
          h("span", null, `${w("filtered_by")}: `, h("strong.officer-name", null, filter || w("no_officer"))),
          h("a.button.ghost", { href: ctx.app.href(ctx.unit), onclick: (ev: Event) => ctx.app.link(ev, ctx.unit) }, w("clear_filter")),
        )
      : null;
  const head = h(
    "tr",
    null,
    h("th", null, list.startsWith("feedback") ? w("ticket") : w("dossier")),
    h("th", null, t("unit")),
    h("th", null, t("officer")),
    h("th.num", null, list === "dossier.due_soon" ? t("hours_left") : t("days_late")),
  );
  const el = h(
    "section.panel.list",
    { "data-panel": "list", "data-list": list, "data-channel": ch, "data-live": "false" },
    h("header.panel-head", null, h("h3", null, p.title ? tr(p.title) : listTitle(list)), count),
    filterBar,
    h("div.live-content", null, byOfficer, h("div.table-wrap", null, h("table.rows", null, h("thead", null, head), body)), toggle, more),
    asOf,
    errSlot,
  );
  const done = once(ctx.firstShown);
  let expanded = false;
  let lastData: any;
  let lastLive = false;
  toggle.addEventListener("click", () => {
    expanded = !expanded;
    show(lastData, lastLive);
  });
  const show = (d: any, live: boolean) => {
    lastData = d;
    lastLive = live;
    el.dataset.live = String(live);
    const all: ListRow[] = d?.rows ?? [];
    const rows = filter === undefined ? all : all.filter((r) => (r.officer ?? "") === filter);
    const total: number = d?.total ?? 0;
    // The channel carries the first rows only: an officer's count among
    // them says so, rather than passing for the officer's whole share.
    const partial = filter !== undefined && !!d?.truncated;
    setText(count, filter === undefined ? num(total, 0, loc())
      : partial ? `${num(rows.length, 0, loc())} ${w("first_rows")} (${num(all.length, 0, loc())} / ${num(total, 0, loc())})`
      : `${num(rows.length, 0, loc())} / ${num(total, 0, loc())}`);
    if (filter !== undefined) {
      const r = all.find((x) => (x.officer ?? "") === filter);
      // The breadcrumb and filter bar name the officer once a row says who it is
      // (after this panel is on the page: a cached value comes before).
      if (r) setTimeout(() => document.querySelectorAll(".officer-name").forEach((n) => setText(n, officerName(r))));
    }
    // A tablet shows the most late first; the rest on request.
    const shown = expanded ? rows : rows.slice(0, LIST_SHOWN);
    replace(body, shown.map((r) => listRow(list, r)));
    toggle.hidden = rows.length <= LIST_SHOWN;
    setText(toggle, expanded ? w("show_fewer") : `${w("show_all")} (${num(rows.length, 0, loc())})`);
    if (!rows.length) body.appendChild(h("tr.none", null, h("td", { colspan: 4 }, d ? w("none") + (partial ? " " + w("first_rows") : "") : t("no_value"))));
    setText(more, d?.truncated ? `${num(all.length, 0, loc())} ${w("of_total")} ${num(total, 0, loc())}` : "");
    if (byOfficer) renderByOfficer(ctx, byOfficer, all, !!d?.truncated);
    setAsOf(asOf, el, d?.at, ctx.staleMs);
    replace(errSlot);
    if (live) done();
  };
  ctx.watch(ch, {
    value: show,
    error: (code, message) => {
      replace(errSlot, errorBox(code, message));
      done();
    },
  });
  return el;
}

function listRow(list: string, r: ListRow): HTMLElement {
  const id = r.dossier_id ?? r.ticket_id ?? "";
  const what = list.startsWith("feedback") ? r.category || "" : r.procedure_name || r.procedure_code || "";
  const late = list === "dossier.due_soon" ? r.working_hours_left : r.working_days_late;
  const lateText =
    late === undefined || late === null
      ? "—"
      : list === "dossier.due_soon"
        ? `${w("left")} ${num(late, 1, loc())} ${w("hours")}`
        : `${num(late, 1, loc())} ${w("days")}`;
  return h(
    "tr",
    { "data-id": id, "data-officer": r.officer ?? "" },
    h("td.what", { "data-label": list.startsWith("feedback") ? w("ticket") : w("dossier") }, h("div.proc", null, what), h("div.id", null, id)),
    h("td", { "data-label": t("unit") }, r.unit_name || r.unit),
    h("td", { "data-label": t("officer") }, officerName(r)),
    h("td.num.late", { "data-label": list === "dossier.due_soon" ? t("hours_left") : t("days_late") }, lateText),
  );
}

/** The officer level of the drill-down: overdue dossiers per officer holding them; a tap filters the lists. */
function renderByOfficer(ctx: PanelCtx, el: HTMLElement, rows: ListRow[], truncated: boolean) {
  const groups = new Map<string, { name: string; n: number; late: number }>();
  for (const r of rows) {
    const k = r.officer ?? "";
    const g = groups.get(k) ?? { name: officerName(r), n: 0, late: 0 };
    g.n++;
    g.late = Math.max(g.late, r.working_days_late ?? 0);
    groups.set(k, g);
  }
  const sorted = [...groups.entries()].sort((a, b) => b[1].n - a[1].n || b[1].late - a[1].late || a[1].name.localeCompare(b[1].name));
  replace(
    el,
    h("h4", null, w("by_officer"), truncated ? h("small", null, ` (${w("first_rows")})`) : null),
    sorted.length
      ? h(
          "ul.officers",
          null,
          sorted.map(([k, g]) => {
            const selected = ctx.officer === k;
            return h(
              "li",
              null,
              h(
                "a.officer",
                {
                  href: ctx.app.href(ctx.unit, selected ? undefined : k),
                  "data-officer": k,
                  "aria-pressed": String(selected),
                  onclick: (ev: Event) => ctx.app.link(ev, ctx.unit, selected ? undefined : k),
                },
                h("span.name", null, g.name),
                h("span.n", null, num(g.n, 0, loc())),
              ),
            );
          }),
        )
      : h("p.empty", null, w("none")),
  );
}

// --------------------------------------------------------------- alerts

interface Alert {
  id: string;
  rule: string;
  severity: string;
  unit: string;
  subject_kind?: string;
  subject?: string;
  state: string;
  title?: string;
  title_vi?: string;
  detail?: string;
  raised_at?: string;
  acked_at?: string;
  acked_by?: string;
  note?: string;
}

interface AlertRow {
  li: HTMLElement;
  sig: string;
  note: HTMLInputElement;
  result: HTMLElement;
}

export function alertsPanel(ctx: PanelCtx): HTMLElement {
  const ch = `alerts:${ctx.unit}`;
  const count = h("span.count");
  const sev = h("div.severities");
  const held = h("p.alerts-held");
  const ul = h("ul.alerts");
  const empty = h("p.empty");
  const asOf = h("div.as-of");
  const errSlot = h("div.err-slot");
  const el = h(
    "section.panel.alerts",
    { "data-panel": "alerts", "data-channel": ch, "data-live": "false" },
    h("header.panel-head", null, h("h3", null, t("alerts")), count),
    sev,
    held,
    h("div.live-content", null, ul, empty),
    asOf,
    errSlot,
  );
  const rows = new Map<string, AlertRow>();
  const done = once(ctx.firstShown);
  ctx.watch(ch, {
    value: (d, live) => {
      el.dataset.live = String(live);
      const alerts: Alert[] = d?.alerts ?? [];
      setText(count, num(d?.total ?? alerts.length, 0, loc()));
      setText(held, heldLine(d?.hold, (u) => dateTime(u, loc())));
      const bySev: Record<string, number> = d?.by_severity ?? {};
      replace(
        sev,
        ["critical", "warning", "info"]
          .filter((s) => bySev[s])
          .map((s) => h("span.sev", { "data-severity": s }, `${w(("severity_" + s) as "severity_info")}: ${num(bySev[s], 0, loc())}`)),
      );
      const seen = new Set<string>();
      const lis: HTMLElement[] = [];
      for (const a of alerts) {
        seen.add(a.id);
        const sig = [a.state, a.severity, a.title, a.title_vi, a.detail, a.acked_by, a.raised_at, getLocale()].join("\u0001");
        let r = rows.get(a.id);
        if (!r) {
          r = {
            li: h("li"),
            sig: "",
            note: h("input.note", { type: "text", maxlength: 1000, placeholder: w("note"), "aria-label": w("note") }),
            result: h("div.ack-result", { "aria-live": "polite" }),
          };
          rows.set(a.id, r);
        }
        if (r.sig !== sig) {
          r.sig = sig;
          renderAlert(ctx, a, r);
        }
        lis.push(r.li);
      }
      for (const k of [...rows.keys()]) if (!seen.has(k)) rows.delete(k);
      // Reorder only when needed, so a focused note keeps its focus.
      const cur = [...ul.children];
      if (cur.length !== lis.length || cur.some((c, i) => c !== lis[i])) replace(ul, lis);
      setText(empty, alerts.length ? "" : t("no_alerts"));
      setAsOf(asOf, el, d?.at, Number.POSITIVE_INFINITY);
      replace(errSlot);
      if (live) done();
    },
    error: (code, message) => {
      replace(errSlot, errorBox(code, message));
      done();
    },
  });
  return el;
}

function renderAlert(ctx: PanelCtx, a: Alert, r: AlertRow) {
  const title = getLocale() === "vi" ? a.title_vi || a.title : a.title || a.title_vi;
  const unitName = ctx.units.get(a.unit)?.name ?? a.unit;
  const li = r.li;
  li.dataset.alert = a.id;
  li.dataset.state = a.state;
  li.dataset.severity = a.severity;
  li.className = "alert sev-" + a.severity;
  let actions: HTMLElement | null = null;
  if (a.state === "raised" && ctx.canAck) {
    const btn = h("button.ack", { type: "button" }, t("acknowledge"));
    btn.addEventListener("click", () => ack(ctx, a.id, r, btn));
    actions = h("div.ack-form", null, r.note, btn);
  } else if (a.state === "acknowledged") {
    actions = h("div.acked", null, `${w("acked_by")} ${a.acked_by ?? ""}${a.acked_at ? " · " + dateTime(a.acked_at, loc()) : ""}`);
  }
  replace(
    li,
    h(
      "div.alert-main",
      null,
      h("span.badge", { "data-severity": a.severity }, w(("severity_" + a.severity) as "severity_info") || a.severity),
      h("strong.alert-title", null, title ?? a.rule),
      a.detail ? h("div.detail", null, a.detail) : null,
      h("div.meta", null, [unitName, a.subject, a.raised_at ? dateTime(a.raised_at, loc()) : ""].filter(Boolean).join(" · ")),
    ),
    actions,
    r.result,
  );
}

async function ack(ctx: PanelCtx, id: string, r: AlertRow, btn: HTMLButtonElement) {
  btn.disabled = true;
  const label = btn.textContent ?? "";
  setText(btn, w("sending"));
  replace(r.result);
  try {
    const res = await ctx.app.live.rpc<Alert>("alert.ack", { alert: id, note: r.note.value.trim() });
    replace(r.result, h("p.ok", { "data-code": "ok" }, `${t("acknowledged")}${res?.acked_by ? " — " + res.acked_by : ""}`));
  } catch (e) {
    const { code, message } = errorParts(e);
    replace(r.result, errorBox(code, message));
    btn.disabled = false;
    setText(btn, label);
  }
}
