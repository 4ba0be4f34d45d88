// The HTTP API of the node the page was served by, with the page's token.

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

export interface KPIValue {
  kpi: string;
  unit: string;
  window: string;
  numerator: number;
  denominator: number;
  value: number | null;
  from?: string;
  to?: string;
  at?: string;
  as_of?: string;
  version?: number;
  seq?: number;
}

export interface KPIDef {
  id: string;
  family: string;
  version: number;
  title: { en: string; vi: string };
  definition: string;
  kind: string;
  format?: string;
  better: string;
  windows: string[];
}

export interface Catalog {
  catalog_version: number;
  windows: string[];
  kpis: KPIDef[];
  /** The composites' scorecards (Decision 766, DTI): each gives <id>.total and <id>.<group>. */
  scorecards?: { id: string; version: number; title: { en: string; vi: string }; max: number; groups: { id: string; title: { en: string; vi: string }; max: number }[] }[];
}

/** Every KPI a panel may show by id: the catalog's, and the composites of its scorecards. */
export function kpiDefs(c: Catalog): KPIDef[] {
  const out = [...c.kpis];
  for (const sc of c.scorecards ?? []) {
    const def = (id: string, title: { en: string; vi: string }, max: number): KPIDef => ({
      id, family: "composite", version: sc.version, title, kind: "composite", better: "higher", windows: c.windows,
      definition: `points out of ${max}`,
    });
    out.push(def(`${sc.id}.total`, sc.title, sc.max));
    for (const g of sc.groups) out.push(def(`${sc.id}.${g.id}`, g.title, g.max));
  }
  return out;
}

export interface Point {
  t: string;
  numerator: number;
  denominator: number;
  value: number | null;
}

export interface Series {
  kpi: string;
  unit: string;
  window: string;
  step: string;
  from: string;
  to: string;
  points: Point[];
  at?: string;
}

export interface RankingRow {
  unit: string;
  name: string;
  value: number | null;
  numerator: number;
  denominator: number;
  as_of?: string;
}

export interface Ranking {
  kpi: string;
  unit: string;
  window: string;
  as_of?: string;
  rows: RankingRow[];
  at?: string;
}

export interface Unit {
  code: string;
  name: string;
  kind: string;
  level: number;
  parent: string;
  lat: number;
  lon: number;
  area_km2?: number;
  population?: number;
  [k: string]: unknown;
}

export interface Camera {
  camera_id: string;
  name: string;
  unit: string;
  lat: number;
  lon: number;
  status: string;
  congestion_level: number;
  flooding_level: number;
  last_seen?: string;
}

export interface MapTicket {
  ticket_id: string;
  unit: string;
  lat: number;
  lon: number;
  category: string;
  overdue: boolean;
  received_at: string;
}

export interface MapData {
  unit: string;
  at: string;
  cameras: Camera[];
  tickets: MapTicket[];
  tickets_total: number;
  tickets_truncated: boolean;
}

export interface Panel {
  kind: "tile" | "trend" | "ranking" | "map" | "alerts" | "list";
  title?: { vi?: string; en?: string };
  size?: number;
  rows?: number;
  kpi?: string;
  window?: string;
  step?: string;
  compare?: boolean;
  sparkline?: { window: string; step: string };
  target?: number;
  order?: "asc" | "desc";
  limit?: number;
  cameras?: boolean;
  tickets?: boolean;
  list?: string;
}

export interface Dashboard {
  id: string;
  kind: "wall" | "tablet";
  title: { vi: string; en: string };
  unit: string;
  unit_name?: string;
  unit_kind?: string[];
  stale_after?: string;
  panels: Panel[];
}

export class Api {
  constructor(public token: string, public base = "") {}

  /** GET, waiting and asking again (up to 3 times) when the server is
   *  busy with this token's other computations (429 with Retry-After). */
  async get<T>(path: string, params?: Record<string, string | number | undefined>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.fetch(path, params);
        return (await r.json()) as T;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 429 || attempt >= 3) throw e;
        await new Promise((done) => setTimeout(done, 1000 * (attempt + 1)));
      }
    }
  }

  async post<T>(path: string, body: unknown, params?: Record<string, string | number | undefined>): Promise<T> {
    const r = await this.fetch(path, params, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    return (await r.json()) as T;
  }

  /** fetch with the token; an error status becomes an ApiError with the server's message. */
  async fetch(path: string, params?: Record<string, string | number | undefined>, init: RequestInit = {}): Promise<Response> {
    const url = new URL(this.base + path, location.origin);
    for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    const headers = new Headers(init.headers);
    headers.set("Authorization", "Bearer " + this.token);
    const r = await fetch(url, { ...init, headers });
    if (!r.ok) {
      let code = "http_" + r.status;
      let msg = r.statusText;
      try {
        const e = await r.json();
        if (e?.error) {
          code = e.error.code ?? code;
          msg = e.error.message ?? msg;
        }
      } catch {
        /* not JSON */
      }
      throw new ApiError(r.status, code, msg);
    }
    return r;
  }

  catalog = once(() => this.get<Catalog>("/api/v1/kpis"));
  units = once(() => this.get<{ units: Unit[] }>("/api/v1/reference/units").then((r) => r.units));

  dashboard(id: string, unit?: string) {
    return this.get<Dashboard>(`/api/v1/dashboards/${encodeURIComponent(id)}`, { unit });
  }
  value(kpi: string, unit: string, window: string, from?: string, to?: string) {
    return this.get<KPIValue>(`/api/v1/kpis/${encodeURIComponent(kpi)}`, { unit, window, from, to });
  }
}

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    p ??= f().catch((e) => {
      p = undefined;
      throw e;
    });
    return p;
  };
}

/** The catalog entry of a KPI by id. */
export async function kpiDef(api: Api, id: string): Promise<KPIDef | undefined> {
  return (await api.catalog()).kpis.find((k) => k.id === id);
}
