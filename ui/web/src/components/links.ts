// Links between views: every piece of evidence opens in the view that shows it best.
// Query languages are written here once (LogQL for Logs, PromQL for Metrics, TraceQL for
// Traces) so the map, the suspects and the waterfall link the same way.
import { href, type ParamPatch } from "../app/router";

/** The time range a link carries: relative (`now-1h`) or epoch milliseconds. */
export interface LinkRange {
  from: string | number;
  to: string | number;
}

function withRange(patch: ParamPatch, range?: LinkRange): ParamPatch {
  return range ? { ...patch, from: String(range.from), to: String(range.to) } : patch;
}

/** A string literal for LogQL, PromQL and TraceQL (they share Go's escaping). */
export function quote(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** The trace detail view. */
export function traceHref(traceId: string, range?: LinkRange, spanId?: string): string {
  return href("traces", withRange({ trace: traceId, span: spanId }, range));
}

/** The trace search view with form fields. */
export function traceSearchHref(fields: ParamPatch, range?: LinkRange): string {
  return href("traces", withRange(fields, range));
}

/** The Logs view: a LogQL query, or the lines of a trace / span. */
export function logsHref(
  target: { query?: string; trace?: string; span?: string },
  range?: LinkRange,
): string {
  return href("logs", withRange({ query: target.query, trace: target.trace, span: target.span }, range));
}

/** The Metrics view with a PromQL expression. */
export function metricsHref(expr: string, range?: LinkRange): string {
  return href("metrics", withRange({ expr }, range));
}

/** `{service_name="x"}` plus an optional pipeline. */
export function serviceLogQL(service: string, pipeline = ""): string {
  const selector = `{service_name=${quote(service)}}`;
  return pipeline ? `${selector} ${pipeline}` : selector;
}

/** The error lines of a service. */
export function serviceErrorLogQL(service: string): string {
  return serviceLogQL(service, `| detected_level="error"`);
}

/**
 * Line filters for a log template (`call to <*> failed: <*>`): its two longest literal
 * words, so the query finds the template's lines whatever the spacing of the originals.
 */
export function templateLogQL(service: string, template: string): string {
  const words = [...new Set(template.split(/\s+/).filter((w) => w && !w.includes("<*>")))]
    .sort((a, b) => b.length - a.length)
    .slice(0, 2);
  return serviceLogQL(service, words.map((w) => `|= ${quote(w)}`).join(" "));
}

/** The lines of one trace in a service. */
export function traceLinesLogQL(service: string, traceId: string): string {
  return serviceLogQL(service, `| trace_id=${quote(traceId)}`);
}

/** A series as a graphable expression: counters (and histogram parts) as a rate. */
export function seriesPromQL(selector: string): string {
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(selector)?.[0] ?? "";
  return /(_total|_count|_sum|_bucket)$/.test(name) ? `rate(${selector}[5m])` : selector;
}

/** Request rate of a service's operations from the span metrics. */
export function serviceCallsPromQL(service: string): string {
  return `sum by (span_name, status_code) (rate(traces_spanmetrics_calls_total{service=${quote(service)}}[5m]))`;
}

/** Error ratio of one hop from the service-graph metrics. */
export function edgeErrorPromQL(caller: string, callee: string): string {
  const sel = `{client=${quote(caller)}, server=${quote(callee)}}`;
  return `sum(rate(traces_service_graph_request_failed_total${sel}[5m])) / sum(rate(traces_service_graph_request_total${sel}[5m]))`;
}
