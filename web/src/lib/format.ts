// Numbers and times as a Vietnamese reader expects them: 1.234.567 and
// 97,6 %, times in Asia/Ho_Chi_Minh whatever the machine's zone. The English
// toggle switches labels only; numbers keep one convention per locale.

export const ZONE = "Asia/Ho_Chi_Minh";

export type Locale = "vi" | "en";

const intl = (loc: Locale) => (loc === "vi" ? "vi-VN" : "en-GB");

const nf = new Map<string, Intl.NumberFormat>();
function numberFormat(loc: Locale, digits: number): Intl.NumberFormat {
  const k = loc + digits;
  let f = nf.get(k);
  if (!f) {
    f = new Intl.NumberFormat(intl(loc), { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: true });
    nf.set(k, f);
  }
  return f;
}

/** Integer or fixed decimals with the locale's grouping: 1.234.567 / 12,5. */
export function num(v: number | null | undefined, digits = 0, loc: Locale = "vi"): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  // Intl groups 4-digit numbers in vi-VN only from 5 digits on some engines;
  // force the grouping the wall shows everywhere.
  const s = numberFormat(loc, digits).format(v);
  return loc === "vi" ? groupVi(s) : s;
}

function groupVi(s: string): string {
  const neg = s.startsWith("-") || s.startsWith("−");
  const body = neg ? s.slice(1) : s;
  const [int, frac] = body.split(",");
  const plain = int.replace(/\./g, "");
  const grouped = plain.replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  return (neg ? "-" : "") + grouped + (frac !== undefined ? "," + frac : "");
}

/** A share (0.976) as a percentage: "97,6 %" (vi) or "97.6 %" (en). */
export function pct(share: number | null | undefined, digits = 1, loc: Locale = "vi"): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return "— %";
  return num(share * 100, digits, loc) + " %";
}

/** A KPI value by the catalog's format (count, percent, ratio, hours, days, …). */
export function kpiValue(v: number | null | undefined, format: string | undefined, loc: Locale = "vi"): string {
  switch (format) {
    case "percent":
      return pct(v, 1, loc);
    case "count":
    case "integer":
      return num(v, 0, loc);
    default:
      if (v === null || v === undefined) return "—";
      return num(v, Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : 1, loc);
  }
}

const tf = new Map<string, Intl.DateTimeFormat>();
function timeFormat(loc: Locale, opts: Intl.DateTimeFormatOptions, key: string): Intl.DateTimeFormat {
  const k = loc + key;
  let f = tf.get(k);
  if (!f) {
    f = new Intl.DateTimeFormat(intl(loc), { timeZone: ZONE, hour12: false, ...opts });
    tf.set(k, f);
  }
  return f;
}

function toDate(t: string | number | Date): Date {
  return t instanceof Date ? t : new Date(t);
}

/** 14:05:09 in Ho Chi Minh City. */
export function clock(t: string | number | Date, loc: Locale = "vi"): string {
  return timeFormat(loc, { hour: "2-digit", minute: "2-digit", second: "2-digit" }, "clock").format(toDate(t));
}

/** 23/11/2026 14:05 in Ho Chi Minh City. */
export function dateTime(t: string | number | Date, loc: Locale = "vi"): string {
  return timeFormat(loc, { day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit" }, "dt").format(toDate(t));
}

/** 23/11 in Ho Chi Minh City (axis labels). */
export function dayMonth(t: string | number | Date, loc: Locale = "vi"): string {
  return timeFormat(loc, { day: "2-digit", month: "2-digit" }, "dm").format(toDate(t));
}

/** How long ago, short: "12 giây", "5 phút", "3 giờ" (vi) / "12 s", "5 min", "3 h". */
export function ago(t: string | number | Date, now = Date.now(), loc: Locale = "vi"): string {
  const s = Math.max(0, Math.round((now - toDate(t).getTime()) / 1000));
  const u = loc === "vi" ? ["giây", "phút", "giờ", "ngày"] : ["s", "min", "h", "d"];
  if (s < 60) return `${s} ${u[0]}`;
  if (s < 3600) return `${Math.floor(s / 60)} ${u[1]}`;
  if (s < 86400) return `${Math.floor(s / 3600)} ${u[2]}`;
  return `${Math.floor(s / 86400)} ${u[3]}`;
}
