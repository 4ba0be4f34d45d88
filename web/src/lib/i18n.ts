// Labels in Vietnamese (default) and English. KPI and dashboard titles come
// from the server in both languages; these are the UI's own words.
import type { Locale } from "./format";

const words = {
  live: { vi: "Trực tiếp", en: "Live" },
  connecting: { vi: "Đang kết nối…", en: "Connecting…" },
  offline: { vi: "Mất kết nối — số liệu đang hiển thị không còn cập nhật", en: "Connection lost — the figures shown are not updating" },
  unauthorized: { vi: "Mã truy cập không hợp lệ hoặc đã hết hạn", en: "The token is invalid or expired" },
  stale: { vi: "Số liệu cũ", en: "Stale data" },
  as_of: { vi: "Số liệu đến", en: "Data as of" },
  reconnecting_in: { vi: "đang kết nối lại", en: "reconnecting" },
  retrying_in: { vi: "Thử lại sau", en: "Retrying in" },
  vs_prev: { vi: "so với kỳ trước", en: "vs previous period" },
  target: { vi: "Mục tiêu", en: "Target" },
  no_value: { vi: "Chưa có số liệu", en: "No data yet" },
  none_late: { vi: "Không có — tất cả trong hạn", en: "None — everything within its deadline" },
  alerts: { vi: "Cảnh báo", en: "Alerts" },
  alerts_held: { vi: "Tạm dừng xét cảnh báo đến", en: "Alert rules on hold until" },
  no_alerts: { vi: "Không có cảnh báo", en: "No open alerts" },
  acknowledge: { vi: "Xác nhận", en: "Acknowledge" },
  acknowledged: { vi: "Đã xác nhận", en: "Acknowledged" },
  overdue_dossiers: { vi: "Hồ sơ trễ hạn", en: "Overdue dossiers" },
  due_soon_dossiers: { vi: "Hồ sơ sắp đến hạn", en: "Dossiers due soon" },
  overdue_tickets: { vi: "Phản ánh quá hạn", en: "Overdue tickets" },
  officer: { vi: "Cán bộ", en: "Officer" },
  unit: { vi: "Đơn vị", en: "Unit" },
  procedure: { vi: "Thủ tục", en: "Procedure" },
  category: { vi: "Lĩnh vực", en: "Category" },
  days_late: { vi: "Số ngày trễ", en: "Working days late" },
  hours_left: { vi: "Giờ làm việc còn lại", en: "Working hours left" },
  total: { vi: "Tổng", en: "Total" },
  sign_in: { vi: "Đăng nhập", en: "Sign in" },
  sign_out: { vi: "Đăng xuất", en: "Sign out" },
  token: { vi: "Mã truy cập (token)", en: "Access token" },
  run: { vi: "Chạy", en: "Run" },
  cameras: { vi: "Camera", en: "Cameras" },
  tickets: { vi: "Phản ánh đang mở", en: "Open tickets" },
  wards: { vi: "Phường, xã", en: "Wards" },
  rank: { vi: "Xếp hạng", en: "Ranking" },
  map: { vi: "Bản đồ", en: "Map" },
  error: { vi: "Lỗi", en: "Error" },
  forbidden: { vi: "Ngoài phạm vi được xem", en: "Outside what this token may see" },
} as const;

export type Word = keyof typeof words;

let locale: Locale = (localStorage.getItem("ioc.locale") as Locale) || "vi";

export function getLocale(): Locale {
  return locale;
}

export function setLocale(l: Locale) {
  locale = l;
  localStorage.setItem("ioc.locale", l);
  document.documentElement.lang = l;
}

/** A lookup of words in the current locale; each app adds its own. */
export function dictionary<K extends string>(ws: Record<K, { vi: string; en: string }>): (k: K) => string {
  return (k) => ws[k][locale];
}

/** The UI's word in the current locale. */
export const t = dictionary(words);

/** The line an alert panel shows while a hold suspends the rules: nothing
 * is raised or cleared until its end. */
export function heldLine(hold: { reason: string; until: string; families?: string[] } | undefined, fmt: (t: string) => string): string {
  if (!hold) return "";
  const fams = hold.families?.length ? ` (${hold.families.map((f) => (familyNames[f] ? familyNames[f][locale] : f)).join(", ")})` : "";
  return `${t("alerts_held")} ${fmt(hold.until)}${fams} — ${hold.reason}`;
}

const familyNames: Record<string, { vi: string; en: string }> = {
  dossier: { vi: "hồ sơ", en: "dossiers" },
  feedback: { vi: "phản ánh", en: "feedback" },
  camera: { vi: "camera", en: "cameras" },
  survey: { vi: "khảo sát", en: "surveys" },
  indicator: { vi: "chỉ số", en: "indicators" },
};

/** A server text {vi, en} in the current locale, falling back to the other. */
export function tr(x: { vi?: string; en?: string } | undefined): string {
  if (!x) return "";
  return (locale === "vi" ? x.vi || x.en : x.en || x.vi) ?? "";
}

/** Window names. */
export function windowName(w: string): string {
  const vi: Record<string, string> = { today: "Hôm nay", week: "Tuần này", month: "Tháng này", quarter: "Quý này", ytd: "Từ đầu năm", "24h": "24 giờ", "7d": "7 ngày", "30d": "30 ngày", now: "Hiện tại" };
  const en: Record<string, string> = { today: "Today", week: "This week", month: "This month", quarter: "This quarter", ytd: "Year to date", "24h": "24 h", "7d": "7 days", "30d": "30 days", now: "Now" };
  return (locale === "vi" ? vi : en)[w] ?? w;
}
