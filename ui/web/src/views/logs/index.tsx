// The Logs view (`/ui/logs`): full-text or LogQL search with service / level filters,
// a trace's or span's lines (`trace`, `span`), hits over time, a virtualised newest-first
// list with paging, live tail over the Loki websocket, and the templates tab.
//
// URL state: `query`, `service`, `level`, `trace`, `span`, `tab` (`lines` | `templates`),
// `tail` (`1` while live tail is on), plus the shell's `from` / `to`.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { getJSON, isAbort } from "../../api";
import { setParams } from "../../app/router";
import type { ViewProps } from "../../app/view";
import {
  histogramLogQL,
  histogramNative,
  type HistogramData,
  type LogPage,
  type LogRow,
  type NativeSearch,
  searchLogQL,
  searchNative,
  tail as openTail,
} from "./api";
import { Histogram } from "./Histogram";
import { LogList } from "./LogList";
import {
  isLogQL,
  LEVELS,
  type LogFilters,
  logqlWithFilters,
  nativeToLogQL,
  nativeWithSpan,
  templatePhrase,
} from "./query";
import { Templates } from "./Templates";
import "./logs.css";

const PAGE = 200;
const TAIL_KEEP = 2_000;

/** What a search runs: the native API or LogQL, with every filter applied. */
type Plan =
  | { kind: "native"; search: NativeSearch; fallback?: NativeSearch }
  | { kind: "logql"; query: string; start: number; end: number };

function plan(query: string, filters: LogFilters, start: number, end: number): Plan {
  if (isLogQL(query)) return { kind: "logql", query: logqlWithFilters(query, filters), start, end };
  const base: NativeSearch = {
    q: query.trim(),
    start,
    end,
    service: filters.service,
    severity: filters.level,
    trace_id: filters.trace,
  };
  if (!filters.span) return { kind: "native", search: base };
  return { kind: "native", search: { ...base, q: nativeWithSpan(query, filters.span) }, fallback: base };
}

/** A bucket width giving about `buckets` bars, rounded to a readable step. */
export function histogramStep(rangeMs: number, buckets = 120): number {
  const raw = rangeMs / 1000 / buckets;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  return steps.find((s) => s >= raw) ?? Math.ceil(raw / 86400) * 86400;
}

interface Results {
  rows: LogRow[];
  next?: string;
  loading: boolean;
  loadingMore?: boolean;
  error?: string;
  notice?: string;
  /** The plan whose pages these are (for "load more"). */
  plan?: Plan;
  elapsedMs?: number;
}

export function LogsView({ params, range, tick }: ViewProps) {
  const query = params.get("query") ?? "";
  const filters: LogFilters = {
    service: params.get("service") ?? "",
    level: params.get("level") ?? "",
    trace: (params.get("trace") ?? "").toLowerCase(),
    span: (params.get("span") ?? "").toLowerCase(),
  };
  const tab = params.get("tab") === "templates" ? "templates" : "lines";
  const tailing = params.get("tail") === "1";

  const [draft, setDraft] = useState(query);
  useEffect(() => setDraft(query), [query]);
  const input = useRef<HTMLInputElement>(null);

  const current = useMemo(
    () => plan(query, filters, range.start, range.end),
    [query, filters.service, filters.level, filters.trace, filters.span, range.start, range.end],
  );

  const [results, setResults] = useState<Results>({ rows: [], loading: true });
  const [histogram, setHistogram] = useState<{ data?: HistogramData; error?: string; stepS: number }>({ stepS: 60 });
  const [tailState, setTailState] = useState<{ rows: LogRow[]; status: string; error?: string }>({ rows: [], status: "" });
  const services = useServices(range.start, range.end);

  // The first page of results.
  useEffect(() => {
    if (tab !== "lines") return;
    const controller = new AbortController();
    const started = performance.now();
    setResults((r) => ({ ...r, loading: true, error: undefined, notice: undefined }));
    firstPage(current, controller.signal)
      .then(({ page, notice, plan: used }) =>
        setResults({ rows: page.rows, next: page.next, loading: false, notice, plan: used, elapsedMs: performance.now() - started }),
      )
      .catch((error) => {
        if (!isAbort(error)) setResults({ rows: [], loading: false, error: message(error) });
      });
    return () => controller.abort();
  }, [current, tick, tab]);

  // The histogram.
  useEffect(() => {
    if (tab !== "lines") return;
    const controller = new AbortController();
    const stepS = histogramStep(range.end - range.start);
    const load =
      current.kind === "logql"
        ? histogramLogQL(current.query, range.start, range.end, stepS, controller.signal)
        : histogramNative(current.search, stepS, controller.signal, (data) => setHistogram({ data, stepS }));
    load
      .then((data) => setHistogram({ data, stepS }))
      .catch((error) => {
        if (!isAbort(error)) setHistogram((h) => ({ ...h, error: message(error) }));
      });
    return () => controller.abort();
  }, [current, tick, tab]);

  // Live tail: LogQL as typed, or the native query translated.
  const tailQuery = isLogQL(query) ? logqlWithFilters(query, filters) : nativeToLogQL(query, filters);
  useEffect(() => {
    if (!tailing || tab !== "lines") return;
    if (!tailQuery) {
      setTailState({ rows: [], status: "", error: "Live tail speaks LogQL: write the query as LogQL, or use plain words and field filters (no OR, parentheses, prefixes or fuzzy terms)." });
      return;
    }
    setTailState({ rows: [], status: "connecting…" });
    return openTail(
      tailQuery,
      (rows) =>
        setTailState((s) => ({ ...s, rows: [...rows, ...s.rows].slice(0, TAIL_KEEP) })),
      (state, reason) =>
        setTailState((s) => ({ ...s, status: state === "open" ? "live" : "stopped", error: state === "closed" ? reason : undefined })),
    );
  }, [tailing, tailQuery, tab]);

  // "/" focuses the search box.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (e.key !== "/" || e.ctrlKey || e.metaKey || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
      e.preventDefault();
      input.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  const run = () => setParams({ query: draft.trim() });

  const loadMore = () => {
    const used = results.plan;
    if (!used || !results.next || results.loadingMore) return;
    setResults((r) => ({ ...r, loadingMore: true }));
    const controller = new AbortController();
    nextPage(used, results.next, controller.signal)
      .then((page) =>
        setResults((r) => {
          const seen = new Set(r.rows.map((row) => `${row.tsNs}|${row.service}|${row.body}`));
          const fresh = page.rows.filter((row) => !seen.has(`${row.tsNs}|${row.service}|${row.body}`));
          fresh.forEach((row, i) => (row.key = `${row.key}:p${r.rows.length + i}`));
          return { ...r, rows: [...r.rows, ...fresh], next: page.next, loadingMore: false };
        }),
      )
      .catch((error) => setResults((r) => ({ ...r, loadingMore: false, error: message(error) })));
  };

  const rows = tailing ? tailState.rows : results.rows;
  const scope = filters.span ? `span ${filters.span}` : filters.trace ? `trace ${filters.trace}` : "";

  return (
    <section class="logs-view">
      <form
        class="logs-bar"
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <input
          ref={input}
          class="logs-query"
          data-testid="log-query"
          type="text"
          spellcheck={false}
          autocomplete="off"
          aria-label="log query"
          placeholder={'Search: words, "phrases", -not, service:x, level:error, attr.key:value, or LogQL {service_name="x"} |= "timeout"   ( / to focus )'}
          value={draft}
          onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
        />
        <select
          aria-label="service"
          data-testid="log-service"
          value={filters.service}
          onChange={(e) => setParams({ service: (e.target as HTMLSelectElement).value })}
        >
          <option value="">all services</option>
          {[...new Set([...services, ...(filters.service ? [filters.service] : [])])].map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select
          aria-label="level"
          data-testid="log-level"
          value={filters.level}
          onChange={(e) => setParams({ level: (e.target as HTMLSelectElement).value })}
        >
          <option value="">all levels</option>
          {LEVELS.map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
        </select>
        <button type="submit" class="primary" data-testid="log-run">
          Search
        </button>
        <button
          type="button"
          class={tailing ? "tail-on" : ""}
          data-testid="log-tail"
          aria-pressed={tailing}
          title="stream new lines as they arrive (Loki tail)"
          onClick={() => setParams({ tail: tailing ? undefined : "1" })}
        >
          {tailing ? "■ Stop tail" : "▶ Live tail"}
        </button>
      </form>

      {scope && (
        <div class="logs-scope">
          Lines of <b>{scope}</b>
          {filters.span && (
            <button type="button" class="link-button" onClick={() => setParams({ span: undefined })}>
              show the whole trace
            </button>
          )}
          <button type="button" class="link-button" onClick={() => setParams({ span: undefined, trace: undefined })}>
            clear
          </button>
        </div>
      )}

      <div class="logs-tabs" role="tablist">
        <button type="button" role="tab" aria-selected={tab === "lines"} class={tab === "lines" ? "active" : ""} onClick={() => setParams({ tab: undefined })}>
          Lines
        </button>
        <button
          type="button"
          role="tab"
          data-testid="log-templates-tab"
          aria-selected={tab === "templates"}
          class={tab === "templates" ? "active" : ""}
          onClick={() => setParams({ tab: "templates" })}
        >
          Templates
        </button>
        <span
          class="logs-status muted"
          data-testid="log-status"
          data-state={tailing ? "tailing" : results.loading ? "loading" : results.error ? "error" : "done"}
        >
          {tab === "lines" && (tailing ? tailStatus(tailState, tailQuery) : resultStatus(results))}
        </span>
      </div>

      {tab === "templates" ? (
        <Templates
          service={filters.service}
          range={range}
          tick={tick}
          onShow={(p) => {
            const phrase = templatePhrase(p.template);
            setParams({ tab: undefined, service: p.service, query: phrase ? `"${phrase}"` : "" });
          }}
        />
      ) : (
        <>
          {histogram.error ? (
            <div class="error panel-error">histogram: {histogram.error}</div>
          ) : histogram.data ? (
            <Histogram data={histogram.data} stepS={histogram.stepS} onZoom={(from, to) => setParams({ from: String(from), to: String(to) })} />
          ) : (
            <div class="log-histogram-placeholder" />
          )}
          {results.error && !tailing && (
            <div class="error panel-error" role="alert" data-testid="log-error">
              {results.error}
            </div>
          )}
          {tailState.error && tailing && <div class="error panel-error">{tailState.error}</div>}
          {results.notice && !tailing && <div class="logs-notice">{results.notice}</div>}
          <LogList
            rows={rows}
            span={filters.span}
            footer={
              tailing ? undefined : results.next ? (
                <button type="button" data-testid="log-load-more" onClick={loadMore} disabled={results.loadingMore}>
                  {results.loadingMore ? "Loading…" : `Load ${PAGE} older lines`}
                </button>
              ) : results.rows.length > 0 && !results.loading ? (
                <span class="muted">End of results in this time range.</span>
              ) : !results.loading && !results.error ? (
                <span class="muted">No lines match in this time range.</span>
              ) : undefined
            }
          />
        </>
      )}
    </section>
  );
}

function resultStatus(r: Results): string {
  if (r.loading) return "searching…";
  if (r.error) return "";
  const more = r.next ? "+" : "";
  return `${r.rows.length.toLocaleString()}${more} ${r.rows.length === 1 && !more ? "line" : "lines"}, newest first${r.elapsedMs !== undefined ? ` · ${Math.round(r.elapsedMs)} ms` : ""}`;
}

function tailStatus(t: { rows: LogRow[]; status: string }, query: string | undefined): string {
  return `${t.status || "…"} · ${t.rows.length} lines${query ? ` · ${query}` : ""}`;
}

async function firstPage(p: Plan, signal: AbortSignal): Promise<{ page: LogPage; notice?: string; plan: Plan }> {
  if (p.kind === "logql") {
    return { page: await searchLogQL(p.query, p.start, p.end, PAGE, undefined, signal), plan: p };
  }
  const page = await searchNative(p.search, PAGE, undefined, signal);
  if (page.rows.length === 0 && p.fallback) {
    const whole = await searchNative(p.fallback, PAGE, undefined, signal);
    if (whole.rows.length > 0) {
      return {
        page: whole,
        plan: { kind: "native", search: p.fallback },
        notice: "This span logged no lines matching the search; showing the lines of its whole trace.",
      };
    }
  }
  return { page, plan: p };
}

function nextPage(p: Plan, next: string, signal: AbortSignal): Promise<LogPage> {
  if (p.kind === "logql") return searchLogQL(p.query, p.start, p.end, PAGE, next, signal);
  return searchNative(p.search, PAGE, next, signal);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Service names for the filter: the `service` label of the metrics (an index lookup),
 * or the Loki label values (which read log lines) when no metric carries it.
 */
function useServices(start: number, end: number): string[] {
  const [services, setServices] = useState<string[]>([]);
  // The list changes slowly: refetch when the range moves by more than a minute.
  const key = `${Math.floor(start / 60_000)}-${Math.floor(end / 60_000)}`;
  useEffect(() => {
    const controller = new AbortController();
    const range = { start: (start / 1000).toFixed(3), end: (end / 1000).toFixed(3) };
    getJSON<{ data?: string[] }>("/api/v1/label/service/values", range, controller.signal)
      .then((body) =>
        body.data?.length
          ? body.data
          : getJSON<{ data?: string[] }>(
              "/loki/api/v1/label/service_name/values",
              { start: `${Math.round(start)}000000`, end: `${Math.round(end)}000000` },
              controller.signal,
            ).then((loki) => loki.data ?? []),
      )
      .then((names) => setServices([...names].sort()))
      .catch(() => undefined);
    return () => controller.abort();
  }, [key]);
  return services;
}
