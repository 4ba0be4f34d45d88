// One page, three apps: the wall (/wall/{dashboard}), the leader's tablet
// (/tablet) and the analysts' SQL console (/console).
import "./styles/base.css";
import { h, replace } from "./lib/dom";
import { setLocale, getLocale } from "./lib/i18n";

const root = document.getElementById("app")!;
setLocale(getLocale());

async function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const wall = path.match(/^\/wall\/([A-Za-z0-9_.-]+)$/);
  if (wall) {
    const { mountWall } = await import("./wall/wall");
    return mountWall(root, decodeURIComponent(wall[1]));
  }
  if (path === "/tablet" || path.startsWith("/tablet/")) {
    const { mountTablet } = await import("./tablet/tablet");
    return mountTablet(root);
  }
  if (path === "/console") {
    const { mountConsole } = await import("./console/console");
    return mountConsole(root);
  }
  document.body.className = "home";
  replace(
    root,
    h("main.home", null,
      h("h1", null, "ioc — Trung tâm điều hành thông minh"),
      h("ul", null,
        h("li", null, h("a", { href: "/wall/city" }, "Màn hình điều hành thành phố"), " — /wall/{dashboard}#token=…"),
        h("li", null, h("a", { href: "/tablet" }, "Máy tính bảng lãnh đạo"), " — /tablet"),
        h("li", null, h("a", { href: "/console" }, "SQL console"), " — /console"),
      ),
    ),
  );
}

route().catch((e) => replace(root, h("pre.fatal", null, String(e?.stack ?? e))));
