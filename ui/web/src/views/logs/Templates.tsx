// The templates tab: log lines grouped into patterns with their counts over the range,
// a sparkline, and what changed against the window of the same length before it.
import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { isAbort } from "../../api";
import type { TimeRange } from "../../app/time";
import { patterns as fetchPatterns, type Pattern, type PatternChange } from "./api";

interface Props {
  service: string;
  range: TimeRange;
  tick: number;
  /** Searches the lines of a template. */
  onShow: (pattern: Pattern) => void;
}

type Loaded = { patterns: Pattern[]; changes: Map<string, PatternChange> };

export function Templates({ service, range, tick, onShow }: Props) {
  const [state, setState] = useState<{ loading: boolean; error?: string; data?: Loaded }>({ loading: true });
  const [filter, setFilter] = useState("");
  const [onlyChanged, setOnlyChanged] = useState(false);

  // Mining all services reads every line of the range: only on request.
  const [all, setAll] = useState(false);
  const wanted = !!service || all;

  useEffect(() => {
    if (!wanted) {
      setState({ loading: false });
      return;
    }
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    fetchPatterns(service, range.start, range.end, controller.signal)
      .then(({ patterns, changes }) => {
        const byKey = new Map(changes.map((c) => [`${c.service}\u0000${c.template}`, c]));
        setState({ loading: false, data: { patterns, changes: byKey } });
      })
      .catch((error) => {
        if (!isAbort(error)) setState({ loading: false, error: String(error.message ?? error) });
      });
    return () => controller.abort();
  }, [service, range.start, range.end, tick, wanted]);

  // Mining reads every line of the range (twice, with the baseline): show that it runs.
  const [elapsed, setElapsed] = useState(0);
  useEffect(() => {
    if (!state.loading) return;
    const started = Date.now();
    setElapsed(0);
    const timer = window.setInterval(() => setElapsed(Math.round((Date.now() - started) / 1000)), 1000);
    return () => window.clearInterval(timer);
  }, [state.loading]);

  const data = state.data;
  const needle = filter.trim().toLowerCase();
  const rows = (data?.patterns ?? []).filter((p) => {
    if (needle && !p.template.toLowerCase().includes(needle) && !p.service.toLowerCase().includes(needle)) return false;
    if (onlyChanged && !data?.changes.has(`${p.service}\u0000${p.template}`)) return false;
    return true;
  });
  const startNs = range.start * 1e6;
  const endNs = range.end * 1e6;

  return (
    <section class="log-templates" data-testid="log-templates">
      <div class="templates-bar">
        <input
          type="search"
          placeholder="filter templates"
          aria-label="filter templates"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
        />
        <label>
          <input type="checkbox" checked={onlyChanged} onChange={(e) => setOnlyChanged((e.target as HTMLInputElement).checked)} /> only new or changed
        </label>
        <span class="muted">
          {state.loading
            ? `mining templates from every line of the range and of the window before it${service ? "" : " (pick a service to make it faster)"}… ${elapsed}s`
            : data
              ? `${rows.length} of ${data.patterns.length} templates${service ? ` of ${service}` : ""}, compared with the previous ${formatSpan(range.end - range.start)}`
              : ""}
        </span>
      </div>
      {!wanted && (
        <div class="templates-prompt">
          <p>
            Templates group the lines of a service by their fixed text. Pick a service above, or mine every service's lines of
            this range (slower on long ranges).
          </p>
          <button type="button" class="primary" data-testid="log-templates-all" onClick={() => setAll(true)}>
            Mine all services
          </button>
        </div>
      )}
      {state.error && <div class="error panel-error">{state.error}</div>}
      {data && (
        <table class="templates-table">
          <thead>
            <tr>
              <th>count</th>
              <th>over time</th>
              <th>change</th>
              <th>service</th>
              <th>template</th>
            </tr>
          </thead>
          <tbody>
            {rows.slice(0, 500).map((p) => {
              const change = data.changes.get(`${p.service}\u0000${p.template}`);
              return (
                <tr key={`${p.service}/${p.template}`} data-testid="log-template">
                  <td class="num">{p.total.toLocaleString()}</td>
                  <td>
                    <Sparkline buckets={p.buckets} startNs={startNs} endNs={endNs} />
                  </td>
                  <td>{change && <ChangeBadge change={change} />}</td>
                  <td class="templates-service">{p.service}</td>
                  <td class="templates-template">
                    <button type="button" class="link-button" title={`show lines like: ${p.sample}`} onClick={() => onShow(p)}>
                      <Template text={p.template} />
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {data && data.patterns.length === 0 && <p class="muted">No log lines in this range.</p>}
      {data && rows.length > 500 && <p class="muted">Showing the 500 biggest templates; filter to narrow down.</p>}
      {data && [...data.changes.values()].some((c) => c.kind === "gone") && (
        <Gone changes={[...data.changes.values()].filter((c) => c.kind === "gone")} />
      )}
    </section>
  );
}

function Gone({ changes }: { changes: PatternChange[] }) {
  return (
    <details class="templates-gone">
      <summary>{changes.length} templates seen before this range and not in it</summary>
      <ul>
        {changes.slice(0, 100).map((c) => (
          <li key={`${c.service}/${c.template}`}>
            <span class="templates-service">{c.service}</span> <Template text={c.template} />{" "}
            <span class="muted">({c.baseline_count} before)</span>
          </li>
        ))}
      </ul>
    </details>
  );
}

function ChangeBadge({ change }: { change: PatternChange }) {
  switch (change.kind) {
    case "new":
      return <span class="badge badge-new" title={`not seen in the previous window; ${change.incident_count} lines now`}>new</span>;
    case "increased":
      return (
        <span class="badge badge-up" title={`${change.baseline_count} lines before, ${change.incident_count} now`}>
          up {formatRatio(change.ratio)}×
        </span>
      );
    case "decreased":
      return (
        <span class="badge badge-down" title={`${change.baseline_count} lines before, ${change.incident_count} now`}>
          down {formatRatio(change.ratio ? 1 / change.ratio : null)}×
        </span>
      );
    default:
      return null;
  }
}

function formatRatio(ratio: number | null): string {
  if (ratio === null || !Number.isFinite(ratio)) return "∞";
  return ratio >= 10 ? String(Math.round(ratio)) : ratio.toFixed(1);
}

function Template({ text }: { text: string }) {
  const parts = text.split("<_>");
  return (
    <code>
      {parts.map((part, i) => (
        <Fragment key={i}>
          {part}
          {i < parts.length - 1 && <span class="wildcard">&lt;_&gt;</span>}
        </Fragment>
      ))}
    </code>
  );
}

/** A tiny bar sparkline of a template's buckets across the range, scaled to its own peak. */
function Sparkline({ buckets, startNs, endNs }: { buckets: [number, number][]; startNs: number; endNs: number }) {
  const max = Math.max(1, ...buckets.map(([, c]) => c));
  const width = 120;
  const height = 22;
  const span = Math.max(1, endNs - startNs);
  const bars = buckets.map(([t, c]) => {
    const x = Math.max(0, Math.min(width - 1, ((t - startNs) / span) * width));
    const h = Math.max(1, (c / max) * height);
    return `M${x.toFixed(1)} ${height}v${-h.toFixed(1)}`;
  });
  return (
    <svg class="sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`} aria-hidden="true">
      <path d={bars.join("")} stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

function formatSpan(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} d`;
}
