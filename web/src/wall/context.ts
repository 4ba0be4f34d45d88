// What every wall panel gets: the API, the websocket, the dashboard and the
// reference data, and the page's bookkeeping (first values, data watermark).
import type { Api, Dashboard, KPIDef, Unit } from "../lib/api";
import type { Live } from "../lib/live";
import { h, setText } from "../lib/dom";
import { ago, clock } from "../lib/format";
import { getLocale, t } from "../lib/i18n";

export interface Ctx {
  api: Api;
  live: Live;
  dash: Dashboard;
  unit: string;
  defs: Map<string, KPIDef>;
  units: Map<string, Unit>;
  /** Registers something the page waits for before it is ready (a
   * channel's first value or error); call the returned function once it came. */
  expect(): () => void;
  /** Reports a value's data watermark. */
  seen(asOf: string | undefined): void;
  /** Whether the page's data is stale (no watermark newer than stale_after). */
  stale(): boolean;
}

export interface PanelView {
  el: HTMLElement;
  /** Once a second: ages, liveness. */
  tick(now: number): void;
}

/** The frame of a panel: title, body, footer with its `as of`. */
export function frame(kind: string, title: string, size: number | undefined, extraClass = "") {
  const body = h("div.panel-body.live-content");
  const asOf = h("span.as-of");
  const note = h("span.panel-note");
  const el = h(`section.panel`, { "data-panel": kind, "data-live": "false", class: `size-${size ?? 1} ${extraClass}`.trim() },
    h("header.panel-title", null, title),
    body,
    h("footer.panel-foot", null, note, asOf),
  );
  let asOfISO = "";
  return {
    el,
    body,
    note,
    /** Sets the panel's as-of (ISO); shown as "Số liệu đến 14:05:09 (12 giây)". */
    asOf(iso: string | undefined) {
      asOfISO = iso ?? "";
      el.dataset.asOf = asOfISO;
      renderAsOf(Date.now());
    },
    /** Marks the panel live or not (greyed when not). */
    setLive(v: boolean) {
      const s = v ? "true" : "false";
      if (el.dataset.live !== s) el.dataset.live = s;
    },
    tickAsOf(now: number) {
      renderAsOf(now);
    },
  };
  function renderAsOf(now: number) {
    if (!asOfISO) return setText(asOf, "");
    setText(asOf, `${t("as_of")} ${clock(asOfISO, getLocale())} (${ago(asOfISO, now, getLocale())})`);
  }
}

/** An error shown in a panel, with the server's code and message, over
 * its content (hidden, not removed): the next value clears it. */
export function panelError(body: HTMLElement, code: string, message: string) {
  clearPanelError(body);
  body.classList.add("has-error");
  body.prepend(h("div.error.panel-error", { "data-code": code }, code === "forbidden" ? t("forbidden") + ": " : t("error") + ": ", message));
}

/** Removes the error panelError showed, if any. */
export function clearPanelError(body: HTMLElement) {
  if (!body.classList.contains("has-error")) return;
  body.classList.remove("has-error");
  body.querySelector(":scope > .panel-error")?.remove();
}
