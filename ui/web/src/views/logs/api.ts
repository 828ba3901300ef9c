// Log reads for the view: native search pages and histograms (`/api/v1/logs/*`),
// LogQL through the Loki API, patterns, and the Loki live-tail websocket. Both query
// kinds come back as the same `LogRow`.
import { getJSON, nanos } from "../../api";
import { type Level, levelOf, LEVELS } from "./query";

/** A log line as the list shows it. */
export interface LogRow {
  /** Stable key for the list. */
  key: string;
  tsNs: bigint;
  /** Milliseconds, for formatting. */
  ms: number;
  service: string;
  level?: Level;
  severity?: string;
  body: string;
  instance?: string;
  traceId?: string;
  spanId?: string;
  attributes: Record<string, string>;
  resource: Record<string, string>;
  /** LogQL results: the stream labels (attributes hold structured metadata). */
  labels?: Record<string, string>;
}

interface NativeLine {
  ts_ns: number | string;
  service: string;
  instance?: string;
  severity?: string;
  severity_number?: number;
  body: string;
  trace_id?: string;
  span_id?: string;
  attributes?: Record<string, string>;
  resource?: Record<string, string>;
}

interface Envelope<T> {
  status: string;
  data: T;
}

/** One page of results and how to get the next. */
export interface LogPage {
  rows: LogRow[];
  /** Native search: the server's cursor. LogQL: the oldest timestamp (ns) seen. */
  next?: string;
}

/** Parses the integer nanoseconds of a JSON number or string without losing precision. */
function toNs(value: number | string): bigint {
  if (typeof value === "string") return BigInt(value);
  return BigInt(Math.round(value));
}

function rowKey(ts: bigint, service: string, body: string, index: number): string {
  let hash = 0;
  for (let i = 0; i < body.length; i++) hash = (Math.imul(hash, 31) + body.charCodeAt(i)) | 0;
  return `${ts}:${service}:${hash}:${index}`;
}

export function nativeRow(line: NativeLine, index: number): LogRow {
  const tsNs = toNs(line.ts_ns);
  return {
    key: rowKey(tsNs, line.service, line.body, index),
    tsNs,
    ms: Number(tsNs / 1_000_000n),
    service: line.service,
    level: levelOf(line.severity_number, line.severity),
    severity: line.severity,
    body: line.body,
    instance: line.instance,
    traceId: line.trace_id,
    spanId: line.span_id,
    attributes: line.attributes ?? {},
    resource: line.resource ?? {},
  };
}

/** Native search parameters (the API's names). */
export interface NativeSearch {
  q: string;
  start: number;
  end: number;
  service?: string;
  severity?: string;
  trace_id?: string;
}

export async function searchNative(
  search: NativeSearch,
  limit: number,
  cursor: string | undefined,
  signal: AbortSignal,
): Promise<LogPage> {
  const body = await getJSON<Envelope<{ lines: NativeLine[]; next_cursor: string | null }>>(
    "/api/v1/logs/search",
    {
      q: search.q,
      start: nanos(search.start),
      end: nanos(search.end),
      limit,
      cursor,
      service: search.service || undefined,
      severity: search.severity || undefined,
      trace_id: search.trace_id || undefined,
    },
    signal,
  );
  return {
    rows: body.data.lines.map(nativeRow),
    next: body.data.next_cursor ?? undefined,
  };
}

interface Stream {
  stream: Record<string, string>;
  values: [string, string][];
}

/** Stream labels Loki derives from the record itself, not from its resource. */
const DERIVED = new Set(["service_name", "detected_level", "level", "trace_id", "span_id"]);

/** Turns Loki streams into rows, newest first. */
export function streamRows(streams: Stream[]): LogRow[] {
  const rows: LogRow[] = [];
  for (const { stream, values } of streams) {
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(stream)) if (!DERIVED.has(k)) attributes[k] = v;
    for (const [ts, line] of values) {
      const tsNs = BigInt(ts);
      const level = (stream.detected_level ?? stream.level)?.toLowerCase();
      rows.push({
        key: "",
        tsNs,
        ms: Number(tsNs / 1_000_000n),
        service: stream.service_name ?? "",
        level: (LEVELS as readonly string[]).includes(level ?? "") ? (level as Level) : levelOf(0, level),
        severity: stream.level,
        body: line,
        traceId: stream.trace_id,
        spanId: stream.span_id,
        attributes,
        resource: {},
        labels: stream,
      });
    }
  }
  rows.sort((a, b) => (a.tsNs === b.tsNs ? 0 : a.tsNs > b.tsNs ? -1 : 1));
  rows.forEach((row, i) => (row.key = rowKey(row.tsNs, row.service, row.body, i)));
  return rows;
}

/** A LogQL log query, newest first; `before` (ns, inclusive) pages back. */
export async function searchLogQL(
  query: string,
  start: number,
  end: number,
  limit: number,
  before: string | undefined,
  signal: AbortSignal,
): Promise<LogPage> {
  const endNs = before ? (BigInt(before) + 1n).toString() : nanos(end);
  const body = await getJSON<Envelope<{ resultType: string; result: Stream[] }>>(
    "/loki/api/v1/query_range",
    { query, start: nanos(start), end: endNs, limit, direction: "backward" },
    signal,
  );
  if (body.data.resultType !== "streams") {
    throw new Error("This is a LogQL metric query; the Logs view shows log queries (put it in a log selector, or use Grafana for metric LogQL).");
  }
  const rows = streamRows(body.data.result);
  const oldest = rows.length ? rows[rows.length - 1].tsNs : undefined;
  return { rows, next: rows.length >= limit && oldest !== undefined ? oldest.toString() : undefined };
}

/** Hits per bucket, split by level where the query allows it. */
export interface HistogramData {
  /** Bucket starts, seconds. */
  times: number[];
  /** Counts per level (plus `other`), same length as `times`. */
  series: { name: string; counts: number[] }[];
  total: number;
  /** Set when there were too many lines to split by level. */
  unsplit?: boolean;
}

/** Most hits for which the native histogram is split by level. */
export const SPLIT_LIMIT = 50_000;

interface NativeHistogram {
  step_ns: number;
  buckets: [number | string, number][];
  total: number;
}

async function nativeHistogram(search: NativeSearch, stepS: number, severity: string | undefined, signal: AbortSignal) {
  const body = await getJSON<Envelope<NativeHistogram>>(
    "/api/v1/logs/histogram",
    {
      q: search.q,
      start: nanos(search.start),
      end: nanos(search.end),
      step: `${stepS}s`,
      service: search.service || undefined,
      severity: severity || undefined,
      trace_id: search.trace_id || undefined,
    },
    signal,
  );
  return body.data;
}

/**
 * The native histogram: the total first (one cheap call), then error and warn counts
 * (each reads the lines) to split the bars by level; `onTotal` shows the total early.
 */
export async function histogramNative(
  search: NativeSearch,
  stepS: number,
  signal: AbortSignal,
  onTotal: (data: HistogramData) => void,
): Promise<HistogramData> {
  const total = await nativeHistogram(search, stepS, search.severity, signal);
  const times = total.buckets.map(([t]) => Number(toNs(t) / 1_000_000_000n));
  const counts = total.buckets.map(([, c]) => c);
  const fixedLevel = levelOf(0, search.severity);
  const only: HistogramData = {
    times,
    series: [{ name: fixedLevel ?? "all", counts }],
    total: total.total,
  };
  // Splitting by level reads every line (the total comes from the index): only for
  // result sets small enough to read quickly, one request at a time.
  // A level in the query itself leaves nothing to split.
  if (fixedLevel || total.total === 0 || /(^|[\s(])-?(level|severity):/.test(search.q)) return only;
  if (total.total > SPLIT_LIMIT) return { ...only, unsplit: true };
  onTotal(only);
  const errors = await nativeHistogram(search, stepS, "error", signal);
  const warnings = await nativeHistogram(search, stepS, "warn", signal);
  const errorCounts = errors.buckets.map(([, c]) => c);
  const warnCounts = warnings.buckets.map(([, c]) => c);
  const other = counts.map((c, i) => Math.max(0, c - (errorCounts[i] ?? 0) - (warnCounts[i] ?? 0)));
  return {
    times,
    series: [
      { name: "error", counts: errorCounts },
      { name: "warn", counts: warnCounts },
      { name: "other", counts: other },
    ],
    total: total.total,
  };
}

interface Matrix {
  resultType: string;
  result: { metric: Record<string, string>; values: [number, string][] }[];
}

/** The LogQL histogram: `count_over_time` of the query by level. */
export async function histogramLogQL(
  query: string,
  start: number,
  end: number,
  stepS: number,
  signal: AbortSignal,
): Promise<HistogramData> {
  const first = Math.floor(start / 1000 / stepS) * stepS;
  const last = Math.floor(end / 1000 / stepS) * stepS;
  const times: number[] = [];
  for (let t = first; t <= last; t += stepS) times.push(t);
  const body = await getJSON<Envelope<Matrix>>(
    "/loki/api/v1/query_range",
    {
      query: `sum by (detected_level) (count_over_time(${query} [${stepS}s]))`,
      start: String(first),
      end: String(last),
      step: `${stepS}s`,
    },
    signal,
  );
  const index = new Map(times.map((t, i) => [t, i]));
  let total = 0;
  const byLevel = new Map<string, number[]>();
  for (const { metric, values } of body.data.result) {
    const name = levelOf(0, metric.detected_level) ?? "other";
    const counts = byLevel.get(name) ?? new Array(times.length).fill(0);
    for (const [t, v] of values) {
      // count_over_time at t counts (t - step, t]: draw it in the bucket that starts at t - step.
      const i = index.get(Math.round(t) - stepS);
      if (i === undefined) continue;
      counts[i] += Number(v);
      total += Number(v);
    }
    byLevel.set(name, counts);
  }
  const order = [...LEVELS, "other"];
  const series = [...byLevel.entries()]
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([name, counts]) => ({ name, counts }));
  return { times, series, total };
}

/** A mined log template. */
export interface Pattern {
  service: string;
  template: string;
  total: number;
  buckets: [number, number][];
  first_seen_ns: number;
  last_seen_ns: number;
  sample: string;
}

/** A template whose rate changed against the baseline window. */
export interface PatternChange {
  service: string;
  template: string;
  kind: "new" | "increased" | "decreased" | "gone";
  baseline_count: number;
  incident_count: number;
  ratio: number | null;
  sample: string;
}

/** Patterns of the range, compared with the window of the same length before it. */
export async function patterns(
  service: string,
  start: number,
  end: number,
  signal: AbortSignal,
): Promise<{ patterns: Pattern[]; changes: PatternChange[] }> {
  const length = end - start;
  const body = await getJSON<Envelope<{ patterns: Pattern[]; changes?: PatternChange[] }>>(
    "/api/v1/logs/patterns",
    {
      service: service || undefined,
      start: nanos(start),
      end: nanos(end),
      baseline_start: nanos(start - length),
      baseline_end: nanos(start),
    },
    signal,
  );
  return { patterns: body.data.patterns, changes: body.data.changes ?? [] };
}

/** Opens the Loki tail websocket; `onRows` gets each batch, newest first. */
export function tail(
  query: string,
  onRows: (rows: LogRow[]) => void,
  onState: (state: "open" | "closed", message?: string) => void,
): () => void {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({
    query,
    limit: "100",
    start: nanos(Date.now() - 60_000),
  });
  const socket = new WebSocket(`${scheme}//${window.location.host}/loki/api/v1/tail?${params}`);
  let closedByUs = false;
  socket.onopen = () => onState("open");
  socket.onmessage = (event) => {
    try {
      const message = JSON.parse(String(event.data)) as { streams?: Stream[] };
      const rows = streamRows(message.streams ?? []);
      rows.forEach((row) => (row.key = `tail:${row.key}:${Math.random().toString(36).slice(2, 8)}`));
      if (rows.length) onRows(rows);
    } catch {
      // A frame that is not JSON is not ours to show.
    }
  };
  socket.onerror = () => undefined;
  socket.onclose = (event) => {
    if (!closedByUs) onState("closed", event.reason || "the tail connection closed");
  };
  return () => {
    closedByUs = true;
    socket.close();
  };
}
