// The analysts' SQL console (/console): the curated views with their
// columns (GET /api/v1/schema), an editor that runs one read-only statement
// (POST /api/v1/sql, docs/sql.md) and shows the result as a table, downloads
// of the same statement as CSV or Arrow, a local history of statements, and
// the SQL behind any KPI value (GET /api/v1/kpis/{kpi}/sql) in one click.
import "../styles/console.css";
import { Api, ApiError, type Catalog } from "../lib/api";
import { h, replace, setText } from "../lib/dom";
import { num } from "../lib/format";
import { getLocale, setLocale, t, tr, windowName } from "../lib/i18n";
import { claims, storedToken, storeToken } from "../lib/session";
import { cw } from "./words";

const KIND = "console";
const HISTORY_KEY = "ioc.console.history";
const THEME_KEY = "ioc.console.theme";
const HISTORY_MAX = 50;
/** Rows drawn in the table at most; the download buttons give the rest. */
const DRAW_MAX = 5000;

interface SchemaColumn {
  name: string;
  type: string;
  en?: string;
  vi?: string;
}
interface SchemaView {
  name: string;
  title?: string;
  scoped?: boolean;
  columns: SchemaColumn[];
}
interface JSONResult {
  meta: { name: string; type: string }[];
  data: unknown[][];
  rows: number;
  truncated: boolean;
  query_id?: string;
  elapsed_ms?: number;
  error?: { code?: string; message?: string } | string;
}
interface HistoryItem {
  sql: string;
  at: number;
}

class SQLError extends Error {
  constructor(public code: string, message: string, public offset?: number) {
    super(message);
  }
}

export function mountConsole(root: HTMLElement) {
  document.body.className = "console";
  applyTheme();
  document.title = "SQL console — ioc";
  const token = storedToken(KIND);
  if (!token) return signin(root);
  new ConsoleApp(root, token).start();
}

function applyTheme() {
  const stored = localStorage.getItem(THEME_KEY);
  const dark = stored ? stored === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  document.body.dataset.theme = dark ? "dark" : "light";
}

function signin(root: HTMLElement, reason?: string) {
  delete document.body.dataset.ready;
  const input = h("input", { name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, placeholder: "eyJhbGciOi…", "aria-label": t("token") });
  const form = h(
    "form#signin",
    { class: "signin" },
    h("h1", null, cw("title")),
    reason ? h("p.error", { "data-code": "unauthorized", role: "alert" }, reason) : null,
    h("label", null, t("token"), input),
    h("p.help", null, cw("signin_help")),
    h("div.actions", null, h("button.primary", { type: "submit" }, t("sign_in")), langButton(() => signin(root, reason))),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tok = input.value.trim();
    if (!tok) return;
    storeToken(KIND, tok);
    new ConsoleApp(root, tok).start();
  });
  replace(root, h("main.signin-page", null, form));
  input.focus();
}

function langButton(rerender: () => void): HTMLButtonElement {
  return h(
    "button#lang",
    {
      type: "button",
      onclick: () => {
        setLocale(getLocale() === "vi" ? "en" : "vi");
        rerender();
      },
    },
    cw("language"),
  );
}

class ConsoleApp {
  private api: Api;
  private unitDefault: string;
  private schemaEl = h("nav#schema", { "aria-label": "schema" });
  private sql = h("textarea#sql", {
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    rows: 12,
    "aria-label": "SQL",
  });
  // The table reads its result whole (JSON): bounded so a tab never holds
  // millions of rows; the downloads take more.
  private maxRows = h("input#max-rows", { name: "max_rows", type: "number", min: 1, max: 100000, step: 1, value: "1000" });
  /** Downloads have their own limit: the table's max rows would cut them. */
  private downloadRows = h("input#download-rows", { name: "download_rows", type: "number", min: 1, max: 100000000, step: 1, value: "1000000" });
  private timeout = h("input#timeout", { name: "timeout", type: "number", min: 1, max: 300, step: 1, value: "30" });
  private runBtn = h("button#run", { type: "button", class: "primary" }, t("run"));
  private cancelBtn = h("button#cancel", { type: "button", disabled: true }, cw("cancel"));
  private csvBtn = h("button#download-csv", { type: "button" }, cw("download_csv"));
  private arrowBtn = h("button#download-arrow", { type: "button" }, cw("download_arrow"));
  private meta = h("div#result-meta", { role: "status", class: "meta" });
  private errorEl = h("div#sql-error");
  private resultWrap = h("div.result-wrap");
  private historyEl = h("ul#history-list");
  private kpiSel = h("select#kpi-sql", { "aria-label": cw("kpi_sql") });
  private kpiUnit = h("input#kpi-unit", { type: "text", size: 8, "aria-label": t("unit") });
  private kpiWindow = h("select#kpi-window", { "aria-label": cw("window") });
  private catalog?: Catalog;
  private running?: AbortController;
  private schema?: SchemaView[];

  constructor(private root: HTMLElement, private token: string) {
    this.api = new Api(token);
    const c = claims(token);
    this.unitDefault = (c.role === "leader" && c.unit) || "79";
    this.kpiUnit.value = this.unitDefault;
  }

  start() {
    this.sql.value = this.sql.value || localStorage.getItem("ioc.console.draft") || "SELECT unit, count() AS dossiers\nFROM dossiers\nGROUP BY unit\nORDER BY dossiers DESC\nLIMIT 20";
    this.sql.placeholder = cw("editor_hint");
    this.render();
    this.wire();
    this.loadSchema();
    this.loadCatalog();
    this.renderHistory();
  }

  private render() {
    const c = claims(this.token);
    const themeBtn = h(
      "button#theme",
      {
        type: "button",
        onclick: () => {
          const dark = document.body.dataset.theme !== "dark";
          localStorage.setItem(THEME_KEY, dark ? "dark" : "light");
          applyTheme();
        },
      },
      cw("theme"),
    );
    const signOut = h(
      "button#signout",
      {
        type: "button",
        onclick: () => {
          this.running?.abort();
          storeToken(KIND, undefined);
          signin(this.root);
        },
      },
      t("sign_out"),
    );
    replace(
      this.root,
      h(
        "header.top",
        null,
        h("h1", null, cw("title")),
        h("span.who", null, [c.role, c.unit].filter(Boolean).join(" · ")),
        h("div.top-actions", null, langButton(() => this.relabel()), themeBtn, signOut),
      ),
      h(
        "div.layout",
        null,
        h("aside.side", null, h("h2", null, cw("schema")), this.schemaEl),
        h(
          "main.work",
          null,
          h(
            "div.kpi-opener",
            null,
            h("label", null, cw("kpi_sql"), this.kpiSel),
            h("label", null, t("unit"), this.kpiUnit),
            h("label", null, cw("window"), this.kpiWindow),
          ),
          this.sql,
          h(
            "div.controls",
            null,
            this.runBtn,
            this.cancelBtn,
            h("label", null, cw("max_rows"), this.maxRows),
            h("label", null, cw("timeout_s"), this.timeout),
            h("span.spacer"),
            h("label", null, cw("download_rows"), this.downloadRows),
            this.csvBtn,
            this.arrowBtn,
          ),
          this.errorEl,
          this.meta,
          this.resultWrap,
        ),
        h("aside.history", null, h("h2", null, cw("history")), h("div#history", null, this.historyEl)),
      ),
    );
  }

  private relabel() {
    this.render();
    this.runBtn.textContent = t("run");
    this.cancelBtn.textContent = cw("cancel");
    this.csvBtn.textContent = cw("download_csv");
    this.arrowBtn.textContent = cw("download_arrow");
    this.sql.placeholder = cw("editor_hint");
    if (this.schema) this.renderSchema(this.schema);
    if (this.catalog) this.renderCatalog(this.catalog);
    this.renderHistory();
  }

  private wire() {
    // Tab indents; Esc then Tab moves on (the keyboard is never trapped).
    let escaped = false;
    this.sql.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key === "Enter") {
        ev.preventDefault();
        this.run();
      } else if (ev.key === "Tab" && !escaped && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
        ev.preventDefault();
        this.insert("  ");
      }
      escaped = ev.key === "Escape";
    });
    this.sql.addEventListener("input", () => localStorage.setItem("ioc.console.draft", this.sql.value));
    this.runBtn.addEventListener("click", () => this.run());
    this.cancelBtn.addEventListener("click", () => this.running?.abort());
    this.csvBtn.addEventListener("click", () => this.download("csv"));
    this.arrowBtn.addEventListener("click", () => this.download("arrow"));
    this.kpiSel.addEventListener("change", () => {
      this.fillWindows();
      this.openKPI();
    });
    this.kpiWindow.addEventListener("change", () => this.kpiSel.value && this.openKPI());
    this.kpiUnit.addEventListener("change", () => this.kpiSel.value && this.openKPI());
  }

  /** Inserts text at the cursor (replacing the selection), keeping undo where the browser can. */
  private insert(text: string) {
    const ta = this.sql;
    ta.focus();
    const start = ta.selectionStart;
    const end = ta.selectionEnd;
    // execCommand keeps the browser's undo stack; setRangeText where it is gone.
    if (!document.execCommand?.("insertText", false, text)) {
      ta.setRangeText(text, start, end, "end");
    }
    localStorage.setItem("ioc.console.draft", ta.value);
  }

  // ------------------------------------------------------------ schema

  private async loadSchema() {
    replace(this.schemaEl, h("p.muted", null, cw("loading")));
    for (let attempt = 0; ; attempt++) {
      try {
        const s = await this.api.get<{ database: string; views: SchemaView[] }>("/api/v1/schema");
        this.schema = s.views ?? [];
        this.renderSchema(this.schema);
        break;
      } catch (e) {
        const { code, message } = parts(e);
        const again = !(e instanceof ApiError) || e.status >= 500 || e.status === 429;
        replace(this.schemaEl, h("p.error", { "data-code": code, role: "alert" }, message));
        if (code === "unauthorized" || (e instanceof ApiError && e.status === 401)) {
          storeToken(KIND, undefined);
          signin(this.root, message);
          return;
        }
        if (!again || attempt >= 5) break;
        await sleep(Math.min(15000, 1000 * 2 ** attempt));
      }
    }
    document.body.dataset.ready = "true";
  }

  private renderSchema(views: SchemaView[]) {
    const loc = getLocale();
    replace(
      this.schemaEl,
      h(
        "ul.views",
        null,
        views.map((v) =>
          h(
            "li.view",
            { "data-view": v.name },
            h(
              "details",
              null,
              h(
                "summary",
                { title: v.title ?? "" },
                h("button.ins.view-name", { type: "button", title: cw("insert"), onclick: (ev: Event) => (ev.preventDefault(), this.insert(v.name)) }, v.name),
                v.scoped ? h("span.scoped", { title: cw("scoped") }, "⛨") : null,
                h("span.view-title", null, v.title ?? ""),
              ),
              h(
                "ul.columns",
                null,
                v.columns.map((c) =>
                  h(
                    "li.column",
                    { "data-column": c.name, title: (loc === "vi" ? c.vi || c.en : c.en || c.vi) ?? "" },
                    h("button.ins", { type: "button", onclick: () => this.insert(c.name) }, c.name),
                    h("span.type", null, c.type),
                    h("span.meaning", null, (loc === "vi" ? c.vi || c.en : c.en || c.vi) ?? ""),
                  ),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  // ------------------------------------------------------------ KPI SQL

  private async loadCatalog() {
    try {
      this.catalog = await this.api.catalog();
      this.renderCatalog(this.catalog);
    } catch (e) {
      const { message } = parts(e);
      replace(this.kpiSel, h("option", { value: "" }, `${t("error")}: ${message}`));
    }
  }

  private renderCatalog(c: Catalog) {
    const cur = this.kpiSel.value;
    replace(
      this.kpiSel,
      h("option", { value: "" }, cw("choose_kpi")),
      c.kpis.map((k) => h("option", { value: k.id }, `${k.id} — ${tr(k.title)}`)),
    );
    this.kpiSel.value = cur;
    this.fillWindows();
  }

  private fillWindows() {
    const k = this.catalog?.kpis.find((x) => x.id === this.kpiSel.value);
    const wins = k?.windows ?? this.catalog?.windows ?? [];
    const cur = this.kpiWindow.value;
    replace(this.kpiWindow, wins.map((w) => h("option", { value: w }, `${w} — ${windowName(w)}`)));
    this.kpiWindow.value = wins.includes(cur) ? cur : wins.includes("month") ? "month" : wins[0] ?? "";
  }

  /** Loads the SQL of the chosen KPI, unit and window into the editor and runs it. */
  private async openKPI() {
    const kpi = this.kpiSel.value;
    if (!kpi) return;
    replace(this.errorEl);
    try {
      const r = await this.api.fetch(`/api/v1/kpis/${encodeURIComponent(kpi)}/sql`, { unit: this.kpiUnit.value.trim() || this.unitDefault, window: this.kpiWindow.value }, { headers: { Accept: "application/json" } });
      const body = (await r.json()) as { sql: string };
      this.sql.value = body.sql;
      localStorage.setItem("ioc.console.draft", this.sql.value);
      await this.run();
    } catch (e) {
      this.showError(e);
    }
  }

  // ------------------------------------------------------------ run

  private request(format: string, rowsInput = this.maxRows): Record<string, unknown> {
    const body: Record<string, unknown> = { sql: this.sql.value, format };
    const mr = Math.min(parseInt(rowsInput.value, 10), parseInt(rowsInput.max, 10) || Infinity);
    if (Number.isFinite(mr) && mr > 0) body.max_rows = mr;
    const to = parseFloat(this.timeout.value);
    if (Number.isFinite(to) && to > 0) body.timeout = `${to}s`;
    return body;
  }

  private async post(format: string, signal: AbortSignal, rowsInput = this.maxRows): Promise<Response> {
    const r = await fetch("/api/v1/sql", {
      method: "POST",
      headers: { Authorization: "Bearer " + this.token, "Content-Type": "application/json" },
      body: JSON.stringify(this.request(format, rowsInput)),
      signal,
    });
    if (!r.ok) {
      let code = "http_" + r.status;
      let msg = r.statusText;
      let offset: number | undefined;
      try {
        const e = await r.json();
        if (e?.error) {
          code = e.error.code ?? code;
          msg = e.error.message ?? msg;
          offset = e.error.detail?.offset;
        }
      } catch {
        /* not JSON */
      }
      if (r.status === 429) msg += ` (${cw("busy")})`;
      throw new SQLError(code, msg, offset);
    }
    return r;
  }

  private begin(): AbortController | undefined {
    if (!this.sql.value.trim()) return undefined;
    this.running?.abort();
    const ac = new AbortController();
    this.running = ac;
    this.cancelBtn.disabled = false;
    this.runBtn.disabled = true;
    replace(this.errorEl);
    return ac;
  }

  private end(ac: AbortController) {
    if (this.running !== ac) return;
    this.running = undefined;
    this.cancelBtn.disabled = true;
    this.runBtn.disabled = false;
  }

  async run() {
    const ac = this.begin();
    if (!ac) return;
    this.remember(this.sql.value);
    setText(this.meta, cw("running"));
    this.meta.dataset.state = "running";
    const t0 = performance.now();
    try {
      const r = await this.post("json", ac.signal);
      const res = (await r.json()) as JSONResult;
      this.showResult(res, performance.now() - t0);
    } catch (e) {
      if (ac.signal.aborted) {
        setText(this.meta, cw("canceled"));
        this.meta.dataset.state = "canceled";
      } else {
        setText(this.meta, "");
        this.meta.dataset.state = "error";
        this.showError(e);
      }
    } finally {
      this.end(ac);
    }
  }

  private showError(e: unknown) {
    const { code, message } = parts(e);
    const offset = e instanceof SQLError ? e.offset : undefined;
    replace(
      this.errorEl,
      h(
        "div.error",
        { "data-code": code, role: "alert" },
        h("strong", null, `${t("error")} (${code}): `),
        h("span.message", null, message),
        offset !== undefined ? h("button.goto", { type: "button", onclick: () => this.select(offset) }, `${cw("at_offset")} ${offset}`) : null,
      ),
    );
    if (offset !== undefined) this.select(offset);
  }

  /** Puts the cursor at a byte offset of the statement (the guard's offsets are bytes of UTF-8). */
  private select(byteOffset: number) {
    const enc = new TextEncoder();
    let i = 0;
    let bytes = 0;
    for (const ch of this.sql.value) {
      if (bytes >= byteOffset) break;
      bytes += enc.encode(ch).length;
      i += ch.length;
    }
    this.sql.focus();
    this.sql.setSelectionRange(i, Math.min(this.sql.value.length, i + 1));
  }

  private showResult(res: JSONResult, ms: number) {
    const rows = res.data ?? [];
    const metaParts = [
      `${num(res.rows ?? rows.length, 0, getLocale())} ${cw("rows")}`,
      res.truncated ? cw("truncated") : "",
      `${num(res.elapsed_ms ?? Math.round(ms), 0, getLocale())} ms`,
      res.query_id ? `query_id ${res.query_id}` : "",
      rows.length > DRAW_MAX ? `${cw("drawn")} ${num(DRAW_MAX, 0, getLocale())}` : "",
    ].filter(Boolean);
    replace(
      this.meta,
      metaParts.map((p, i) => h("span", { class: i === 1 && res.truncated ? "truncated" : "" }, p)),
    );
    this.meta.dataset.state = "done";
    this.meta.dataset.rows = String(res.rows ?? rows.length);
    this.meta.dataset.truncated = String(!!res.truncated);
    if (res.query_id) this.meta.dataset.queryId = res.query_id;
    if (res.elapsed_ms !== undefined) this.meta.dataset.elapsedMs = String(res.elapsed_ms);
    if (res.error) {
      const err = typeof res.error === "string" ? { code: "error", message: res.error } : res.error;
      this.showError(new SQLError(err.code ?? "error", `${err.message ?? ""} (${cw("partial")})`));
    }
    const types = (res.meta ?? []).map((m) => m.type);
    const numeric = types.map((ty) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(ty));
    const table = h(
      "table.results",
      { "data-rows": String(res.rows ?? rows.length), "data-truncated": String(!!res.truncated) },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          (res.meta ?? []).map((m, i) => h("th", { class: numeric[i] ? "num" : "", "data-type": m.type }, h("span.col", null, m.name), h("span.type", null, m.type))),
        ),
      ),
      h(
        "tbody",
        null,
        rows.slice(0, DRAW_MAX).map((r) =>
          h(
            "tr",
            null,
            r.map((v, i) => h("td", { class: (numeric[i] ? "num" : "") + (v === null ? " null" : "") }, cell(v))),
          ),
        ),
      ),
    );
    replace(this.resultWrap, table);
  }

  private async download(format: "csv" | "arrow") {
    const ac = this.begin();
    if (!ac) return;
    const btn = format === "csv" ? this.csvBtn : this.arrowBtn;
    btn.classList.add("busy");
    setText(this.meta, cw("downloading"));
    try {
      const r = await this.post(format, ac.signal, this.downloadRows);
      // Read in chunks, counting a CSV's lines as they come: the row count
      // and whether the cut was reached travel in HTTP trailers, which
      // fetch does not expose.
      const chunks: Uint8Array[] = [];
      let lines = 0;
      const reader = r.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        if (format === "csv") for (let i = value.indexOf(10); i >= 0; i = value.indexOf(10, i + 1)) lines++;
      }
      const blob = new Blob(chunks as BlobPart[], { type: r.headers.get("Content-Type") ?? "" });
      const name = format === "csv" ? "result.csv" : "result.arrow";
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true }, name);
      document.body.appendChild(a);
      a.click();
      setTimeout(() => {
        a.remove();
        URL.revokeObjectURL(url);
      }, 10000);
      const limit = parseInt(this.downloadRows.value, 10) || 0;
      let info = `${name}: ${num(blob.size, 0, getLocale())} bytes`;
      if (format === "csv") {
        // The header is a line; a value holding a line break counts more
        // lines than rows, never fewer.
        const rows = Math.max(0, lines - 1);
        info += ` · ${num(rows, 0, getLocale())} ${cw("rows")}`;
        if (limit > 0 && rows >= limit) info += ` · ${cw("download_cut")} (${num(limit, 0, getLocale())})`;
      } else if (limit > 0) {
        info += ` · ${cw("download_at_most")} ${num(limit, 0, getLocale())} ${cw("rows")}`;
      }
      setText(this.meta, info);
    } catch (e) {
      if (ac.signal.aborted) setText(this.meta, cw("canceled"));
      else {
        setText(this.meta, "");
        this.showError(e);
      }
    } finally {
      btn.classList.remove("busy");
      this.end(ac);
    }
  }

  // ------------------------------------------------------------ history

  private history(): HistoryItem[] {
    try {
      const v = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
      return Array.isArray(v) ? v.filter((x) => typeof x?.sql === "string") : [];
    } catch {
      return [];
    }
  }

  private remember(sql: string) {
    const s = sql.trim();
    if (!s) return;
    const items = [{ sql: s, at: Date.now() }, ...this.history().filter((x) => x.sql !== s)].slice(0, HISTORY_MAX);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(items));
    this.renderHistory();
  }

  private renderHistory() {
    const items = this.history();
    replace(
      this.historyEl,
      items.length
        ? items.map((it) =>
            h(
              "li",
              {
                tabindex: 0,
                role: "button",
                title: it.sql,
                onclick: () => this.restore(it.sql),
                onkeydown: (ev: Event) => {
                  const k = (ev as KeyboardEvent).key;
                  if (k === "Enter" || k === " ") {
                    ev.preventDefault();
                    this.restore(it.sql);
                  }
                },
              },
              h("code", null, it.sql.length > 160 ? it.sql.slice(0, 160) + "…" : it.sql),
              h("time", { datetime: new Date(it.at).toISOString() }, new Date(it.at).toLocaleString(getLocale() === "vi" ? "vi-VN" : "en-GB", { timeZone: "Asia/Ho_Chi_Minh" })),
            ),
          )
        : h("p.muted", null, cw("no_history")),
    );
  }

  private restore(sql: string) {
    this.sql.value = sql;
    localStorage.setItem("ioc.console.draft", sql);
    this.sql.focus();
  }
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function parts(e: unknown): { code: string; message: string } {
  if (e instanceof ApiError || e instanceof SQLError) return { code: e.code, message: e.message };
  const x = e as { message?: string } | undefined;
  return { code: "network", message: x?.message ?? String(e) };
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
