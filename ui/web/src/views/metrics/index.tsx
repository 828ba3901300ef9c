// The Metrics view (`/ui/metrics`): a PromQL box with autocompletion, the range query
// as a chart (step fitted to the chart's width) with exemplars, and the instant values
// at the end of the range as a table.
//
// URL state: `expr`, `tab` (`graph` | `table`), `step` (seconds, optional override),
// `exemplars` (`0` hides them), plus the shell's `from` / `to`.
import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "../../api";
import { setParams } from "../../app/router";
import type { ViewProps } from "../../app/view";
import { type Exemplar, exemplars as fetchExemplars, metadata, type MetricMeta, metricNames, queryRange, type RangeSeries } from "./api";
import { Chart } from "./Chart";
import { ErrorBox, type QueryError, toError } from "./ErrorBox";
import { starterQuery } from "./complete";
import { PromqlInput } from "./PromqlInput";
import { InstantTable } from "./Table";
import "./metrics.css";

/** The step for about one point per `pxPerPoint` pixels, rounded to a readable value. */
export function fitStep(rangeMs: number, widthPx: number, pxPerPoint = 3): number {
  const raw = rangeMs / 1000 / Math.max(1, widthPx / pxPerPoint);
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const step = steps.find((s) => s >= raw) ?? Math.ceil(raw / 86400) * 86400;
  // Prometheus answers at most 11 000 points per series.
  return Math.max(step, Math.ceil(rangeMs / 1000 / 11_000));
}

interface GraphState {
  loading: boolean;
  series?: RangeSeries[];
  warnings?: string[];
  error?: QueryError;
  stepS?: number;
  elapsedMs?: number;
  /** The range the series were queried for. */
  start?: number;
  end?: number;
}

export function MetricsView({ params, range, tick }: ViewProps) {
  const expr = params.get("expr") ?? "";
  const tab = params.get("tab") === "table" ? "table" : "graph";
  const stepParam = Number(params.get("step") ?? "");
  const showExemplars = params.get("exemplars") !== "0";

  const [draft, setDraft] = useState(expr);
  useEffect(() => setDraft(expr), [expr]);

  // The chart's width decides the step; measured before the first query.
  const area = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const element = area.current;
    if (!element) return;
    const measure = () => setWidth(Math.round(element.clientWidth / 50) * 50);
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  const stepS = stepParam > 0 ? stepParam : fitStep(range.end - range.start, width || 1200);

  const [graph, setGraph] = useState<GraphState>({ loading: false });
  const [exemplars, setExemplars] = useState<Exemplar[]>([]);

  useEffect(() => {
    if (!expr || tab !== "graph" || width === 0) return;
    const controller = new AbortController();
    const started = performance.now();
    setGraph((g) => ({ ...g, loading: true, error: undefined }));
    // Align the range to the step (as Grafana does) so points fall on stable times.
    const stepMs = stepS * 1000;
    const start = Math.floor(range.start / stepMs) * stepMs;
    const end = Math.ceil(range.end / stepMs) * stepMs;
    queryRange(expr, start, end, stepS, controller.signal)
      .then((result) =>
        setGraph({
          loading: false,
          series: result.series,
          warnings: result.warnings,
          stepS,
          elapsedMs: performance.now() - started,
          start,
          end,
        }),
      )
      .catch((error) => {
        if (isAbort(error)) return;
        setGraph({ loading: false, error: toError(error) });
      });
    return () => controller.abort();
  }, [expr, tab, range.start, range.end, stepS, tick, width === 0]);

  useEffect(() => {
    setExemplars([]);
    if (!expr || tab !== "graph" || !showExemplars) return;
    const controller = new AbortController();
    fetchExemplars(expr, range.start, range.end, controller.signal)
      .then(setExemplars)
      // Exemplars are an extra: a query they do not apply to just has none.
      .catch(() => undefined);
    return () => controller.abort();
  }, [expr, tab, range.start, range.end, tick, showExemplars]);

  const run = () => setParams({ expr: draft.trim() });

  return (
    <section class="metrics-view">
      <form
        class="metrics-bar"
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <PromqlInput value={draft} onChange={setDraft} onRun={run} start={range.start} end={range.end} />
        <button type="submit" class="primary" data-testid="promql-run">
          Run
        </button>
      </form>

      <div class="metrics-tabs" role="tablist">
        <button type="button" role="tab" aria-selected={tab === "graph"} class={tab === "graph" ? "active" : ""} onClick={() => setParams({ tab: undefined })}>
          Graph
        </button>
        <button
          type="button"
          role="tab"
          data-testid="metrics-table-tab"
          aria-selected={tab === "table"}
          class={tab === "table" ? "active" : ""}
          onClick={() => setParams({ tab: "table" })}
        >
          Table
        </button>
        {tab === "graph" && (
          <span class="metrics-options">
            <label title="step between points, seconds (auto: fitted to the chart width)">
              step{" "}
              <select
                aria-label="step"
                value={stepParam > 0 ? String(stepParam) : ""}
                onChange={(e) => setParams({ step: (e.target as HTMLSelectElement).value })}
              >
                <option value="">auto ({stepS}s)</option>
                {[5, 15, 30, 60, 300, 900, 3600].map((s) => (
                  <option key={s} value={String(s)}>
                    {s}s
                  </option>
                ))}
              </select>
            </label>
            <label>
              <input
                type="checkbox"
                checked={showExemplars}
                onChange={(e) => setParams({ exemplars: (e.target as HTMLInputElement).checked ? undefined : "0" })}
              />{" "}
              exemplars
            </label>
          </span>
        )}
        <span class="metrics-status muted">
          {tab === "graph" && graph.loading && "querying…"}
          {tab === "graph" &&
            !graph.loading &&
            graph.series &&
            `${graph.series.length} series · step ${graph.stepS}s · ${Math.round(graph.elapsedMs ?? 0)} ms`}
        </span>
      </div>

      <div ref={area} class="metrics-body">
        {!expr ? (
          <MetricBrowser onPick={(query) => setParams({ expr: query })} />
        ) : tab === "table" ? (
          <InstantTable expr={expr} time={range.end} tick={tick} />
        ) : (
          <>
            {graph.error && <ErrorBox error={graph.error} />}
            {graph.warnings && graph.warnings.length > 0 && (
              <div class="metrics-warning">{graph.warnings.join("\n")}</div>
            )}
            {graph.series && graph.series.length === 0 && !graph.error && (
              <div class="metrics-empty muted">The query returned no series in this time range.</div>
            )}
            {graph.series && graph.series.length > 0 && !graph.error && (
              <Chart
                series={graph.series}
                start={graph.start ?? range.start}
                end={graph.end ?? range.end}
                stepS={graph.stepS ?? stepS}
                exemplars={exemplars}
                onZoom={(from, to) => setParams({ from: String(from), to: String(to) })}
              />
            )}
          </>
        )}
      </div>
    </section>
  );
}

/** With no expression: the metric names with type and help, to start from. */
function MetricBrowser({ onPick }: { onPick: (name: string) => void }) {
  const [names, setNames] = useState<string[]>();
  const [meta, setMeta] = useState<Record<string, MetricMeta>>({});
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string>();
  useEffect(() => {
    const controller = new AbortController();
    metricNames(controller.signal)
      .then(setNames)
      .catch((e) => !isAbort(e) && setError(String(e.message ?? e)));
    metadata(controller.signal)
      .then(setMeta)
      .catch(() => undefined);
    return () => controller.abort();
  }, []);
  const needle = filter.toLowerCase();
  const shown = (names ?? []).filter((n) => n.toLowerCase().includes(needle));
  return (
    <div class="metric-browser">
      <div class="metric-browser-head">
        <b>Metrics</b>
        <input
          type="search"
          aria-label="filter metrics"
          placeholder="filter metric names"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
        />
        <span class="muted">{names ? `${shown.length} of ${names.length}` : "loading…"} · pick one to graph it, or type PromQL above</span>
      </div>
      {error && <ErrorBox error={{ message: error }} />}
      <table class="metric-browser-table">
        <tbody>
          {shown.slice(0, 400).map((name) => (
            <tr key={name}>
              <td>
                <button
                  type="button"
                  class="link-button mono"
                  title={starterQuery(name, meta[name]?.type)}
                  onClick={() => onPick(starterQuery(name, meta[name]?.type))}
                >
                  {name}
                </button>
              </td>
              <td class="muted">{meta[name]?.type}</td>
              <td class="muted">{meta[name]?.help}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
