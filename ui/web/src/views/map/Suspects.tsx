// The failing-hop panel: the analysis' ranked suspects and their evidence, each piece
// a link into the view that shows it (a trace, log lines, a metric series).
import { Link, Status } from "../../components/Link";
import {
  logsHref,
  metricsHref,
  seriesPromQL,
  serviceErrorLogQL,
  templateLogQL,
  traceHref,
  traceLinesLogQL,
  type LinkRange,
} from "../../components/links";
import { edgeId, type RcaReport, type Suspect } from "./model";

export interface SuspectsProps {
  report?: RcaReport;
  loading: boolean;
  error?: string;
  /** Where log evidence is looked at: the analysis window. */
  windowRange: LinkRange;
  /** Where metric evidence is looked at: window and baseline. */
  fullRange: LinkRange;
  onSelect: (selection: string) => void;
}

export function Suspects({ report, loading, error, windowRange, fullRange, onSelect }: SuspectsProps) {
  return (
    <section
      class="panel suspects"
      aria-label="failing hops"
      data-testid="suspects"
      data-state={error ? "error" : report && !loading ? "done" : "loading"}
    >
      <h2>
        Failing hops
        {report && (
          <span class="muted small">
            {" "}
            signals: {report.signals_used.join(", ") || "none"}
          </span>
        )}
      </h2>
      <Status loading={loading && !report} error={error} empty={report && report.suspects.length === 0 ? "No suspect hop in this window." : undefined} />
      <ol class="suspect-list">
        {report?.suspects.map((s) => (
          <SuspectCard key={s.rank} suspect={s} windowRange={windowRange} fullRange={fullRange} onSelect={onSelect} />
        ))}
      </ol>
    </section>
  );
}

function SuspectCard({
  suspect: s,
  windowRange,
  fullRange,
  onSelect,
}: {
  suspect: Suspect;
  windowRange: LinkRange;
  fullRange: LinkRange;
  onSelect: (selection: string) => void;
}) {
  const ev = s.evidence ?? {};
  const logs = ev.logs;
  const select = () => onSelect(s.caller ? `edge:${edgeId(s.caller, s.callee)}` : `node:${s.callee}`);
  return (
    <li
      class={`suspect kind-${s.kind}`}
      data-testid="suspect"
      data-rank={s.rank}
      data-service={s.service}
      data-callee={s.callee}
      data-caller={s.caller ?? ""}
    >
      <button type="button" class="suspect-head" onClick={select} title="show on the map">
        <span class="rank">#{s.rank}</span>
        <span class="hop">
          {s.caller ?? "(entry)"} → <strong>{s.callee}</strong>
        </span>
        <span class={`badge kind`}>{s.kind}</span>
        <span class="score" title="score">
          {s.score.toFixed(2)}
        </span>
      </button>
      <div class="suspect-meta muted">
        {s.operation && <span>operation <code>{s.operation}</code></span>}
        {s.instance && <span> on <code>{s.instance}</code></span>}
      </div>
      {ev.summary && <p class="summary">{ev.summary}</p>}
      {ev.example_trace_ids && ev.example_trace_ids.length > 0 && (
        <div class="evidence">
          <h3>Traces</h3>
          <ul>
            {ev.example_trace_ids.map((id) => (
              <li key={id}>
                <Link href={traceHref(id, fullRange)} testid="evidence-link" data={{ kind: "trace", trace: id }} class="mono">
                  {id}
                </Link>
              </li>
            ))}
          </ul>
        </div>
      )}
      {logs && (
        <div class="evidence">
          <h3>Logs</h3>
          <ul>
            <li>
              <Link href={logsHref({ query: serviceErrorLogQL(s.callee) }, windowRange)} testid="evidence-link" data={{ kind: "logs" }}>
                {s.callee} error lines
              </Link>{" "}
              <span class="muted">
                {logs.errors_window} in window, {logs.errors_baseline} in baseline
              </span>
            </li>
            {logs.new_templates.map((t) => (
              <li key={t.template}>
                <Link href={logsHref({ query: templateLogQL(s.callee, t.template) }, windowRange)} testid="evidence-link" data={{ kind: "logs" }} class="mono">
                  {t.template}
                </Link>{" "}
                <span class="muted">new template ×{t.count}</span>
              </li>
            ))}
            {logs.trace_lines.map((l, i) => (
              <li key={`${l.trace_id}-${i}`}>
                <Link href={logsHref({ query: traceLinesLogQL(l.service, l.trace_id) }, windowRange)} testid="evidence-link" data={{ kind: "logs", trace: l.trace_id }} class="mono" title={l.line}>
                  {l.service}: {l.line}
                </Link>
              </li>
            ))}
          </ul>
        </div>
      )}
      {ev.metrics && ev.metrics.length > 0 && (
        <div class="evidence">
          <h3>Metrics</h3>
          <ul>
            {ev.metrics.map((m) => (
              <li key={m.selector}>
                <Link href={metricsHref(seriesPromQL(m.selector), fullRange)} testid="evidence-link" data={{ kind: "metric" }} class="mono" title={m.selector}>
                  {m.selector}
                </Link>{" "}
                <span class="muted">
                  {m.family} z={m.z} ({fmt(m.baseline_median)} → {fmt(m.window)})
                </span>
              </li>
            ))}
          </ul>
        </div>
      )}
    </li>
  );
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2);
}
