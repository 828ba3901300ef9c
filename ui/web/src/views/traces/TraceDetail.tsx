// One trace: the waterfall (spans by depth, service colours, errors marked, the
// critical path underlined) and the selected span's details with links to its logs
// and its service's metrics. URL state: `trace`, `span`.
import { useEffect, useRef } from "preact/hooks";
import { navigate, setParams } from "../../app/router";
import { formatDuration, formatTime } from "../../app/time";
import type { ViewProps } from "../../app/view";
import { Link, Status } from "../../components/Link";
import { serviceColor } from "../../components/colors";
import { logsHref, metricsHref, serviceCallsPromQL } from "../../components/links";
import { useAsync } from "../../components/useAsync";
import { loadTrace, type SpanView, type TraceView } from "./trace";

/** Most rows drawn; a bigger trace says how many were left out. */
const MAX_ROWS = 5_000;

export function TraceDetail({ params }: ViewProps) {
  const traceId = params.get("trace") ?? "";
  const trace = useAsync((signal) => loadTrace(traceId, signal), [traceId]);
  const spanId = params.get("span");
  const data = trace.data;
  const selected = data?.spans.find((s) => s.spanId === spanId);
  return (
    <div class="trace-detail">
      <div class="toolbar">
        <button type="button" onClick={() => navigate("traces", searchParams(params))}>
          ← results
        </button>
        <h2 class="mono">{traceId}</h2>
        {data && (
          <span class="muted">
            {formatTime(data.startUs / 1000)} · {formatDuration((data.endUs - data.startUs) / 1000)} · {data.spans.length} spans ·{" "}
            {data.services.length} services ·{" "}
            <span class={data.errors ? "error" : ""}>{data.errors} errors</span>
          </span>
        )}
        {data && (
          <Link href={logsHref({ trace: traceId }, around(data.startUs, data.endUs))}>Logs of this trace</Link>
        )}
      </div>
      <Status loading={trace.loading && !data} error={trace.error} />
      {data && (
        <div class="trace-split">
          <Waterfall trace={data} selected={spanId} />
          <aside class="span-side">
            {selected ? <SpanDetails span={selected} trace={data} /> : <p class="muted">Select a span (click, or Enter on a focused row).</p>}
          </aside>
        </div>
      )}
    </div>
  );
}

/** The search parameters to go back to the results. */
function searchParams(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  params.forEach((value, key) => {
    if (key !== "trace" && key !== "span" && key !== "from" && key !== "to" && key !== "refresh") out[key] = value;
  });
  return out;
}

/** A link range around a span or trace: a minute either side, epoch milliseconds. */
function around(startUs: number, endUs: number, marginMs = 60_000) {
  return { from: Math.floor(startUs / 1000 - marginMs), to: Math.ceil(endUs / 1000 + marginMs) };
}

function Waterfall({ trace, selected }: { trace: TraceView; selected: string | null }) {
  const total = Math.max(1, trace.endUs - trace.startUs);
  const rows = trace.spans.slice(0, MAX_ROWS);
  const selectedRow = useRef<HTMLDivElement>(null);
  useEffect(() => {
    selectedRow.current?.scrollIntoView({ block: "nearest" });
  }, [trace]);
  const pick = (span: SpanView) => setParams({ span: span.spanId }, { replace: true });
  const keys = (index: number) => (event: KeyboardEvent) => {
    const target = event.currentTarget as HTMLElement;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      pick(rows[index]);
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      (target.nextElementSibling as HTMLElement | null)?.focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      (target.previousElementSibling as HTMLElement | null)?.focus();
    }
  };
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <div class="waterfall" data-testid="waterfall" data-spans={trace.spans.length}>
      <div class="wf-head">
        <div class="wf-name">service · operation</div>
        <div class="wf-time">
          {ticks.map((t) => (
            <span key={t} style={{ left: `${t * 100}%` }}>
              {formatDuration((t * total) / 1000)}
            </span>
          ))}
        </div>
      </div>
      <div class="wf-rows" role="list">
        {rows.map((span, i) => {
          const left = ((span.startUs - trace.startUs) / total) * 100;
          const width = Math.max(0.15, ((span.endUs - span.startUs) / total) * 100);
          const isSelected = span.spanId === selected;
          return (
            <div
              key={span.spanId}
              role="listitem"
              tabIndex={0}
              ref={isSelected ? selectedRow : undefined}
              class={`wf-row${isSelected ? " selected" : ""}${span.error ? " error" : ""}`}
              data-testid="span-row"
              data-span={span.spanId}
              data-service={span.service}
              data-error={span.error ? "true" : "false"}
              data-critical={span.critical ? "true" : "false"}
              aria-selected={isSelected}
              onClick={() => pick(span)}
              onKeyDown={keys(i)}
            >
              <div class="wf-name" style={{ paddingLeft: `${4 + span.depth * 14}px` }} title={`${span.service} ${span.name}`}>
                <i class="dot" style={{ background: serviceColor(span.service) }} />
                <span class="svc">{span.service}</span> <span>{span.name}</span>
                {span.error && (
                  <span class="err-mark" title={span.statusMessage ?? "error"} aria-label="error">
                    ⚠
                  </span>
                )}
              </div>
              <div class="wf-time">
                <div
                  class={`wf-bar${span.critical ? " critical" : ""}`}
                  style={{ left: `${left}%`, width: `${width}%`, background: serviceColor(span.service) }}
                />
                {/* A bar that reaches the right edge carries its duration inside its end,
                    where there is no room after it. */}
                {left + width > 85 ? (
                  <span class="wf-dur inside" style={{ right: `${Math.max(100 - left - width, 0)}%` }}>
                    {formatDuration((span.endUs - span.startUs) / 1000)}
                  </span>
                ) : (
                  <span class="wf-dur" style={{ left: `${left + width}%` }}>
                    {formatDuration((span.endUs - span.startUs) / 1000)}
                  </span>
                )}
              </div>
            </div>
          );
        })}
      </div>
      {trace.spans.length > MAX_ROWS && <p class="muted">{trace.spans.length - MAX_ROWS} more spans not drawn.</p>}
      <p class="muted small legend-line">
        <span class="critical-swatch" /> critical path · <span class="error">⚠</span> failed span
      </p>
    </div>
  );
}

const STATUS = ["unset", "ok", "error"];

function SpanDetails({ span, trace }: { span: SpanView; trace: TraceView }) {
  const logRange = around(span.startUs, span.endUs);
  const metricRange = around(span.startUs, span.endUs, 30 * 60_000);
  return (
    <section class="panel span-details" aria-label="span" data-testid="span-details" data-span={span.spanId}>
      <h3>
        <i class="dot" style={{ background: serviceColor(span.service) }} />
        {span.service} · {span.name}
      </h3>
      <ul class="links">
        <li>
          <Link href={logsHref({ trace: trace.traceId, span: span.spanId }, logRange)} testid="span-logs-link">
            Log lines of this span
          </Link>
        </li>
        <li>
          <Link href={metricsHref(serviceCallsPromQL(span.service), metricRange)} testid="span-metrics-link">
            {span.service} request rate
          </Link>
        </li>
      </ul>
      <table class="kv">
        <tbody>
          <tr><td>span id</td><td class="mono">{span.spanId}</td></tr>
          {span.parentId && <tr><td>parent</td><td class="mono">{span.parentId}</td></tr>}
          <tr><td>kind</td><td>{span.kind}</td></tr>
          <tr><td>start</td><td>{formatTime(span.startUs / 1000)} (+{formatDuration((span.startUs - trace.startUs) / 1000)})</td></tr>
          <tr><td>duration</td><td>{formatDuration((span.endUs - span.startUs) / 1000)}</td></tr>
          <tr>
            <td>status</td>
            <td class={span.error ? "error" : ""}>
              {STATUS[span.statusCode] ?? span.statusCode}
              {span.statusMessage ? `: ${span.statusMessage}` : ""}
            </td>
          </tr>
          <tr><td>critical path</td><td>{span.critical ? "yes" : "no"}</td></tr>
        </tbody>
      </table>
      <Attributes title="Attributes" list={span.attributes} />
      {span.events.length > 0 && (
        <>
          <h4>Events</h4>
          <ul class="events">
            {span.events.map((e, i) => (
              <li key={i}>
                <span class="muted">+{formatDuration((e.timeUs - span.startUs) / 1000)}</span> <strong>{e.name}</strong>
                {e.attributes.length > 0 && <Attributes list={e.attributes} />}
              </li>
            ))}
          </ul>
        </>
      )}
      <Attributes title="Resource" list={span.resource} />
    </section>
  );
}

function Attributes({ title, list }: { title?: string; list: [string, string][] }) {
  if (list.length === 0) return null;
  return (
    <>
      {title && <h4>{title}</h4>}
      <table class="kv attrs">
        <tbody>
          {list.map(([k, v]) => (
            <tr key={k}>
              <td class="mono">{k}</td>
              <td class="mono">{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
