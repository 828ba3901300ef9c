// The time-series chart of a range query: one line per series, a legend that shows the
// values under the cursor and toggles series (click; Ctrl/⌘-click shows only that one),
// and exemplar dots that open their trace.
import uPlot from "uplot";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { formatTime } from "../../app/time";
import { type Exemplar, exemplarTrace, type RangeSeries, sampleValue, seriesName } from "./api";
import { openTrace, traceHref } from "../logs/links";
import { AXIS_STYLE, formatValue, PALETTE, UPlot } from "./uplot";

interface Props {
  series: RangeSeries[];
  start: number;
  end: number;
  stepS: number;
  exemplars: Exemplar[];
  onZoom: (startMs: number, endMs: number) => void;
}

/** Most series drawn; the rest are listed as left out. */
export const MAX_SERIES = 200;

export function Chart({ series, start, end, stepS, exemplars, onZoom }: Props) {
  const shown = series.slice(0, MAX_SERIES);
  const [hidden, setHidden] = useState<Set<number>>(() => new Set());
  const [cursor, setCursor] = useState<number | null>(null);
  const chart = useRef<uPlot | null>(null);
  const zoom = useRef(onZoom);
  zoom.current = onZoom;
  const dots = useRef<Exemplar[]>(exemplars);
  dots.current = exemplars;

  // Align every series on the query's step grid (missing points stay gaps).
  const data = useMemo<uPlot.AlignedData>(() => {
    const times: number[] = [];
    for (let t = start / 1000; t <= end / 1000 + 1e-9; t += stepS) times.push(Math.round(t * 1000) / 1000);
    const index = new Map(times.map((t, i) => [Math.round(t * 1000), i]));
    const columns = shown.map((s) => {
      const column: (number | null)[] = new Array(times.length).fill(null);
      for (const [t, v] of s.values) {
        let i = index.get(Math.round(t * 1000));
        if (i === undefined) {
          i = times.length;
          // A point off the grid (another step): keep it at its own time.
          times.push(t);
          column.push(null);
          index.set(Math.round(t * 1000), i);
        }
        const value = sampleValue(v);
        column[i] = Number.isFinite(value) ? value : null;
      }
      return column;
    });
    // Off-grid points were appended: re-sort all columns by time if needed.
    const sorted = times.every((t, i) => i === 0 || times[i - 1] < t);
    if (sorted) return [times, ...columns.map((c) => c.concat(new Array(times.length - c.length).fill(null)))];
    const order = times.map((_, i) => i).sort((a, b) => times[a] - times[b]);
    return [order.map((i) => times[i]), ...columns.map((c) => order.map((i) => c[i] ?? null))];
  }, [series, start, end, stepS]);

  const labels = useMemo(() => shown.map((s) => seriesName(s.metric)), [series]);
  // A new set of series starts with every series shown.
  const labelKey = labels.join("\u0000");
  useEffect(() => setHidden(new Set()), [labelKey]);
  useEffect(() => {
    const u = chart.current;
    if (!u) return;
    const layer = u.over.querySelector<HTMLDivElement>(".exemplar-layer");
    if (layer) delete layer.dataset.key;
    // Re-range y for the exemplars; the draw hook then places them.
    u.setData(u.data);
  }, [exemplars]);

  const options = useMemo(
    () => (width: number): uPlot.Options => ({
      width,
      height: 340,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, focus: { prox: 16 } },
      focus: { alpha: 0.35 },
      scales: {
        x: { time: true },
        // The y range covers the exemplars too (they would sit on the edge otherwise).
        y: {
          range: (u: uPlot, min: number, max: number) => {
            let lo = min;
            let hi = max;
            const xMin = u.scales.x.min ?? -Infinity;
            const xMax = u.scales.x.max ?? Infinity;
            for (const e of dots.current) {
              if (e.time < xMin || e.time > xMax || !Number.isFinite(e.value)) continue;
              lo = Math.min(lo, e.value);
              hi = Math.max(hi, e.value);
            }
            if (lo === null || hi === null || !Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
            return uPlot.rangeNum(lo, hi, 0.1, true);
          },
        },
      },
      axes: [
        { ...AXIS_STYLE },
        { ...AXIS_STYLE, size: 60, values: (_u, values) => values.map((v) => formatValue(v)) },
      ],
      series: [
        {},
        ...labels.map((label, i) => ({
          label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          points: { show: false },
          spanGaps: false,
        })),
      ],
      hooks: {
        setCursor: [(u: uPlot) => setCursor(u.cursor.idx ?? null)],
        setSelect: [
          (u: uPlot) => {
            if (u.select.width < 3) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoom.current(Math.round(from * 1000), Math.round(to * 1000));
          },
        ],
        draw: [(u: uPlot) => placeExemplars(u, dots.current)],
      },
    }),
    // Series toggles go through setSeries; a new set of series rebuilds the chart.
    [labelKey],
  );

  const toggle = (i: number, only: boolean) => {
    const next = new Set(hidden);
    if (only) {
      const alone = hidden.size === shown.length - 1 && !hidden.has(i);
      shown.forEach((_, j) => (alone || j === i ? next.delete(j) : next.add(j)));
    } else if (next.has(i)) next.delete(i);
    else next.add(i);
    setHidden(next);
    const u = chart.current;
    if (u) shown.forEach((_, j) => u.setSeries(j + 1, { show: !next.has(j) }));
  };

  const idx = cursor;
  const times = data[0] as number[];
  return (
    <div class="metrics-chart-wrap">
      <div class="metrics-chart-area">
        <UPlot
          options={options}
          data={data}
          class="metrics-chart"
          testid="metrics-chart"
          onChart={(u) => {
            chart.current = u;
            if (u) placeExemplars(u, dots.current);
          }}
        />
      </div>
      <div class="metrics-legend" role="group" aria-label="series">
        <div class="legend-head muted">
          {idx !== null && times[idx] !== undefined ? formatTime(times[idx] * 1000) : "hover the chart for values"} ·{" "}
          {shown.length} series{series.length > shown.length ? ` (first ${MAX_SERIES} of ${series.length} drawn)` : ""}
          {exemplars.length > 0 && ` · ${exemplars.length} exemplars`} · click a series to hide it, Ctrl+click to show only it
        </div>
        {labels.map((label, i) => {
          const column = data[i + 1] as (number | null)[];
          const value = idx !== null ? column[idx] : lastValue(column);
          return (
            <button
              type="button"
              key={label}
              class={`legend-row${hidden.has(i) ? " off" : ""}`}
              data-testid="metrics-legend-item"
              aria-pressed={!hidden.has(i)}
              title={label}
              onClick={(e) => toggle(i, e.ctrlKey || e.metaKey)}
            >
              <i style={{ background: PALETTE[i % PALETTE.length] }} />
              <span class="legend-label">{label}</span>
              <span class="legend-value">{formatValue(value)}</span>
            </button>
          );
        })}
      </div>
    </div>
  );
}

function lastValue(column: (number | null)[]): number | null {
  for (let i = column.length - 1; i >= 0; i--) if (column[i] !== null) return column[i];
  return null;
}

/** Positions the exemplar dots (buttons in the plot overlay) for the current scales. */
function placeExemplars(u: uPlot, exemplars: Exemplar[]) {
  let layer = u.over.querySelector<HTMLDivElement>(".exemplar-layer");
  if (!layer) {
    layer = document.createElement("div");
    layer.className = "exemplar-layer";
    u.over.appendChild(layer);
  }
  const xMin = u.scales.x.min ?? 0;
  const xMax = u.scales.x.max ?? 0;
  const yMin = u.scales.y.min ?? 0;
  const yMax = u.scales.y.max ?? 0;
  const height = u.over.clientHeight;
  const key = `${exemplars.length}:${xMin}:${xMax}:${yMin}:${yMax}:${u.over.clientWidth}:${height}`;
  if (layer.dataset.key === key) return;
  layer.dataset.key = key;
  layer.replaceChildren();
  // Thousands of exemplars would hide the lines: keep the slowest (highest) one per
  // column of CELL px, which is the one worth opening.
  const CELL = 14;
  const best = new Map<number, { e: Exemplar; n: number }>();
  for (const e of exemplars) {
    if (e.time < xMin || e.time > xMax || !Number.isFinite(e.value)) continue;
    const cell = Math.floor(u.valToPos(e.time, "x") / CELL);
    const seen = best.get(cell);
    if (!seen) best.set(cell, { e, n: 1 });
    else {
      seen.n++;
      if (e.value > seen.e.value) seen.e = e;
    }
  }
  for (const { e, n } of best.values()) {
    const { trace, span } = exemplarTrace(e);
    const x = u.valToPos(e.time, "x");
    const inRange = e.value >= yMin && e.value <= yMax;
    const y = inRange ? u.valToPos(e.value, "y") : e.value > yMax ? 4 : height - 4;
    const dot = document.createElement("a");
    dot.className = `exemplar-dot${inRange ? "" : " clamped"}`;
    dot.dataset.testid = "exemplar-dot";
    dot.style.left = `${x}px`;
    dot.style.top = `${y}px`;
    const labels = Object.entries(e.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
    const more = n > 1 ? ` (the highest of ${n} here)` : "";
    dot.title = `exemplar ${formatValue(e.value)}${more} at ${formatTime(e.time * 1000)}\n${seriesName(e.series)}\n${labels}${trace ? "\nclick to open the trace" : ""}`;
    if (trace) {
      dot.href = traceHref(trace, span);
      dot.addEventListener("click", openTrace(trace, span));
    }
    layer.appendChild(dot);
  }
}
