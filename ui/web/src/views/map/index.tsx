// The service map (`/` and `/ui/map`): services and hops coloured by health against
// baseline, the failing-hop analysis' suspects highlighted, the suspects and their
// evidence beside the map. URL state: `window` (analysed length at the end of the
// range, e.g. `15m`), `sel` (`node:<service>` or `edge:<caller>-><callee>`).
import { useMemo } from "preact/hooks";
import { setParams } from "../../app/router";
import { formatDuration, formatTime } from "../../app/time";
import type { ViewProps } from "../../app/view";
import { Status } from "../../components/Link";
import { HEALTH_COLORS, type Health } from "../../components/colors";
import { useAsync } from "../../components/useAsync";
import type { LinkRange } from "../../components/links";
import { Details } from "./Details";
import { Graph } from "./Graph";
import { buildModel, byConcern, loadGraph, loadRca, splitRange, type MapModel, type ServiceGraph } from "./model";
import { Suspects } from "./Suspects";

const EMPTY: ServiceGraph = { nodes: [], edges: [] };
const WINDOW_CHOICES = ["", "5m", "10m", "15m", "30m", "1h", "6h"];

export function MapView({ params, range, tick }: ViewProps) {
  const windows = useMemo(() => splitRange(range, params.get("window")), [range, params.get("window")]);
  const key = [windows.window.start, windows.window.end, windows.baseline.start, tick];
  // The window's graph first (it draws the map), then its baseline and the analysis.
  const current = useAsync((signal) => loadGraph(windows.window.start, windows.window.end, signal), key, { coalesce: true });
  // They follow each new window graph and keep their last answer meanwhile, so live
  // refresh does not blank the colours or the suspects.
  const ready = current.data !== undefined;
  const baseline = useAsync(ready ? (signal) => loadGraph(windows.baseline.start, windows.baseline.end, signal) : null, [current.data], {
    coalesce: true,
  });
  const rca = useAsync(ready ? (signal) => loadRca(windows, signal) : null, [current.data], { coalesce: true });
  const suspects = rca.data?.suspects ?? [];
  const model: MapModel | undefined = useMemo(
    () => (current.data ? buildModel(current.data, baseline.data ?? EMPTY, suspects) : undefined),
    [current.data, baseline.data, rca.data],
  );
  const graphs = { loading: current.loading, error: current.error ?? baseline.error };
  const selection = params.get("sel");
  const select = (sel: string | null) => setParams({ sel: sel ?? undefined }, { replace: true });
  const windowRange: LinkRange = { from: Math.round(windows.window.start), to: Math.round(windows.window.end) };
  const fullRange: LinkRange = { from: range.from, to: range.to };

  return (
    <div class="map-layout">
      <section class="map-main">
        <div class="toolbar">
          <label>
            analysed window{" "}
            <select
              aria-label="analysed window"
              value={params.get("window") ?? ""}
              onChange={(e) => setParams({ window: (e.target as HTMLSelectElement).value })}
            >
              {WINDOW_CHOICES.map((w) => (
                <option key={w} value={w}>
                  {w ? `last ${w}` : `auto (last ${windows.label})`}
                </option>
              ))}
            </select>
          </label>
          <span class="muted small">
            {formatTime(windows.window.start)} → {formatTime(windows.window.end)} against the{" "}
            {formatDuration(windows.baseline.end - windows.baseline.start)} before
          </span>
          <Legend />
        </div>
        <Status loading={graphs.loading && !model} error={graphs.error} />
        {model && model.nodes.length === 0 && <p class="muted">No spans in this range: pick a wider time range.</p>}
        {model && <Graph model={model} selected={selection} onSelect={select} />}
        {model && <Hops model={model} selection={selection} onSelect={select} />}
      </section>
      <aside class="map-side">
        {model && selection && (
          <Details model={model} selection={selection} windowRange={windowRange} fullRange={fullRange} onClose={() => select(null)} />
        )}
        <Suspects report={rca.data} loading={rca.loading || !ready} error={rca.error} windowRange={windowRange} fullRange={fullRange} onSelect={select} />
      </aside>
    </div>
  );
}

function Legend() {
  const items: [Health, string][] = [
    ["ok", "healthy"],
    ["warn", "degraded"],
    ["error", "failing"],
    ["idle", "no traffic"],
  ];
  return (
    <span class="legend" aria-label="legend">
      {items.map(([h, label]) => (
        <span key={h}>
          <i style={{ background: HEALTH_COLORS[h] }} /> {label}
        </span>
      ))}
      <span>
        <i class="suspect-swatch" /> suspect
      </span>
    </span>
  );
}

const pct = (errors = 0, calls = 0) => (calls > 0 ? `${((100 * errors) / calls).toFixed(1)}%` : "–");
const ms = (value?: number) => (value === undefined ? "–" : formatDuration(value));

/** The map as rows: every service and hop, focusable, most worrying first. */
function Hops({ model, selection, onSelect }: { model: MapModel; selection: string | null; onSelect: (sel: string) => void }) {
  const nodes = [...model.nodes].sort((a, b) => byConcern(a, b) || a.id.localeCompare(b.id));
  const edges = [...model.edges].sort((a, b) => byConcern(a, b) || (b.window?.calls ?? 0) - (a.window?.calls ?? 0));
  const keyed = (sel: string) => (e: KeyboardEvent) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      onSelect(sel);
    }
  };
  return (
    <div class="hops">
      <div class="chips" aria-label="services">
        {nodes.map((n) => (
          <button
            type="button"
            key={n.id}
            class={`chip health-${n.health}${selection === `node:${n.id}` ? " selected" : ""}`}
            data-testid="map-node"
            data-service={n.id}
            data-health={n.health}
            data-suspect={n.suspect ? "true" : "false"}
            onClick={() => onSelect(`node:${n.id}`)}
          >
            <i style={{ background: HEALTH_COLORS[n.health] }} />
            {n.id}
          </button>
        ))}
      </div>
      <table class="grid hop-table">
        <thead>
          <tr>
            <th>hop</th>
            <th class="num">calls</th>
            <th class="num">errors</th>
            <th class="num">baseline</th>
            <th class="num">p95</th>
            <th class="num">baseline</th>
          </tr>
        </thead>
        <tbody>
          {edges.map((e) => (
            <tr
              key={e.id}
              tabIndex={0}
              class={`health-${e.health}${selection === `edge:${e.id}` ? " selected" : ""}`}
              data-testid="map-edge"
              data-caller={e.caller}
              data-callee={e.callee}
              data-health={e.health}
              data-suspect={e.suspect ? "true" : "false"}
              onClick={() => onSelect(`edge:${e.id}`)}
              onKeyDown={keyed(`edge:${e.id}`)}
            >
              <td>
                <i class="dot" style={{ background: HEALTH_COLORS[e.health] }} />
                {e.caller} → {e.callee}
                {e.suspect && <span class="badge suspect-badge">suspect</span>}
              </td>
              <td class="num">{e.window?.calls ?? 0}</td>
              <td class="num">{pct(e.window?.errors, e.window?.calls)}</td>
              <td class="num muted">{pct(e.baseline?.errors, e.baseline?.calls)}</td>
              <td class="num">{ms(e.window?.p95_ms)}</td>
              <td class="num muted">{ms(e.baseline?.p95_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
