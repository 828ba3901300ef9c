// Trace search over the Tempo API (`GET /api/search?q=<TraceQL>`): the form's fields
// become one TraceQL spanset filter, results are Tempo's search JSON.
import { getJSON } from "../../api";
import { quote } from "../../components/links";

/** The search form's fields, as they appear in the URL. */
export interface SearchFields {
  service: string;
  operation: string;
  /** logfmt: `http.status_code=500 region="eu west"`. */
  tags: string;
  /** Go durations of the whole trace: `100ms`, `1.5s`. */
  min: string;
  max: string;
  /** `error` to keep only traces with a failed matching span. */
  status: string;
  limit: string;
}

export const FIELD_NAMES: (keyof SearchFields)[] = ["service", "operation", "tags", "min", "max", "status", "limit"];

export function fieldsOf(params: URLSearchParams): SearchFields {
  const get = (k: string) => params.get(k) ?? "";
  return {
    service: get("service"),
    operation: get("operation"),
    tags: get("tags"),
    min: get("min"),
    max: get("max"),
    status: get("status"),
    limit: get("limit"),
  };
}

const DURATION = /^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)$/;

/** Splits logfmt `k=v k2="v 2"` into pairs; throws on a token without `=`. */
export function parseTags(text: string): [string, string][] {
  const pairs: [string, string][] = [];
  const re = /\s*([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/y;
  let at = 0;
  const source = text.trim();
  while (at < source.length) {
    re.lastIndex = at;
    const m = re.exec(source);
    if (!m) throw new Error(`tags: expected key=value at "${source.slice(at, at + 20)}"`);
    pairs.push([m[1], m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]]);
    at = re.lastIndex;
    while (source[at] === " ") at++;
  }
  return pairs;
}

/** The TraceQL of the form's fields; throws with a message naming a bad field. */
export function traceQL(f: SearchFields): string {
  const conditions: string[] = [];
  if (f.service) conditions.push(`resource.service.name = ${quote(f.service)}`);
  if (f.operation) conditions.push(`name = ${quote(f.operation)}`);
  for (const [key, value] of parseTags(f.tags)) {
    conditions.push(`.${quote(key)} = ${quote(value)}`);
  }
  for (const [name, op] of [["min", ">="], ["max", "<="]] as const) {
    const value = f[name].trim();
    if (!value) continue;
    if (!DURATION.test(value)) throw new Error(`${name} duration: "${value}" is not like 100ms or 1.5s`);
    conditions.push(`traceDuration ${op} ${value}`);
  }
  if (f.status === "error") conditions.push("status = error");
  return conditions.length ? `{ ${conditions.join(" && ")} }` : "{ }";
}

export interface TraceHit {
  traceID: string;
  rootServiceName: string;
  rootTraceName?: string;
  startTimeUnixNano: string;
  durationMs: number;
  serviceStats?: Record<string, { spanCount: number; errorCount?: number }>;
}

/** One search result, ready for the table and the scatter plot. */
export interface TraceRow {
  id: string;
  root: string;
  name: string;
  startMs: number;
  durationMs: number;
  spans: number;
  errors: number;
  services: string[];
}

/** Pads Tempo's trimmed ids back to 32 hex digits. */
export function fullTraceId(id: string): string {
  return id.padStart(32, "0");
}

export async function searchTraces(
  query: string,
  limit: number,
  startMs: number,
  endMs: number,
  signal: AbortSignal,
): Promise<TraceRow[]> {
  const body = await getJSON<{ traces?: TraceHit[] }>(
    "/api/search",
    { q: query, limit, spss: 1, start: Math.floor(startMs / 1000), end: Math.ceil(endMs / 1000) },
    signal,
  );
  return (body.traces ?? []).map((t) => {
    const stats = Object.entries(t.serviceStats ?? {});
    return {
      id: fullTraceId(t.traceID),
      root: t.rootServiceName,
      name: t.rootTraceName ?? "",
      startMs: Number(BigInt(t.startTimeUnixNano) / 1_000_000n),
      durationMs: t.durationMs,
      spans: stats.reduce((n, [, s]) => n + s.spanCount, 0),
      errors: stats.reduce((n, [, s]) => n + (s.errorCount ?? 0), 0),
      services: stats.map(([name]) => name),
    };
  });
}

/** Service names for the form (Zipkin API: `/api/v2/services`). */
export function loadServices(startMs: number, endMs: number, signal: AbortSignal): Promise<string[]> {
  return getJSON<string[]>("/api/v2/services", { endTs: Math.round(endMs), lookback: Math.round(endMs - startMs) }, signal);
}

/** Span names of a service (Zipkin API: `/api/v2/spans`). */
export function loadOperations(service: string, startMs: number, endMs: number, signal: AbortSignal): Promise<string[]> {
  return getJSON<string[]>(
    "/api/v2/spans",
    { serviceName: service, endTs: Math.round(endMs), lookback: Math.round(endMs - startMs) },
    signal,
  );
}
