// The previous period of a window, cut at the same elapsed time: today
// 00:00–10:30 compares with yesterday 00:00–10:30, this month's first 22
// days with last month's first 22 days. Ho Chi Minh City has no daylight
// saving (UTC+7 all year), so calendar arithmetic is done on UTC+7 clocks.

const OFFSET = 7 * 3600 * 1000;

/** [from, to) of the previous period, as RFC 3339, or undefined for windows without one. */
export function previousPeriod(window: string, fromISO: string, atISO: string): { from: string; to: string } | undefined {
  const from = Date.parse(fromISO);
  const at = Date.parse(atISO);
  if (!Number.isFinite(from) || !Number.isFinite(at) || at <= from) return undefined;
  const elapsed = at - from;
  const local = new Date(from + OFFSET); // wall-clock fields in UTC getters
  let prev: number;
  switch (window) {
    case "today":
      prev = from - 86400000;
      break;
    case "week":
      prev = from - 7 * 86400000;
      break;
    case "month":
      prev = Date.UTC(local.getUTCFullYear(), local.getUTCMonth() - 1, 1) - OFFSET;
      break;
    case "quarter":
      prev = Date.UTC(local.getUTCFullYear(), local.getUTCMonth() - 3, 1) - OFFSET;
      break;
    case "ytd":
      prev = Date.UTC(local.getUTCFullYear() - 1, 0, 1) - OFFSET;
      break;
    case "24h":
    case "7d":
    case "30d":
      prev = from - elapsed;
      break;
    default:
      return undefined;
  }
  const to = Math.min(prev + elapsed, from);
  return { from: iso(prev), to: iso(to) };
}

/** RFC 3339 in +07:00, to the second (what the API takes). */
function iso(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000 + OFFSET);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}+07:00`;
}
