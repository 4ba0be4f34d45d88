// The tablet's own words (the shared ones are in lib/i18n.ts).
import { dictionary } from "../lib/i18n";

const words = {
  title: { vi: "Bảng điều hành của lãnh đạo", en: "Leader's tablet" },
  signin_help: {
    vi: "Dán mã truy cập (token) do quản trị viên cấp. Mã được lưu trên thiết bị này cho đến khi đăng xuất.",
    en: "Paste the access token your administrator gave you. It stays on this device until you sign out.",
  },
  city: { vi: "Thành phố", en: "City" },
  home: { vi: "Về đơn vị của tôi", en: "Back to my unit" },
  loading: { vi: "Đang tải…", en: "Loading…" },
  retrying: { vi: "thử lại sau", en: "retrying in" },
  seconds: { vi: "giây", en: "s" },
  not_found: { vi: "Không có đơn vị này", en: "No such unit" },
  default_layout: {
    vi: "Bố cục mặc định (máy chủ chưa có định nghĩa bảng điều hành)",
    en: "Default layout (the server has no dashboard definition yet)",
  },
  ranking_of: { vi: "Xếp hạng đơn vị trực thuộc", en: "Ranking of the units below" },
  no_children: { vi: "Không có đơn vị trực thuộc", en: "No units below this one" },
  by_officer: { vi: "Hồ sơ trễ hạn theo cán bộ", en: "Overdue dossiers by officer" },
  all_officers: { vi: "Tất cả cán bộ", en: "All officers" },
  no_officer: { vi: "(chưa giao cán bộ)", en: "(no officer)" },
  filtered_by: { vi: "Lọc theo cán bộ", en: "Filtered by officer" },
  clear_filter: { vi: "Bỏ lọc", en: "Clear filter" },
  first_rows: { vi: "trong các dòng đầu", en: "among the first rows" },
  of_total: { vi: "trên tổng số", en: "of" },
  show_all: { vi: "Xem tất cả", en: "Show all" },
  show_fewer: { vi: "Thu gọn", en: "Show fewer" },
  none: { vi: "Không có", en: "None" },
  missing: { vi: "chỉ số chưa có số liệu", en: "indicators without data" },
  note: { vi: "Ghi chú (không bắt buộc)", en: "Note (optional)" },
  raised: { vi: "Mới", en: "Raised" },
  acked_by: { vi: "Đã xác nhận bởi", en: "Acknowledged by" },
  sending: { vi: "Đang gửi…", en: "Sending…" },
  dossier: { vi: "Hồ sơ", en: "Dossier" },
  ticket: { vi: "Phản ánh", en: "Ticket" },
  late: { vi: "trễ", en: "late" },
  left: { vi: "còn", en: "left" },
  days: { vi: "ngày", en: "days" },
  hours: { vi: "giờ", en: "h" },
  count: { vi: "Số hồ sơ", en: "Dossiers" },
  prev_period: { vi: "Kỳ trước", en: "Previous period" },
  not_shown: { vi: "Bảng này chưa hiển thị trên máy tính bảng", en: "This panel is not shown on the tablet" },
  language: { vi: "English", en: "Tiếng Việt" },
  severity_critical: { vi: "Nghiêm trọng", en: "Critical" },
  severity_warning: { vi: "Cảnh báo", en: "Warning" },
  severity_info: { vi: "Thông tin", en: "Info" },
} as const;

export type TWord = keyof typeof words;

export const w: (k: TWord) => string = dictionary(words);
