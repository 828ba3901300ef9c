// A scatter plot of points over time (uPlot): x is time, y a value; points in two
// series (normal and flagged, e.g. traces with errors). Clicking a point picks it.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef } from "preact/hooks";

export interface ScatterPoint {
  /** Epoch milliseconds. */
  time: number;
  value: number;
  flagged: boolean;
}

export interface ScatterProps {
  points: ScatterPoint[];
  /** Unit shown on the y axis. */
  valueLabel: string;
  formatValue: (value: number) => string;
  onPick: (index: number) => void;
  height?: number;
  testid?: string;
}

export function Scatter({ points, valueLabel, formatValue, onPick, height = 200, testid }: ScatterProps) {
  const box = useRef<HTMLDivElement>(null);
  const pick = useRef(onPick);
  pick.current = onPick;

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    // uPlot wants ascending x; keep each point's index to answer picks.
    const order = points.map((_, i) => i).sort((a, b) => points[a].time - points[b].time);
    const xs = order.map((i) => points[i].time / 1000);
    const normal = order.map((i) => (points[i].flagged ? null : points[i].value));
    const flagged = order.map((i) => (points[i].flagged ? points[i].value : null));
    const dots = (color: string) => ({
      stroke: color,
      fill: color,
      paths: () => null,
      points: { show: true, size: 7, stroke: color, fill: color },
    });
    const plot = new uPlot(
      {
        width: Math.max(300, element.clientWidth),
        height,
        cursor: { drag: { x: false, y: false }, points: { size: 9 } },
        legend: { show: false },
        scales: { x: { time: true } },
        axes: [
          { stroke: "#8a94a6", grid: { stroke: "#2b313b" } },
          {
            stroke: "#8a94a6",
            grid: { stroke: "#2b313b" },
            label: valueLabel,
            size: 70,
            values: (_u, ticks) => ticks.map((t) => formatValue(t)),
          },
        ],
        series: [{}, { label: "ok", ...dots("#4c9aff") }, { label: "error", ...dots("#f85149") }],
      },
      [xs, normal, flagged] as uPlot.AlignedData,
      element,
    );
    const click = () => {
      const idx = plot.cursor.idx;
      if (idx !== null && idx !== undefined && order[idx] !== undefined) pick.current(order[idx]);
    };
    plot.over.addEventListener("click", click);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(300, element.clientWidth), height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.over.removeEventListener("click", click);
      plot.destroy();
    };
  }, [points, height, valueLabel]);

  return <div class="scatter" ref={box} data-testid={testid} data-points={points.length} />;
}
