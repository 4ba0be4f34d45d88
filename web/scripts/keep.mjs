// The Go package embeds web/dist; a clean clone has only this marker there,
// so the binary builds before the UI does (and then says the UI is not built).
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/.gitkeep", import.meta.url), "");
