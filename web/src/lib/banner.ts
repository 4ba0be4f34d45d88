// The connection banner every live page shows: nothing while live; at once
// when the connection drops, with how long ago and why, so no one reads a
// frozen number as current.
import { h, setText } from "./dom";
import { ago } from "./format";
import { getLocale, t } from "./i18n";
import type { Live, Status } from "./live";

export function banner(live: Live): HTMLElement {
  const text = h("span.banner-text");
  // The age ticks every second while offline: kept out of what a screen
  // reader announces, which is the loss and its reason, once.
  const age = h("span.banner-age", { "aria-hidden": "true" });
  const rest = h("span.banner-text");
  const el = h("div.banner#status", { "data-status": live.status, role: "status", "aria-live": "assertive" }, text, age, rest);
  const render = (s: Status) => {
    el.dataset.status = s;
    document.body.dataset.connection = s;
    setText(age, "");
    setText(rest, "");
    switch (s) {
      case "live":
        setText(text, t("live"));
        break;
      case "connecting":
        setText(text, t("connecting"));
        break;
      case "offline":
        setText(text, `${t("offline")} (`);
        setText(age, ago(live.since, Date.now(), getLocale()));
        setText(rest, `; ${live.reason}; ${t("reconnecting_in")}…)`);
        break;
      case "unauthorized":
        setText(text, `${t("unauthorized")}: ${live.reason}`);
        break;
    }
  };
  live.onStatus(render);
  window.setInterval(() => live.status === "offline" && render(live.status), 1000);
  return el;
}
