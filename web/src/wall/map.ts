// The city map, drawn from the bundled coordinates only (control-room
// machines are often offline: no tile server). Each ward is the part of its
// Voronoi cell (between ward centres) within a disc of the ward's area, so
// the shapes are close to the real ones without boundary files; wards are
// coloured by a KPI, cameras by status, congestion and flooding, open
// tickets as dots (red when overdue).
import { Delaunay } from "d3-delaunay";
import type { Camera, MapData, MapTicket, Panel, Ranking, Unit } from "../lib/api";
import { h, replace, svg } from "../lib/dom";
import { kpiValue, num } from "../lib/format";
import { getLocale, t, tr, windowName } from "../lib/i18n";
import { frame, type Ctx, type PanelView } from "./context";
import { liveView, rawValue, watch } from "./panels";

type XY = [number, number];

/** The 2025 wards: phường, xã and đặc khu. */
const WARD_KINDS = ["ward", "commune", "special_zone"];

export function mapPanel(ctx: Ctx, p: Panel): PanelView {
  const def = ctx.defs.get(p.kpi!);
  const f = frame("map", p.title ? tr(p.title) : def ? `${tr(def.title)} — ${windowName(p.window!)}` : t("map"), p.size ?? 3, "map-panel");
  const root = ctx.units.get(ctx.unit);
  // The wards drawn: the root's wards (its children, or the root itself for
  // a ward) and, around a ward, its siblings for context.
  const all = [...ctx.units.values()].filter((u) => WARD_KINDS.includes(u.kind) && Number.isFinite(u.lat) && Number.isFinite(u.lon) && u.lat !== 0);
  const isWard = WARD_KINDS.includes(root?.kind ?? "");
  const focus = isWard ? [root!] : all.filter((u) => inSubtree(ctx, u.code, ctx.unit));
  const wards = isWard ? all.filter((u) => u.parent === root!.parent) : focus;
  const proj = projection(focus.length ? focus : wards, isWard);
  const map = svg("svg", { class: "map", viewBox: proj.viewBox, preserveAspectRatio: "xMidYMid meet" });
  const gWards = svg("g", { class: "wards" });
  const gTickets = svg("g", { class: "tickets" });
  const gCams = svg("g", { class: "cameras" });
  map.append(gWards, gTickets, gCams);
  const cells = new Map<string, SVGPathElement>();
  for (const [code, d] of wardShapes(wards, proj)) {
    const path = svg("path", { d, "data-unit": code, class: isWard ? (code === ctx.unit ? "ward focus" : "ward context") : "ward" });
    const u = ctx.units.get(code);
    path.appendChild(svg("title")).textContent = u?.name ?? code;
    cells.set(code, path);
    gWards.append(path);
  }
  const legend = h("div.map-legend");
  const counts = h("div.map-counts");
  f.body.append(h("div.map-box", null, map), h("div.map-side", null, legend, counts));
  f.note.textContent = `${wards.length} ${t("wards").toLowerCase()}`;

  const values = new Map<string, number | null>();
  const paint = () => {
    const vs = [...values.values()].filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
    const hi = vs.length ? vs[Math.floor((vs.length - 1) * 0.95)] || vs[vs.length - 1] : 0;
    const lowerBetter = def?.better !== "higher";
    for (const [code, el] of cells) {
      if (el.classList.contains("context")) continue;
      const v = values.get(code);
      el.dataset.value = rawValue(v);
      if (v === null || v === undefined) {
        el.style.fill = "";
        continue;
      }
      const x = hi > 0 ? Math.min(1, v / hi) : 0;
      el.style.fill = heat(lowerBetter ? x : 1 - x);
      el.querySelector("title")!.textContent = `${ctx.units.get(code)?.name ?? code}: ${kpiValue(v, def?.format, getLocale())}`;
    }
    legend.replaceChildren(
      h("div.legend-title", null, def ? tr(def.title) : p.kpi ?? ""),
      h("div.legend-scale", null,
        h("span", null, kpiValue(0, def?.format, getLocale())),
        h("span.legend-bar", { "data-direction": lowerBetter ? "lower" : "higher" }),
        h("span", null, "≥ " + kpiValue(hi, def?.format, getLocale()))),
    );
  };

  const channels: string[] = [];
  if (!p.kpi) {
    // No KPI colours the wards: the map shows cameras and tickets only.
    legend.remove();
  } else {
    // A ward's own value, or the ranking of the root's wards.
    const ch = isWard ? `kpi:${p.kpi}:${ctx.unit}:${p.window}` : `ranking:${p.kpi}:${ctx.unit}:${p.window}`;
    channels.push(ch);
    watch(ctx, ch, (d: (Ranking & { value?: number | null }) | null) => {
      values.clear();
      if (isWard) values.set(ctx.unit, d?.value ?? null);
      else for (const row of d?.rows ?? []) values.set(row.unit, row.value);
      paint();
      f.asOf(d?.as_of);
    }, f.body);
  }

  if (p.cameras || p.tickets) {
    // The layers the panel draws: a wall's token reads no other.
    const ch = p.cameras && p.tickets ? `map:${ctx.unit}` : `map:${ctx.unit}:${p.cameras ? "cameras" : "tickets"}`;
    channels.push(ch);
    const cams = new Map<string, SVGCircleElement>();
    const tks = new Map<string, SVGCircleElement>();
    watch(ctx, ch, (d: MapData | null) => {
      if (p.cameras) sync(cams, d?.cameras ?? [], (c) => c.camera_id, gCams, (el, c) => drawCamera(el, c, proj));
      if (p.tickets) sync(tks, d?.tickets ?? [], (x) => x.ticket_id, gTickets, (el, x) => drawTicket(el, x, proj));
      const cs = d?.cameras ?? [];
      const off = cs.filter((c) => c.status !== "online").length;
      const jam = cs.filter((c) => c.congestion_level >= 3).length;
      const flood = cs.filter((c) => c.flooding_level >= 1).length;
      const loc = getLocale();
      replace(counts,
        p.cameras ? h("div", null, h("span.dot.cam-online"), `${t("cameras")}: ${num(cs.length, 0, loc)} (${num(off, 0, loc)} ${loc === "vi" ? "mất tín hiệu" : "offline"})`) : null,
        p.cameras ? h("div", null, h("span.dot.cam-jam"), `${loc === "vi" ? "Ùn tắc" : "Congestion"} ≥ 3: ${num(jam, 0, loc)}`) : null,
        p.cameras ? h("div", null, h("span.dot.cam-flood"), `${loc === "vi" ? "Ngập" : "Flooding"}: ${num(flood, 0, loc)}`) : null,
        p.tickets ? h("div", null, h("span.dot.ticket-open"), `${t("tickets")}: ${num(d?.tickets_total ?? 0, 0, loc)}`) : null,
        p.tickets ? h("div", null, h("span.dot.ticket-overdue"), `${loc === "vi" ? "Quá hạn" : "Overdue"}: ${num((d?.tickets ?? []).filter((x) => x.overdue).length, 0, loc)}`) : null,
      );
    }, (code, msg) => counts.replaceChildren(h("div.error", { "data-code": code }, msg)));
  }
  return liveView(ctx, f, channels);
}

function inSubtree(ctx: Ctx, code: string, root: string): boolean {
  for (let u = ctx.units.get(code), n = 0; u && n < 10; u = ctx.units.get(u.parent), n++) if (u.code === root) return true;
  return false;
}

/** Keeps one element per item, updating in place (no growth over days). */
function sync<T>(els: Map<string, SVGCircleElement>, items: T[], id: (x: T) => string, g: SVGGElement, draw: (el: SVGCircleElement, x: T) => void) {
  const seen = new Set<string>();
  for (const x of items) {
    const k = id(x);
    seen.add(k);
    let el = els.get(k);
    if (!el) {
      el = svg("circle");
      els.set(k, el);
      g.append(el);
    }
    draw(el, x);
  }
  for (const [k, el] of els) {
    if (!seen.has(k)) {
      el.remove();
      els.delete(k);
    }
  }
}

function drawCamera(el: SVGCircleElement, c: Camera, proj: Projection) {
  const [x, y] = proj.xy(c.lat, c.lon);
  const state = c.status !== "online" ? "offline" : c.flooding_level >= 1 ? "flood" : c.congestion_level >= 3 ? "jam" : c.congestion_level >= 2 ? "slow" : "ok";
  set(el, { cx: x.toFixed(3), cy: y.toFixed(3), r: (state === "ok" ? 0.22 : 0.45) * proj.dot, class: "camera " + state, "data-camera": c.camera_id });
}

function drawTicket(el: SVGCircleElement, tk: MapTicket, proj: Projection) {
  const [x, y] = proj.xy(tk.lat, tk.lon);
  set(el, { cx: x.toFixed(3), cy: y.toFixed(3), r: (tk.overdue ? 0.3 : 0.2) * proj.dot, class: "ticket" + (tk.overdue ? " overdue" : ""), "data-ticket": tk.ticket_id });
}

function set(el: Element, attrs: Record<string, string | number>) {
  for (const [k, v] of Object.entries(attrs)) if (el.getAttribute(k) !== String(v)) el.setAttribute(k, String(v));
}

/** Green (0) → amber → red (1). */
function heat(x: number): string {
  const hue = 140 - 140 * Math.max(0, Math.min(1, x));
  return `hsl(${hue.toFixed(0)} 70% ${(42 - 6 * x).toFixed(0)}%)`;
}

interface Projection {
  xy(lat: number, lon: number): XY;
  viewBox: string;
  /** Scale of the dots: 1 for the city (about 100 km across), smaller when zoomed on a ward. */
  dot: number;
}

/** Kilometres east and south of the centre; the extent leaves out far outliers (islands) unless zoomed on a ward. */
function projection(units: Unit[], zoom: boolean): Projection {
  const lat0 = median(units.map((u) => u.lat));
  const lon0 = median(units.map((u) => u.lon));
  const kx = 111.32 * Math.cos((lat0 * Math.PI) / 180);
  const ky = 110.57;
  const xy = (lat: number, lon: number): XY => [(lon - lon0) * kx, (lat0 - lat) * ky];
  const pts = units.map((u) => xy(u.lat, u.lon));
  const dist = pts.map(([x, y]) => Math.hypot(x, y));
  // Far outliers (Côn Đảo, 180 km out at sea) would shrink the city to a corner.
  const cut = zoom ? Infinity : Math.max(median(dist) * 8, 100);
  // The extent holds each kept ward's whole disc (wardShapes), plus a margin.
  const pad = zoom ? 4 : 0.5;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  pts.forEach(([x, y], i) => {
    if (dist[i] > cut) return;
    const r = radius(units[i]) + pad;
    [x0, y0, x1, y1] = [Math.min(x0, x - r), Math.min(y0, y - r), Math.max(x1, x + r), Math.max(y1, y + r)];
  });
  return { xy, viewBox: `${x0.toFixed(2)} ${y0.toFixed(2)} ${(x1 - x0).toFixed(2)} ${(y1 - y0).toFixed(2)}`, dot: Math.min(1, Math.max(x1 - x0, y1 - y0) / 100) };
}

/** The disc a ward's shape stays within: 1.3 × the radius of its area, km. */
function radius(u: Unit): number {
  const area = typeof u.area_km2 === "number" && u.area_km2 > 0 ? u.area_km2 : 5;
  return Math.max(0.6, Math.sqrt(area / Math.PI) * 1.3);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}

/** Each ward's Voronoi cell cut to a disc 1.3 × the radius of its area. */
function wardShapes(wards: Unit[], proj: Projection): [string, string][] {
  if (wards.length === 0) return [];
  const pts = wards.map((u) => proj.xy(u.lat, u.lon));
  const [bx, by, bw, bh] = proj.viewBox.split(" ").map(Number);
  const far = 200;
  const vor = Delaunay.from(pts).voronoi([bx - far, by - far, bx + bw + far, by + bh + far]);
  const out: [string, string][] = [];
  wards.forEach((u, i) => {
    const r = radius(u);
    const disc: XY[] = [];
    for (let k = 0; k < 40; k++) {
      const a = (k / 40) * 2 * Math.PI;
      disc.push([pts[i][0] + r * Math.cos(a), pts[i][1] + r * Math.sin(a)]);
    }
    const cell = (vor.cellPolygon(i) as XY[] | null) ?? disc;
    const poly = clip(disc, cell.slice(0, -1));
    if (poly.length < 3) return;
    out.push([u.code, "M" + poly.map(([x, y]) => `${x.toFixed(3)},${y.toFixed(3)}`).join("L") + "Z"]);
  });
  return out;
}

/** Sutherland–Hodgman: the subject polygon cut by a convex polygon. */
function clip(subject: XY[], convex: XY[]): XY[] {
  // Orientation of the clip polygon decides which side is inside.
  let area = 0;
  for (let i = 0; i < convex.length; i++) {
    const [x1, y1] = convex[i];
    const [x2, y2] = convex[(i + 1) % convex.length];
    area += x1 * y2 - x2 * y1;
  }
  const sign = area >= 0 ? 1 : -1;
  let out = subject;
  for (let i = 0; i < convex.length && out.length; i++) {
    const a = convex[i];
    const b = convex[(i + 1) % convex.length];
    const inside = (p: XY) => sign * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])) >= 0;
    const cross = (p: XY, q: XY): XY => {
      const a1 = b[1] - a[1], b1 = a[0] - b[0], c1 = a1 * a[0] + b1 * a[1];
      const a2 = q[1] - p[1], b2 = p[0] - q[0], c2 = a2 * p[0] + b2 * p[1];
      const det = a1 * b2 - a2 * b1;
      return det === 0 ? p : [(b2 * c1 - b1 * c2) / det, (a1 * c2 - a2 * c1) / det];
    };
    const input = out;
    out = [];
    for (let j = 0; j < input.length; j++) {
      const cur = input[j];
      const prev = input[(j + input.length - 1) % input.length];
      if (inside(cur)) {
        if (!inside(prev)) out.push(cross(prev, cur));
        out.push(cur);
      } else if (inside(prev)) out.push(cross(prev, cur));
    }
  }
  return out;
}
