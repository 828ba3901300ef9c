// The shell: navigation, the shared time picker with live refresh, and the current view.
import type { ComponentType } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { href, navigate, setParams, useRoute, VIEW_TITLES, VIEWS, type ViewName } from "./router";
import { formatTime, resolveRange } from "./time";
import type { ViewProps } from "./view";
import { MapView } from "../views/map";
import { TracesView } from "../views/traces";
import { LogsView } from "../views/logs";
import { MetricsView } from "../views/metrics";
import { SqlView } from "../views/sql";

const VIEW_COMPONENTS: Record<ViewName, ComponentType<ViewProps>> = {
  map: MapView,
  traces: TracesView,
  logs: LogsView,
  metrics: MetricsView,
  sql: SqlView,
};

const QUICK_RANGES = ["15m", "1h", "3h", "6h", "12h", "24h", "2d", "7d"];
const REFRESH_CHOICES = ["", "5s", "10s", "30s", "1m"];

export function App() {
  const route = useRoute();
  const [tick, setTick] = useState(0);
  const refresh = route.params.get("refresh") ?? "";
  // Re-resolve relative ranges on every tick so "now-15m" moves with the clock.
  // Only `from`/`to` and the tick move the range: other parameters (a selection) must
  // not re-resolve "now" and reload every panel.
  const from = route.params.get("from");
  const to = route.params.get("to");
  const range = useMemo(() => resolveRange(route.params), [from, to, tick]);

  useEffect(() => {
    const ms = { "5s": 5_000, "10s": 10_000, "30s": 30_000, "1m": 60_000 }[refresh];
    if (!ms) return;
    const timer = window.setInterval(() => setTick((t) => t + 1), ms);
    return () => window.clearInterval(timer);
  }, [refresh]);

  useEffect(() => {
    document.title = `${VIEW_TITLES[route.view]} · Sightline`;
  }, [route.view]);

  const View = VIEW_COMPONENTS[route.view];
  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href={href("map")} onClick={link("map")}>
          Sightline
        </a>
        <nav class="views" aria-label="views">
          {VIEWS.map((view) => (
            <a
              key={view}
              href={href(view, keepTime(route.params))}
              class={view === route.view ? "active" : ""}
              aria-current={view === route.view ? "page" : undefined}
              onClick={link(view)}
            >
              {VIEW_TITLES[view]}
            </a>
          ))}
        </nav>
        <TimePicker params={route.params} onRefresh={() => setTick((t) => t + 1)} />
      </header>
      <main class="view" data-view={route.view}>
        <View params={route.params} range={range} tick={tick} />
      </main>
    </div>
  );
}

function keepTime(params: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams();
  for (const key of ["from", "to", "refresh"]) {
    const value = params.get(key);
    if (value !== null) out.set(key, value);
  }
  return out;
}

function link(view: ViewName) {
  return (event: MouseEvent) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(view);
  };
}

/** Epoch milliseconds as local date and time (parsed back by `parseTime`). */
function readable(expr: string): string {
  return /^\d{10,16}$/.test(expr) ? formatTime(Number(expr)) : expr;
}

function TimePicker({ params, onRefresh }: { params: URLSearchParams; onRefresh: () => void }) {
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  const quick = to === "now" && from.startsWith("now-") ? from.slice(4) : "custom";
  const [custom, setCustom] = useState(quick === "custom");
  return (
    <div class="timepicker">
      <select
        aria-label="time range"
        value={custom ? "custom" : quick}
        onChange={(e) => {
          const value = (e.target as HTMLSelectElement).value;
          if (value === "custom") {
            setCustom(true);
            return;
          }
          setCustom(false);
          setParams({ from: `now-${value}`, to: "now" });
        }}
      >
        {QUICK_RANGES.map((r) => (
          <option key={r} value={r}>
            Last {r}
          </option>
        ))}
        <option value="custom">Custom…</option>
      </select>
      {(custom || quick === "custom") && (
        <form
          key={`${from}|${to}`}
          class="custom-range"
          onSubmit={(e) => {
            e.preventDefault();
            const form = e.target as HTMLFormElement;
            const data = new FormData(form);
            setParams({ from: String(data.get("from") ?? ""), to: String(data.get("to") ?? "") });
          }}
        >
          <input name="from" aria-label="from" defaultValue={readable(from)} size={17} />
          <span>→</span>
          <input name="to" aria-label="to" defaultValue={readable(to)} size={17} />
          <button type="submit">Apply</button>
        </form>
      )}
      <button type="button" title="refresh now" aria-label="refresh" onClick={onRefresh}>
        ⟳
      </button>
      <select
        aria-label="live refresh"
        value={params.get("refresh") ?? ""}
        onChange={(e) => setParams({ refresh: (e.target as HTMLSelectElement).value })}
      >
        {REFRESH_CHOICES.map((r) => (
          <option key={r} value={r}>
            {r ? `Live ${r}` : "Live off"}
          </option>
        ))}
      </select>
    </div>
  );
}
