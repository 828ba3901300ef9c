// What the log query box means: the native full-text syntax (`timeout service:api
// -debug "connection reset"`) or LogQL (`{service_name="api"} |= "timeout"`), and how
// the view's service / level filters and trace links combine with it.

/** Canonical levels, most severe first, with the colours the list and histogram use. */
export const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
export type Level = (typeof LEVELS)[number];

/** A level name for any severity text or OTLP number (as the server's `level_of`). */
export function levelOf(severityNumber: number | undefined, severity: string | undefined): Level | undefined {
  const n = severityNumber ?? 0;
  if (n >= 1 && n <= 4) return "trace";
  if (n >= 5 && n <= 8) return "debug";
  if (n >= 9 && n <= 12) return "info";
  if (n >= 13 && n <= 16) return "warn";
  if (n >= 17 && n <= 20) return "error";
  if (n >= 21 && n <= 24) return "fatal";
  switch ((severity ?? "").trim().toLowerCase()) {
    case "trace":
      return "trace";
    case "debug":
    case "dbug":
      return "debug";
    case "info":
    case "information":
    case "notice":
      return "info";
    case "warn":
    case "warning":
    case "wrn":
      return "warn";
    case "error":
    case "err":
    case "eror":
    case "severe":
      return "error";
    case "fatal":
    case "critical":
    case "crit":
    case "panic":
    case "emerg":
    case "alert":
      return "fatal";
    default:
      return undefined;
  }
}

/** True when the text is LogQL (a stream selector first), not the native syntax. */
export function isLogQL(query: string): boolean {
  return query.trimStart().startsWith("{");
}

/** The filters of the view besides the query text. */
export interface LogFilters {
  service: string;
  level: string;
  trace: string;
  span: string;
}

function quote(value: string): string {
  return JSON.stringify(value);
}

/** LogQL with the view's filters appended as label filters. */
export function logqlWithFilters(query: string, filters: LogFilters): string {
  let out = query.trim();
  if (filters.service) out += ` | service_name=${quote(filters.service)}`;
  if (filters.level) out += ` | detected_level=${quote(filters.level)}`;
  if (filters.trace) out += ` | trace_id=${quote(filters.trace)}`;
  if (filters.span) out += ` | span_id=${quote(filters.span)}`;
  return out;
}

/** The native query with a span filter added (the API has `trace_id` but no span parameter). */
export function nativeWithSpan(query: string, span: string): string {
  const text = query.trim();
  if (!span) return text;
  const clause = `span_id:${span}`;
  return text ? `(${text}) AND ${clause}` : clause;
}

/**
 * Translates a native query to LogQL for live tail, which speaks LogQL only. Handles
 * words, "phrases", `-word`, `service:`, `level:`/`severity:`, `trace_id:`, `span_id:`;
 * returns `undefined` for anything else (OR, parentheses, prefixes, fuzzy terms).
 */
export function nativeToLogQL(query: string, filters: LogFilters): string | undefined {
  const tokens = query.match(/-?"[^"]*"|\S+/g) ?? [];
  let service = filters.service;
  let level = filters.level;
  const stages: string[] = [];
  for (const raw of tokens) {
    if (raw === "AND") continue;
    if (raw === "OR" || raw === "NOT" || /[()*~]/.test(raw.replace(/^-?"[^"]*"$/, ""))) return undefined;
    const negated = raw.startsWith("-");
    const token = negated ? raw.slice(1) : raw;
    const field = /^([a-z_.]+):(.+)$/.exec(token);
    if (field && !token.startsWith('"')) {
      const [, name, rawValue] = field;
      const value = rawValue.replace(/^"(.*)"$/, "$1");
      const op = negated ? "!=" : "=";
      if (name === "service" && !negated) {
        if (service && service !== value) return undefined;
        service = value;
      } else if ((name === "level" || name === "severity") && !negated) {
        level = value.toLowerCase();
      } else if (name === "trace_id" || name === "span_id") {
        stages.push(`| ${name}${op}${quote(value.toLowerCase())}`);
      } else {
        return undefined;
      }
      continue;
    }
    const text = token.replace(/^"(.*)"$/, "$1");
    if (!text) continue;
    // Native words match case-insensitively; so does `(?i)` with the literal escaped.
    const pattern = `(?i)${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`;
    stages.push(`${negated ? "!~" : "|~"} ${quote(pattern)}`);
  }
  const selector = service ? `{service_name=${quote(service)}}` : `{service_name=~".+"}`;
  const parts = [selector, ...stages];
  if (level) parts.push(`| detected_level=${quote(level)}`);
  if (filters.trace) parts.push(`| trace_id=${quote(filters.trace)}`);
  if (filters.span) parts.push(`| span_id=${quote(filters.span)}`);
  return parts.join(" ");
}

/** The longest run of literal tokens of a pattern template, for searching its lines. */
export function templatePhrase(template: string): string {
  let best: string[] = [];
  let run: string[] = [];
  for (const token of template.split(/\s+/)) {
    if (token.includes("<_>") || !/[A-Za-z]/.test(token)) {
      run = [];
      continue;
    }
    run.push(token);
    if (run.length > best.length) best = [...run];
  }
  return best.join(" ");
}
