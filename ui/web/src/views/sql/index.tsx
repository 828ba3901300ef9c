// The SQL view (`/ui/sql`): a console over the `logs`, `spans` and `metrics` tables
// (`POST /api/v1/sql`) with example queries, the tables' columns, and a result grid
// with typed, sortable columns, the row count and the elapsed time.
//
// URL state: `sql` (the query that ran), `limit` (rows asked for).
import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort, postJSON } from "../../api";
import { setParams } from "../../app/router";
import type { ViewProps } from "../../app/view";
import { openTrace, traceHref } from "../logs/links";
import { ErrorBox, type QueryError, toError } from "../metrics/ErrorBox";
import { EXAMPLES } from "./examples";
import "./sql.css";

/** A column of the answer: name and Arrow type as the server prints it. */
interface Column {
  name: string;
  type: string;
}

interface Answer {
  columns: Column[];
  rows: unknown[][];
  truncated: boolean;
}

const TABLES = ["logs", "spans", "metrics"] as const;
const LIMITS = [100, 1000, 10000];
/** Most rows drawn in the grid (the rest stay downloadable as CSV). */
const MAX_DRAWN = 2000;

export function SqlView({ params, tick }: ViewProps) {
  const sql = params.get("sql") ?? "";
  const limit = LIMITS.includes(Number(params.get("limit"))) ? Number(params.get("limit")) : 1000;
  const [draft, setDraft] = useState(sql || EXAMPLES[0].sql);
  useEffect(() => {
    if (sql) setDraft(sql);
  }, [sql]);
  const editor = useRef<HTMLTextAreaElement>(null);
  // Re-running the same text does not change the URL; this counter does the rerun.
  const [runs, setRuns] = useState(0);
  const [state, setState] = useState<{ loading: boolean; answer?: Answer; error?: QueryError; elapsedMs?: number; ran?: string }>({
    loading: false,
  });

  useEffect(() => {
    if (!sql) return;
    const controller = new AbortController();
    const started = performance.now();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    postJSON<Answer>("/api/v1/sql", { sql, limit }, controller.signal)
      .then((answer) => setState({ loading: false, answer, elapsedMs: performance.now() - started, ran: sql }))
      .catch((error) => {
        if (!isAbort(error)) setState({ loading: false, error: toError(error), elapsedMs: performance.now() - started, ran: sql });
      });
    return () => controller.abort();
  }, [sql, limit, tick, runs]);

  const run = (text = draft) => {
    const trimmed = text.trim();
    if (!trimmed) return;
    if (trimmed === sql) setRuns((n) => n + 1);
    else setParams({ sql: trimmed });
  };

  const insert = (text: string) => {
    const element = editor.current;
    if (!element) return;
    const start = element.selectionStart ?? draft.length;
    const end = element.selectionEnd ?? start;
    const next = draft.slice(0, start) + text + draft.slice(end);
    setDraft(next);
    requestAnimationFrame(() => {
      element.focus();
      element.setSelectionRange(start + text.length, start + text.length);
    });
  };

  return (
    <section class="sql-view">
      <aside class="sql-side">
        <h3>Examples</h3>
        <ul class="sql-examples">
          {EXAMPLES.map((example) => (
            <li key={example.title}>
              <button
                type="button"
                class="link-button"
                data-testid="sql-example"
                title={example.sql}
                onClick={() => {
                  setDraft(example.sql);
                  run(example.sql);
                }}
              >
                {example.title}
              </button>
            </li>
          ))}
        </ul>
        <h3>Tables</h3>
        <Schema onInsert={insert} />
      </aside>

      <div class="sql-main">
        <form
          class="sql-editor"
          onSubmit={(e) => {
            e.preventDefault();
            run();
          }}
        >
          <textarea
            ref={editor}
            data-testid="sql-input"
            aria-label="SQL query"
            spellcheck={false}
            rows={Math.min(14, Math.max(5, draft.split("\n").length + 1))}
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                run();
              }
            }}
          />
          <div class="sql-actions">
            <button type="submit" class="primary" data-testid="sql-run" disabled={state.loading}>
              {state.loading ? "Running…" : "Run"}
            </button>
            <span class="muted">Ctrl+Enter to run</span>
            <label class="sql-limit">
              rows{" "}
              <select aria-label="row limit" value={String(limit)} onChange={(e) => setParams({ limit: (e.target as HTMLSelectElement).value })}>
                {LIMITS.map((l) => (
                  <option key={l} value={String(l)}>
                    {l.toLocaleString()}
                  </option>
                ))}
              </select>
            </label>
            <span class="sql-status muted" data-testid="sql-status">
              {status(state)}
            </span>
            {state.answer && state.answer.rows.length > 0 && (
              <button type="button" onClick={() => download(state.answer!)}>
                Download CSV
              </button>
            )}
          </div>
        </form>
        {state.error && <ErrorBox error={state.error} testid="sql-error" />}
        {state.answer && !state.error && <Grid answer={state.answer} />}
        {!sql && !state.answer && (
          <p class="muted sql-intro">
            SQL (DataFusion dialect) over <code>logs</code>, <code>spans</code> and <code>metrics</code>. Filter on{" "}
            <code>ts</code> (logs, metrics) or <code>start</code> (spans) to read only that time range; <code>match(body, 'words')</code> uses
            the full-text index; map columns read as <code>attributes['http.route']</code>. Pick an example or write a query.
          </p>
        )}
      </div>
    </section>
  );
}

function status(state: { loading: boolean; answer?: Answer; error?: QueryError; elapsedMs?: number }): string {
  if (state.loading) return "running…";
  const elapsed = state.elapsedMs !== undefined ? ` · ${formatElapsed(state.elapsedMs)}` : "";
  if (state.error) return `failed${elapsed}`;
  if (!state.answer) return "";
  const n = state.answer.rows.length;
  return `${n.toLocaleString()} ${n === 1 ? "row" : "rows"}${state.answer.truncated ? " (truncated at the row limit)" : ""}${elapsed}`;
}

function formatElapsed(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** How a column's values are shown and sorted. */
type Kind = "number" | "time" | "text" | "map" | "bool";

function kindOf(type: string): Kind {
  if (/^(U?Int|Float|Decimal)/.test(type)) return "number";
  if (type.startsWith("Timestamp") || type.startsWith("Date")) return "time";
  if (type === "Boolean") return "bool";
  if (type.startsWith("Map") || type.startsWith("Struct") || type.startsWith("List") || type.startsWith("LargeList")) return "map";
  return "text";
}

/** The short form of an Arrow type for the header: `Timestamp(ns, "UTC")` → `timestamp`. */
function shortType(type: string): string {
  if (type.startsWith("Timestamp")) return `timestamp(${/\((\w+)/.exec(type)?.[1] ?? ""})`;
  if (type.startsWith("Map")) return "map";
  if (type.startsWith("List") || type.startsWith("LargeList")) return "list";
  if (type.startsWith("Struct")) return "struct";
  return type.toLowerCase();
}

function Grid({ answer }: { answer: Answer }) {
  const [sort, setSort] = useState<{ index: number; descending: boolean } | null>(null);
  useEffect(() => setSort(null), [answer]);
  const kinds = answer.columns.map((c) => kindOf(c.type));
  let rows = answer.rows;
  if (sort) {
    const { index, descending } = sort;
    const kind = kinds[index];
    rows = [...rows].sort((a, b) => {
      const order = descending ? -1 : 1;
      const x = a[index];
      const y = b[index];
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      if (kind === "number") return order * (Number(x) - Number(y) || 0);
      return order * String(typeof x === "object" ? JSON.stringify(x) : x).localeCompare(String(typeof y === "object" ? JSON.stringify(y) : y));
    });
  }
  const traceColumn = answer.columns.findIndex((c) => c.name === "trace_id");
  const spanColumn = answer.columns.findIndex((c) => c.name === "span_id");
  if (answer.columns.length === 0) return <p class="muted">The statement returned no columns.</p>;
  return (
    <div class="sql-grid-wrap">
      <table class="sql-grid" data-testid="sql-grid">
        <thead>
          <tr>
            <th class="rownum">#</th>
            {answer.columns.map((column, i) => (
              <th key={i} class={`kind-${kinds[i]}`} aria-sort={sort?.index === i ? (sort.descending ? "descending" : "ascending") : undefined}>
                <button
                  type="button"
                  class="th-button"
                  title={`${column.name}: ${column.type} (click to sort)`}
                  onClick={() => setSort((s) => (s?.index === i ? { index: i, descending: !s.descending } : { index: i, descending: kinds[i] === "number" }))}
                >
                  <span class="col-name">{column.name}</span>
                  <span class="col-type">{shortType(column.type)}</span>
                  {sort?.index === i && <span>{sort.descending ? " ▼" : " ▲"}</span>}
                </button>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, MAX_DRAWN).map((row, r) => (
            <tr key={r}>
              <td class="rownum">{r + 1}</td>
              {row.map((value, c) => (
                <Cell
                  key={c}
                  value={value}
                  kind={kinds[c]}
                  trace={c === traceColumn && typeof value === "string" ? { trace: value, span: spanColumn >= 0 ? (row[spanColumn] as string | null) : null } : undefined}
                />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > MAX_DRAWN && (
        <p class="muted">
          Showing the first {MAX_DRAWN.toLocaleString()} of {rows.length.toLocaleString()} rows; download the CSV for all of them.
        </p>
      )}
      {rows.length === 0 && <p class="muted sql-empty">No rows.</p>}
    </div>
  );
}

function Cell({ value, kind, trace }: { value: unknown; kind: Kind; trace?: { trace: string; span: string | null } }) {
  if (value === null || value === undefined) return <td class="null">null</td>;
  if (trace) {
    return (
      <td class="mono">
        <a href={traceHref(trace.trace, trace.span)} onClick={openTrace(trace.trace, trace.span)}>
          {trace.trace}
        </a>
      </td>
    );
  }
  switch (kind) {
    case "number": {
      const text = typeof value === "number" ? formatNumber(value) : String(value);
      return (
        <td class="num" title={String(value)}>
          {text}
        </td>
      );
    }
    case "time":
      return (
        <td class="time" title={String(value)}>
          {String(value).replace("T", " ").replace(/Z$/, "")}
        </td>
      );
    case "map": {
      const text = formatMap(value);
      return (
        <td class="map" title={text}>
          {text}
        </td>
      );
    }
    default: {
      const text = String(value);
      return (
        <td class="text" title={text.length > 80 ? text : undefined}>
          {text}
        </td>
      );
    }
  }
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e-4 && abs < 1e15) return String(Number(value.toPrecision(8)));
  return value.toPrecision(6);
}

function formatMap(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ")}]`;
  if (typeof value === "object" && value) {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
      .join("  ");
  }
  return String(value);
}

function download(answer: Answer) {
  const escape = (v: unknown) => {
    if (v === null || v === undefined) return "";
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [answer.columns.map((c) => escape(c.name)).join(",")];
  for (const row of answer.rows) lines.push(row.map(escape).join(","));
  const blob = new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = "sightline-query.csv";
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The columns of each table, read with `SELECT * … LIMIT 0`; a click inserts a name. */
function Schema({ onInsert }: { onInsert: (text: string) => void }) {
  const [tables, setTables] = useState<Record<string, Column[] | string>>({});
  useEffect(() => {
    const controller = new AbortController();
    for (const table of TABLES) {
      postJSON<Answer>("/api/v1/sql", { sql: `SELECT * FROM ${table} LIMIT 0`, limit: 1 }, controller.signal)
        .then((answer) => setTables((t) => ({ ...t, [table]: answer.columns })))
        .catch((error) => {
          if (!isAbort(error)) setTables((t) => ({ ...t, [table]: toError(error).message }));
        });
    }
    return () => controller.abort();
  }, []);
  return (
    <div class="sql-schema">
      {TABLES.map((table) => {
        const columns = tables[table];
        return (
          <details key={table} open={table === "logs"}>
            <summary>
              <button type="button" class="link-button mono" title={`insert ${table}`} onClick={() => onInsert(table)}>
                {table}
              </button>
            </summary>
            {typeof columns === "string" ? (
              <div class="error">{columns}</div>
            ) : columns ? (
              <ul>
                {columns.map((c) => (
                  <li key={c.name}>
                    <button type="button" class="link-button mono" title={`insert ${c.name}`} onClick={() => onInsert(c.name)}>
                      {c.name}
                    </button>
                    <span class="col-type">{shortType(c.type)}</span>
                  </li>
                ))}
              </ul>
            ) : (
              <div class="muted">loading…</div>
            )}
          </details>
        );
      })}
    </div>
  );
}
