// REST calls on a flaky network: retried with a capped backoff while the
// failure is the network's or the server's (no answer, 5xx, 429), given up at
// once on a refusal (4xx: forbidden, not found, bad request), which retrying
// would not change. Each failed attempt is reported so the page can say what
// is happening instead of staying blank.
import { ApiError } from "../lib/api";

export function retryable(e: unknown): boolean {
  if (e instanceof ApiError) return e.status >= 500 || e.status === 429 || e.status === 408;
  return true; // TypeError "Failed to fetch", aborted, …
}

export interface RetryOpts {
  /** Attempts at most (default: until stopped). */
  tries?: number;
  /** Called after each failed attempt that will be retried, with the wait in ms. */
  onRetry?(e: unknown, waitMs: number, attempt: number): void;
  /** Returns true when the caller no longer wants the result (view left). */
  stopped?(): boolean;
}

export async function withRetry<T>(f: () => Promise<T>, o: RetryOpts = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      if (!retryable(e) || (o.tries !== undefined && attempt >= o.tries) || o.stopped?.()) throw e;
      const wait = Math.min(30000, 1000 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
      o.onRetry?.(e, wait, attempt);
      await new Promise((r) => setTimeout(r, wait));
      if (o.stopped?.()) throw e;
    }
  }
}

/** The code and message of any error, for `.error[data-code]`. */
export function errorParts(e: unknown): { code: string; message: string } {
  if (e instanceof ApiError) return { code: e.code, message: e.message };
  const any = e as { code?: string; message?: string } | undefined;
  return { code: any?.code ?? "error", message: any?.message ?? String(e) };
}
