// Prometheus API reads for the metrics view: range and instant queries, exemplars, and
// the metadata behind autocompletion (metric names, label names and values, help).
import { getJSON, seconds } from "../../api";

interface Envelope<T> {
  status: string;
  data: T;
  warnings?: string[];
  infos?: string[];
}

/** One series of a range query. */
export interface RangeSeries {
  metric: Record<string, string>;
  /** `[seconds, "value"]`. */
  values: [number, string][];
}

export interface RangeResult {
  series: RangeSeries[];
  warnings: string[];
}

export async function queryRange(
  expr: string,
  start: number,
  end: number,
  stepS: number,
  signal: AbortSignal,
): Promise<RangeResult> {
  const body = await getJSON<Envelope<{ resultType: string; result: RangeSeries[] }>>(
    "/api/v1/query_range",
    { query: expr, start: seconds(start), end: seconds(end), step: String(stepS) },
    signal,
  );
  return { series: body.data.result, warnings: [...(body.warnings ?? []), ...(body.infos ?? [])] };
}

/** An instant query's answer, whatever its type. */
export type InstantResult =
  | { resultType: "vector"; result: { metric: Record<string, string>; value: [number, string] }[] }
  | { resultType: "matrix"; result: RangeSeries[] }
  | { resultType: "scalar" | "string"; result: [number, string] };

export async function queryInstant(
  expr: string,
  time: number,
  signal: AbortSignal,
): Promise<{ data: InstantResult; warnings: string[] }> {
  const body = await getJSON<Envelope<InstantResult>>(
    "/api/v1/query",
    { query: expr, time: seconds(time) },
    signal,
  );
  return { data: body.data, warnings: [...(body.warnings ?? []), ...(body.infos ?? [])] };
}

/** An exemplar with the series it belongs to. */
export interface Exemplar {
  series: Record<string, string>;
  labels: Record<string, string>;
  value: number;
  /** Seconds. */
  time: number;
}

export async function exemplars(expr: string, start: number, end: number, signal: AbortSignal): Promise<Exemplar[]> {
  const body = await getJSON<
    Envelope<{ seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string>; value: string; timestamp: number }[] }[]>
  >("/api/v1/query_exemplars", { query: expr, start: seconds(start), end: seconds(end) }, signal);
  return body.data.flatMap((s) =>
    s.exemplars.map((e) => ({ series: s.seriesLabels, labels: e.labels, value: Number(e.value), time: e.timestamp })),
  );
}

/** The trace id an exemplar points at (OpenTelemetry and Prometheus spellings). */
export function exemplarTrace(e: Exemplar): { trace?: string; span?: string } {
  const l = e.labels;
  return { trace: l.trace_id ?? l.traceID ?? l.traceId, span: l.span_id ?? l.spanID ?? l.spanId };
}

export async function metricNames(signal: AbortSignal): Promise<string[]> {
  const body = await getJSON<Envelope<string[]>>("/api/v1/label/__name__/values", {}, signal);
  return body.data;
}

/** Label names, of one metric's series when `metric` is given. */
export async function labelNames(metric: string | undefined, start: number, end: number, signal: AbortSignal): Promise<string[]> {
  const body = await getJSON<Envelope<string[]>>(
    "/api/v1/labels",
    { "match[]": metric ? [metric] : undefined, start: seconds(start), end: seconds(end) },
    signal,
  );
  return body.data.filter((n) => n !== "__name__");
}

export async function labelValues(
  label: string,
  metric: string | undefined,
  start: number,
  end: number,
  signal: AbortSignal,
): Promise<string[]> {
  const body = await getJSON<Envelope<string[]>>(
    `/api/v1/label/${encodeURIComponent(label)}/values`,
    { "match[]": metric ? [metric] : undefined, start: seconds(start), end: seconds(end) },
    signal,
  );
  return body.data;
}

export interface MetricMeta {
  type: string;
  help: string;
  unit: string;
}

export async function metadata(signal: AbortSignal): Promise<Record<string, MetricMeta>> {
  const body = await getJSON<Envelope<Record<string, MetricMeta[]>>>("/api/v1/metadata", {}, signal);
  const out: Record<string, MetricMeta> = {};
  for (const [name, entries] of Object.entries(body.data)) if (entries[0]) out[name] = entries[0];
  return out;
}

/** `name{a="b", …}` for a label set. */
export function seriesName(metric: Record<string, string>): string {
  const name = metric.__name__ ?? "";
  const labels = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
  return labels ? `${name}{${labels}}` : name || "{}";
}

/** Parses Prometheus sample values (`"NaN"`, `"+Inf"` included). */
export function sampleValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}
