// One trace from the Tempo API (`GET /api/traces/<id>`, OTLP/JSON with hex ids) as a
// tree of spans in waterfall order, with depth and the critical path.
import { getJSON } from "../../api";

interface AnyValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  bytesValue?: string;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
}

interface KeyValue {
  key: string;
  value?: AnyValue;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValue[];
  events?: { timeUnixNano: string; name: string; attributes?: KeyValue[] }[];
  status?: { code?: number; message?: string };
}

interface ResourceSpans {
  resource?: { attributes?: KeyValue[] };
  scopeSpans?: { scope?: { name?: string }; spans?: OtlpSpan[] }[];
}

/** A span as the waterfall shows it; times in microseconds since the epoch. */
export interface SpanView {
  traceId: string;
  spanId: string;
  parentId?: string;
  name: string;
  kind: string;
  service: string;
  startUs: number;
  endUs: number;
  attributes: [string, string][];
  resource: [string, string][];
  events: { timeUs: number; name: string; attributes: [string, string][] }[];
  statusCode: number;
  statusMessage?: string;
  error: boolean;
  depth: number;
  children: SpanView[];
  critical: boolean;
}

export interface TraceView {
  traceId: string;
  /** Spans in waterfall order (depth first, children by start time). */
  spans: SpanView[];
  startUs: number;
  endUs: number;
  services: string[];
  errors: number;
}

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];

/** An OTLP AnyValue as display text. */
export function valueText(value?: AnyValue): string {
  if (!value) return "";
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return value.intValue;
  if (value.doubleValue !== undefined) return String(value.doubleValue);
  if (value.boolValue !== undefined) return String(value.boolValue);
  if (value.bytesValue !== undefined) return value.bytesValue;
  if (value.arrayValue) return `[${(value.arrayValue.values ?? []).map(valueText).join(", ")}]`;
  if (value.kvlistValue) {
    return `{${(value.kvlistValue.values ?? []).map((kv) => `${kv.key}: ${valueText(kv.value)}`).join(", ")}}`;
  }
  return "";
}

const pairs = (list?: KeyValue[]): [string, string][] =>
  (list ?? []).map((kv) => [kv.key, valueText(kv.value)] as [string, string]).sort((a, b) => a[0].localeCompare(b[0]));

const micros = (nanos: string) => Number(BigInt(nanos || "0") / 1000n);

/** Builds the waterfall of a trace's resource spans. */
export function buildTrace(traceId: string, groups: ResourceSpans[]): TraceView {
  const all: SpanView[] = [];
  for (const group of groups) {
    const resource = pairs(group.resource?.attributes);
    const service = resource.find(([k]) => k === "service.name")?.[1] ?? "unknown";
    for (const scope of group.scopeSpans ?? []) {
      for (const s of scope.spans ?? []) {
        const code = s.status?.code ?? 0;
        all.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentId: s.parentSpanId || undefined,
          name: s.name,
          kind: KINDS[s.kind ?? 0] ?? "unspecified",
          service,
          startUs: micros(s.startTimeUnixNano),
          endUs: Math.max(micros(s.endTimeUnixNano), micros(s.startTimeUnixNano)),
          attributes: pairs(s.attributes),
          resource,
          events: (s.events ?? []).map((e) => ({ timeUs: micros(e.timeUnixNano), name: e.name, attributes: pairs(e.attributes) })),
          statusCode: code,
          statusMessage: s.status?.message,
          error: code === 2,
          depth: 0,
          children: [],
          critical: false,
        });
      }
    }
  }
  const byId = new Map(all.map((s) => [s.spanId, s]));
  const roots: SpanView[] = [];
  for (const span of all) {
    const parent = span.parentId ? byId.get(span.parentId) : undefined;
    if (parent && parent !== span) parent.children.push(span);
    else roots.push(span);
  }
  const byStart = (a: SpanView, b: SpanView) => a.startUs - b.startUs || a.name.localeCompare(b.name);
  roots.sort(byStart);
  const ordered: SpanView[] = [];
  const seen = new Set<SpanView>();
  const visit = (span: SpanView, depth: number) => {
    if (seen.has(span)) return;
    seen.add(span);
    span.depth = depth;
    ordered.push(span);
    span.children.sort(byStart);
    span.children.forEach((c) => visit(c, depth + 1));
  };
  roots.forEach((r) => visit(r, 0));
  const main = roots.reduce<SpanView | undefined>((best, r) => (!best || r.endUs - r.startUs > best.endUs - best.startUs ? r : best), undefined);
  if (main) markCritical(main);
  const startUs = Math.min(...all.map((s) => s.startUs));
  const endUs = Math.max(...all.map((s) => s.endUs));
  return {
    traceId,
    spans: ordered,
    startUs: Number.isFinite(startUs) ? startUs : 0,
    endUs: Number.isFinite(endUs) ? endUs : 0,
    services: [...new Set(all.map((s) => s.service))].sort(),
    errors: all.filter((s) => s.error).length,
  };
}

/**
 * The critical path: the spans the trace was waiting on. From a span's end, walk back
 * through its children by end time: the last to finish was on the path, then the last
 * one to finish before that one started, and so on, recursively.
 */
export function markCritical(span: SpanView) {
  span.critical = true;
  let cursor = span.endUs;
  let first = true;
  const children = [...span.children].sort((a, b) => b.endUs - a.endUs);
  for (const child of children) {
    if (first || child.endUs <= cursor) {
      markCritical(child);
      cursor = Math.min(cursor, child.startUs);
      first = false;
    }
  }
}

export async function loadTrace(traceId: string, signal: AbortSignal): Promise<TraceView> {
  const body = await getJSON<{ resourceSpans?: ResourceSpans[] }>(`/api/traces/${encodeURIComponent(traceId)}`, {}, signal);
  return buildTrace(traceId, body.resourceSpans ?? []);
}
