// Hits over time as stacked bars by level; dragging across the chart zooms the time
// range (the shell's `from`/`to`).
import uPlot from "uplot";
import { useMemo, useRef } from "preact/hooks";
import { AXIS_STYLE, formatValue, UPlot } from "../metrics/uplot";
import { type HistogramData, SPLIT_LIMIT } from "./api";

/** Bar colours per level (and `other`/`all` for the rest). */
export const LEVEL_COLOURS: Record<string, string> = {
  fatal: "#ff4d8d",
  error: "#f85149",
  warn: "#d29922",
  info: "#4c9aff",
  debug: "#6e7681",
  trace: "#484f58",
  other: "#4c9aff",
  all: "#4c9aff",
};

interface Props {
  data: HistogramData;
  stepS: number;
  onZoom: (startMs: number, endMs: number) => void;
}

export function Histogram({ data, stepS, onZoom }: Props) {
  const names = data.series.map((s) => s.name).join(",");
  const zoom = useRef(onZoom);
  zoom.current = onZoom;
  // Stacked bars, the first level at the bottom: draw the cumulative sums tallest first,
  // each coloured as the level it ends with, so each shorter one paints over the last.
  const aligned = useMemo<uPlot.AlignedData>(() => {
    const cumulative: number[][] = [];
    let running = new Array(data.times.length).fill(0);
    for (const series of data.series) {
      running = running.map((v, i) => v + (series.counts[i] ?? 0));
      cumulative.push(running);
    }
    return [data.times.map((t) => t + stepS / 2), ...cumulative.reverse()];
  }, [data, stepS]);

  const options = useMemo(() => {
    const bars = uPlot.paths.bars?.({ size: [0.9, 40], align: 0 });
    const series = data.series;
    return (width: number): uPlot.Options => ({
      width,
      height: 110,
      legend: { show: false },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        points: { show: false },
      },
      select: { show: true, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.05] } },
      axes: [
        { ...AXIS_STYLE, size: 28 },
        { ...AXIS_STYLE, size: 44, values: (_u, values) => values.map((v) => formatValue(v)), ticks: { show: false } },
      ],
      series: [
        {},
        ...[...series].reverse().map((s) => ({
          label: s.name,
          fill: LEVEL_COLOURS[s.name] ?? LEVEL_COLOURS.other,
          stroke: LEVEL_COLOURS[s.name] ?? LEVEL_COLOURS.other,
          width: 0,
          paths: bars,
          points: { show: false },
        })),
      ],
      hooks: {
        setSelect: [
          (u: uPlot) => {
            if (u.select.width < 3) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoom.current(Math.round(from * 1000), Math.round(to * 1000));
          },
        ],
      },
    });
    // Rebuild only when the shape of the series changes; data updates go through setData.
  }, [names]);

  return (
    <div class="log-histogram-wrap">
      <UPlot options={options} data={aligned} class="log-histogram" testid="log-histogram" />
      <div class="log-histogram-legend">
        <span>
          {data.total.toLocaleString()} {data.total === 1 ? "line" : "lines"}
        </span>
        {data.series.length > 1 &&
          data.series.map((s) => (
            <span key={s.name} class="legend-item">
              <i style={{ background: LEVEL_COLOURS[s.name] ?? LEVEL_COLOURS.other }} />
              {s.name} {s.counts.reduce((a, b) => a + b, 0).toLocaleString()}
            </span>
          ))}
        {data.unsplit && (
          <span class="muted" title="the split by level reads every line; narrow the search or the time range to see it">
            levels shown above {SPLIT_LIMIT.toLocaleString()} lines only with a level filter
          </span>
        )}
        <span class="muted">drag to zoom</span>
      </div>
    </div>
  );
}
