// Time ranges as Grafana writes them in URLs: `from`/`to` are `now`, `now-15m`, `now-7d`
// or epoch milliseconds. Views receive the resolved range in milliseconds.

/** A resolved time range, epoch milliseconds, `start < end`. */
export interface TimeRange {
  start: number;
  end: number;
  /** The raw `from` / `to` expressions, for links that should stay relative. */
  from: string;
  to: string;
}

const UNIT_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Parses `now`, `now-<n><unit>` or epoch milliseconds; `undefined` when invalid. */
export function parseTime(expr: string, now: number): number | undefined {
  const text = expr.trim();
  if (text === "now") return now;
  const relative = /^now-(\d+)([smhdw])$/.exec(text);
  if (relative) return now - Number(relative[1]) * UNIT_MS[relative[2]];
  if (/^\d{10,16}$/.test(text)) return Number(text);
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed;
}

/** Parses a duration like `15m`, `1h`, `7d` to milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([smhdw])$/.exec(text.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2]] : undefined;
}

/** Resolves the `from`/`to` URL parameters (default: the last hour). */
export function resolveRange(params: URLSearchParams, now = Date.now()): TimeRange {
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  let end = parseTime(to, now) ?? now;
  let start = parseTime(from, now) ?? end - UNIT_MS.h;
  if (start >= end) {
    start = end - UNIT_MS.h;
  }
  end = Math.max(end, start + 1);
  return { start, end, from, to };
}

/** Formats epoch milliseconds as local `YYYY-MM-DD HH:MM:SS`. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Formats a duration in milliseconds compactly: `840µs`, `12.3ms`, `2.41s`, `3m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, "0")}s`;
}
