// The console's own words (the shared ones are in lib/i18n.ts).
import { dictionary } from "../lib/i18n";

const words = {
  title: { vi: "SQL console — phân tích dữ liệu", en: "SQL console" },
  signin_help: {
    vi: "Dán mã truy cập (token) của chuyên viên phân tích. Mã được lưu trên máy này cho đến khi đăng xuất.",
    en: "Paste your analyst access token. It stays on this computer until you sign out.",
  },
  language: { vi: "English", en: "Tiếng Việt" },
  theme: { vi: "Sáng / tối", en: "Light / dark" },
  schema: { vi: "Các view dữ liệu", en: "Views" },
  history: { vi: "Lịch sử truy vấn", en: "Query history" },
  no_history: { vi: "Chưa có truy vấn nào", en: "No queries yet" },
  loading: { vi: "Đang tải…", en: "Loading…" },
  insert: { vi: "Chèn vào câu lệnh", en: "Insert into the statement" },
  scoped: { vi: "Chỉ các dòng thuộc đơn vị của bạn", en: "Only the rows of your unit" },
  kpi_sql: { vi: "Mở SQL của một KPI", en: "Open the SQL of a KPI" },
  choose_kpi: { vi: "— chọn KPI —", en: "— choose a KPI —" },
  window: { vi: "Kỳ", en: "Window" },
  max_rows: { vi: "Số dòng tối đa", en: "Max rows" },
  timeout_s: { vi: "Thời gian chờ (giây)", en: "Timeout (s)" },
  cancel: { vi: "Dừng", en: "Cancel" },
  download_csv: { vi: "Tải CSV", en: "Download CSV" },
  download_arrow: { vi: "Tải Arrow", en: "Download Arrow" },
  download_rows: { vi: "Số dòng tải xuống tối đa", en: "Rows per download at most" },
  download_cut: {
    vi: "có thể đã bị cắt ở giới hạn tải xuống — tăng giới hạn rồi tải lại",
    en: "may be cut at the download limit — raise it and download again",
  },
  download_at_most: { vi: "tối đa", en: "at most" },
  editor_hint: {
    vi: "SELECT … — Ctrl/⌘-Enter để chạy, Tab chèn khoảng trắng, Esc rồi Tab để rời ô soạn thảo",
    en: "SELECT … — Ctrl/⌘-Enter runs, Tab inserts spaces, Esc then Tab leaves the editor",
  },
  running: { vi: "Đang chạy…", en: "Running…" },
  downloading: { vi: "Đang tải xuống…", en: "Downloading…" },
  canceled: { vi: "Đã dừng", en: "Canceled" },
  rows: { vi: "dòng", en: "rows" },
  truncated: { vi: "đã cắt bớt (vượt số dòng tối đa)", en: "truncated (over max rows)" },
  drawn: { vi: "bảng chỉ hiển thị", en: "table shows the first" },
  partial: { vi: "kết quả dừng giữa chừng", en: "the result stopped part way" },
  at_offset: { vi: "Đến vị trí", en: "Go to byte" },
  busy: { vi: "đang chạy quá nhiều truy vấn, thử lại sau giây lát", en: "too many statements running, try again in a moment" },
} as const;

export type CWord = keyof typeof words;

export const cw: (k: CWord) => string = dictionary(words);
