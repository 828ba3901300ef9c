// A uPlot chart as a Preact component, shared by the metrics chart and the log
// histogram: created once per `options` identity, data swapped in place, resized with
// its container.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useLayoutEffect, useRef } from "preact/hooks";

export interface UPlotProps {
  /** Builds the options for a width (CSS px); a new function recreates the chart. */
  options: (width: number) => uPlot.Options;
  data: uPlot.AlignedData;
  /** Called with the chart after creation (and `null` on destruction). */
  onChart?: (chart: uPlot | null) => void;
  class?: string;
  testid?: string;
}

export function UPlot({ options, data, onChart, class: className, testid }: UPlotProps) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const latest = useRef(data);
  latest.current = data;

  useLayoutEffect(() => {
    const element = box.current;
    if (!element) return;
    const width = Math.max(200, element.clientWidth);
    const plot = new uPlot(options(width), latest.current, element);
    chart.current = plot;
    onChart?.(plot);
    let frame = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        const w = Math.max(200, element.clientWidth);
        if (Math.abs(w - plot.width) > 1) plot.setSize({ width: w, height: plot.height });
      });
    });
    observer.observe(element);
    return () => {
      cancelAnimationFrame(frame);
      observer.disconnect();
      onChart?.(null);
      plot.destroy();
      chart.current = null;
    };
    // Only a new options function rebuilds the chart; onChart belongs to it.
  }, [options]);

  useEffect(() => {
    if (chart.current && chart.current.data !== data) chart.current.setData(data);
  }, [data]);

  return <div ref={box} class={className} data-testid={testid} />;
}

/** Theme colours for axes and grids on the dark background. */
export const AXIS_STYLE: Partial<uPlot.Axis> = {
  stroke: "#8a94a6",
  grid: { stroke: "#2b313b", width: 1 },
  ticks: { stroke: "#2b313b", width: 1 },
};

/** A palette that reads well on the dark theme, repeated for many series. */
export const PALETTE = [
  "#4c9aff",
  "#3fb950",
  "#d29922",
  "#f85149",
  "#a371f7",
  "#39c5cf",
  "#ff7b72",
  "#e3b341",
  "#56d364",
  "#79c0ff",
  "#d2a8ff",
  "#ffa657",
];

/** Formats a number for axes and legends: 3 significant digits, SI suffixes. */
export function formatValue(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  const abs = Math.abs(value);
  if (abs === 0) return "0";
  const units: [number, string][] = [
    [1e12, "T"],
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [scale, suffix] of units) {
    if (abs >= scale) return `${trim(value / scale)}${suffix}`;
  }
  if (abs >= 1) return trim(value);
  if (abs >= 1e-3) return trim(value);
  return value.toExponential(2);
}

function trim(value: number): string {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return String(Number(value.toFixed(digits)));
}
