// PromQL autocompletion without a parser: from the text before the cursor, decide
// whether a metric name, a label name or a label value is being typed, and how a chosen
// suggestion replaces it. The suggestions themselves come from the Prometheus API.

/** What the cursor is in. `from` is where the replaced text starts. */
export type CompletionContext =
  | { kind: "metric"; prefix: string; from: number }
  | { kind: "label-name"; metric?: string; prefix: string; from: number }
  | { kind: "label-value"; metric?: string; label: string; prefix: string; from: number; quoted: boolean }
  | { kind: "none" };

const IDENT = /[A-Za-z_:][A-Za-z0-9_:]*$/;

/** The innermost unclosed bracket of `text` (ignoring strings), or -1. */
function openBracket(text: string, open: string, close: string): number {
  let depth = 0;
  let quote = "";
  let at = -1;
  const stack: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === open) {
      stack.push(i);
      depth++;
    } else if (c === close && depth > 0) {
      stack.pop();
      depth--;
    }
  }
  at = stack.length ? stack[stack.length - 1] : -1;
  return at;
}

/** The position of the quote that opens an unterminated string at the end, or -1. */
function openQuote(text: string): number {
  let quote = "";
  let at = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      quote = c;
      at = i;
    }
  }
  return quote ? at : -1;
}

/** The metric name written right before a `{` at `brace`, if any. */
function metricBefore(text: string, brace: number): string | undefined {
  const match = IDENT.exec(text.slice(0, brace).trimEnd());
  return match ? match[0] : undefined;
}

/** Decides what is being typed at `cursor`. */
export function completionContext(text: string, cursor: number): CompletionContext {
  const before = text.slice(0, cursor);
  const brace = openBracket(before, "{", "}");
  if (brace >= 0) {
    const metric = metricBefore(before, brace);
    const inside = before.slice(brace + 1);
    const quote = openQuote(inside);
    if (quote >= 0) {
      const head = inside.slice(0, quote);
      const matcher = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(head);
      if (!matcher) return { kind: "none" };
      return {
        kind: "label-value",
        metric,
        label: matcher[1],
        prefix: inside.slice(quote + 1),
        from: brace + 1 + quote + 1,
        quoted: true,
      };
    }
    const clause = inside.slice(inside.lastIndexOf(",") + 1);
    const op = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(clause);
    if (op) return { kind: "label-value", metric, label: op[1], prefix: "", from: cursor, quoted: false };
    const name = /^\s*([A-Za-z_][A-Za-z0-9_]*)?$/.exec(clause);
    if (name) {
      const prefix = name[1] ?? "";
      return { kind: "label-name", metric, prefix, from: cursor - prefix.length };
    }
    return { kind: "none" };
  }
  if (openQuote(before) >= 0) return { kind: "none" };
  if (openBracket(before, "[", "]") >= 0) return { kind: "none" };
  // Grouping labels: `sum by (` / `without (`.
  const paren = openBracket(before, "(", ")");
  if (paren >= 0 && /\b(by|without|on|ignoring|group_left|group_right)\s*$/.test(before.slice(0, paren))) {
    const clause = before.slice(paren + 1);
    const name = /(?:^|,)\s*([A-Za-z_][A-Za-z0-9_]*)?$/.exec(clause);
    if (name) {
      const prefix = name[1] ?? "";
      return { kind: "label-name", metric: firstMetric(text), prefix, from: cursor - prefix.length };
    }
    return { kind: "none" };
  }
  const word = IDENT.exec(before);
  if (!word) return { kind: "none" };
  // A number (`5m`, `0.99`) is not a name.
  if (/[0-9.]$/.test(before.slice(0, cursor - word[0].length))) return { kind: "none" };
  return { kind: "metric", prefix: word[0], from: cursor - word[0].length };
}

const KEYWORDS = new Set([
  "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
]);

/** The first metric-looking identifier of an expression (for label suggestions). */
export function firstMetric(text: string): string | undefined {
  const plain = text
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)?/g, " ");
  const names = plain.match(/[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\{|\[|\)|$|\s|,))/g) ?? [];
  return names.find((n) => !KEYWORDS.has(n) && !FUNCTIONS.includes(n) && !AGGREGATIONS.includes(n));
}

/** PromQL functions, for name completion. */
export const FUNCTIONS = [
  "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
  "count_over_time", "day_of_month", "day_of_week", "delta", "deriv", "exp", "floor", "histogram_quantile",
  "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln",
  "log10", "log2", "max_over_time", "min_over_time", "minute", "month", "predict_linear", "present_over_time",
  "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
  "stddev_over_time", "stdvar_over_time", "sum_over_time", "time", "timestamp", "vector", "year",
];

/** Aggregation operators. */
export const AGGREGATIONS = [
  "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
];

/** One entry of the suggestion list. */
export interface Suggestion {
  /** What is shown and inserted. */
  label: string;
  kind: "metric" | "function" | "aggregation" | "label" | "value";
  /** Help text (metric type and help, function hint). */
  detail?: string;
}

/** Ranks candidates: prefix matches first, then substring matches, shortest first. */
export function rank(candidates: Suggestion[], prefix: string, limit = 50): Suggestion[] {
  const needle = prefix.toLowerCase();
  const scored: [number, Suggestion][] = [];
  for (const c of candidates) {
    const name = c.label.toLowerCase();
    if (!needle) scored.push([1, c]);
    else if (name.startsWith(needle)) scored.push([name === needle ? -1 : 0, c]);
    else if (name.includes(needle)) scored.push([2, c]);
  }
  scored.sort((a, b) =>
    needle
      ? a[0] - b[0] || a[1].label.length - b[1].label.length || a[1].label.localeCompare(b[1].label)
      : a[1].label.localeCompare(b[1].label),
  );
  return scored.slice(0, limit).map(([, c]) => c);
}

/** Escapes a label value for a double-quoted PromQL string. */
export function quoteValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
}

/** Applies a chosen suggestion: the new text and cursor position. */
export function applySuggestion(
  text: string,
  cursor: number,
  context: CompletionContext,
  suggestion: Suggestion,
): { text: string; cursor: number } {
  if (context.kind === "none") return { text, cursor };
  const head = text.slice(0, context.from);
  let tail = text.slice(cursor);
  let insert: string;
  let caret: number;
  switch (context.kind) {
    case "metric":
      // Skip the rest of a word being replaced in the middle.
      tail = tail.replace(/^[A-Za-z0-9_:]+/, "");
      insert = suggestion.kind === "function" || suggestion.kind === "aggregation" ? `${suggestion.label}(` : suggestion.label;
      caret = head.length + insert.length;
      if (insert.endsWith("(") && !tail.startsWith(")")) tail = `)${tail}`;
      break;
    case "label-name": {
      tail = tail.replace(/^[A-Za-z0-9_]+/, "");
      const grouping = !/\{[^}]*$/.test(head);
      if (grouping) {
        insert = suggestion.label;
        caret = head.length + insert.length;
      } else {
        insert = `${suggestion.label}="`;
        caret = head.length + insert.length;
        tail = `"${tail}`;
      }
      break;
    }
    case "label-value": {
      const value = quoteValue(suggestion.label);
      if (context.quoted) {
        tail = tail.replace(/^(?:[^"\\]|\\.)*"/, "");
        insert = `${value}"`;
      } else {
        insert = `"${value}"`;
      }
      caret = head.length + insert.length;
      break;
    }
  }
  return { text: head + insert + tail, cursor: caret };
}

/** A sensible first query for a metric picked from the list: rates for counters, a
 *  quantile for histogram buckets, the value itself for gauges. */
export function starterQuery(name: string, type?: string): string {
  if (name.endsWith("_bucket") || type === "histogram") {
    const base = name.replace(/_bucket$/, "");
    return `histogram_quantile(0.99, sum by (le) (rate(${base}_bucket[5m])))`;
  }
  if (type === "counter" || /_(total|count|sum)$/.test(name)) return `sum(rate(${name}[5m]))`;
  return name;
}
