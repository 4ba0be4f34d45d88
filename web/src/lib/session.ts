// Where a page's token comes from: the URL fragment (#token=…, walls booted
// by a control-room machine: fragments never reach server logs) or the
// sign-in form, kept in localStorage per page kind.

export function tokenFromFragment(): string | undefined {
  const p = new URLSearchParams(location.hash.slice(1));
  return p.get("token") ?? undefined;
}

export function storedToken(kind: string): string | undefined {
  return localStorage.getItem("ioc.token." + kind) ?? undefined;
}

export function storeToken(kind: string, token: string | undefined) {
  if (token) localStorage.setItem("ioc.token." + kind, token);
  else localStorage.removeItem("ioc.token." + kind);
}

/** The claims of a JWT, unverified (the server verifies; the page only reads role and unit). */
export function claims(token: string): { role?: string; unit?: string; dashboard?: string; exp?: number; sub?: string } {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}
