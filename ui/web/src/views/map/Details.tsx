// What one service or hop did in the window against its baseline, with links to its
// traces, logs and metrics.
import { formatDuration } from "../../app/time";
import { Link } from "../../components/Link";
import {
  edgeErrorPromQL,
  logsHref,
  metricsHref,
  quote,
  serviceCallsPromQL,
  serviceErrorLogQL,
  serviceLogQL,
  traceSearchHref,
  type LinkRange,
} from "../../components/links";
import type { MapEdge, MapModel, MapNode } from "./model";

export interface DetailsProps {
  model: MapModel;
  selection: string;
  windowRange: LinkRange;
  fullRange: LinkRange;
  onClose: () => void;
}

export function Details({ model, selection, windowRange, fullRange, onClose }: DetailsProps) {
  const [type, id] = [selection.slice(0, selection.indexOf(":")), selection.slice(selection.indexOf(":") + 1)];
  const node = type === "node" ? model.nodes.find((n) => n.id === id) : undefined;
  const edge = type === "edge" ? model.edges.find((e) => e.id === id) : undefined;
  if (!node && !edge) return null;
  return (
    <section class="panel details" aria-label="selection" data-testid="map-details">
      <h2>
        {node ? node.id : `${edge!.caller} → ${edge!.callee}`}
        <button type="button" class="close" aria-label="close" onClick={onClose}>
          ×
        </button>
      </h2>
      {node && <NodeDetails node={node} model={model} windowRange={windowRange} fullRange={fullRange} />}
      {edge && <EdgeDetails edge={edge} windowRange={windowRange} fullRange={fullRange} />}
    </section>
  );
}

const pct = (errors: number, calls: number) => (calls > 0 ? `${((100 * errors) / calls).toFixed(1)}%` : "–");
const ms = (value?: number) => (value === undefined ? "–" : formatDuration(value));

function NodeDetails({ node, model, windowRange, fullRange }: { node: MapNode; model: MapModel; windowRange: LinkRange; fullRange: LinkRange }) {
  const w = node.window;
  const b = node.baseline;
  const incoming = model.edges.filter((e) => e.callee === node.id);
  const outgoing = model.edges.filter((e) => e.caller === node.id);
  const calls = incoming.reduce((sum, e) => sum + (e.window?.calls ?? 0), 0);
  const p95 = Math.max(0, ...incoming.map((e) => e.window?.p95_ms ?? 0));
  return (
    <>
      <table class="kv">
        <tbody>
          <tr><th></th><th>window</th><th>baseline</th></tr>
          <tr><td>spans</td><td>{w?.spans ?? 0}</td><td>{b?.spans ?? 0}</td></tr>
          <tr><td>error rate</td><td>{pct(w?.errors ?? 0, w?.spans ?? 0)}</td><td>{pct(b?.errors ?? 0, b?.spans ?? 0)}</td></tr>
          <tr><td>calls in</td><td>{calls}</td><td>{incoming.reduce((sum, e) => sum + (e.baseline?.calls ?? 0), 0)}</td></tr>
          <tr><td>p95 in (max)</td><td>{ms(p95 || undefined)}</td><td>{ms(Math.max(0, ...incoming.map((e) => e.baseline?.p95_ms ?? 0)) || undefined)}</td></tr>
        </tbody>
      </table>
      <p class="muted small">
        called by {incoming.map((e) => e.caller).join(", ") || "nobody"}; calls {outgoing.map((e) => e.callee).join(", ") || "nothing"}
      </p>
      <ul class="links">
        <li><Link href={traceSearchHref({ service: node.id }, fullRange)}>Traces of {node.id}</Link></li>
        <li><Link href={traceSearchHref({ service: node.id, status: "error" }, fullRange)}>Failed traces</Link></li>
        <li><Link href={logsHref({ query: serviceLogQL(node.id) }, windowRange)}>Logs</Link> · <Link href={logsHref({ query: serviceErrorLogQL(node.id) }, windowRange)}>error lines</Link></li>
        <li><Link href={metricsHref(serviceCallsPromQL(node.id), fullRange)}>Request rate by operation</Link></li>
      </ul>
    </>
  );
}

function EdgeDetails({ edge, windowRange, fullRange }: { edge: MapEdge; windowRange: LinkRange; fullRange: LinkRange }) {
  const w = edge.window;
  const b = edge.baseline;
  const hopQuery = `{ resource.service.name = ${quote(edge.caller)} } > { resource.service.name = ${quote(edge.callee)} }`;
  return (
    <>
      <table class="kv">
        <tbody>
          <tr><th></th><th>window</th><th>baseline</th></tr>
          <tr><td>calls</td><td>{w?.calls ?? 0}</td><td>{b?.calls ?? 0}</td></tr>
          <tr><td>errors</td><td>{w?.errors ?? 0} ({pct(w?.errors ?? 0, w?.calls ?? 0)})</td><td>{b?.errors ?? 0} ({pct(b?.errors ?? 0, b?.calls ?? 0)})</td></tr>
          <tr><td>p50</td><td>{ms(w?.p50_ms)}</td><td>{ms(b?.p50_ms)}</td></tr>
          <tr><td>p95</td><td>{ms(w?.p95_ms)}</td><td>{ms(b?.p95_ms)}</td></tr>
          <tr><td>p99</td><td>{ms(w?.p99_ms)}</td><td>{ms(b?.p99_ms)}</td></tr>
        </tbody>
      </table>
      <ul class="links">
        <li><Link href={traceSearchHref({ q: hopQuery }, fullRange)}>Traces through this hop</Link></li>
        <li><Link href={traceSearchHref({ service: edge.callee, status: "error" }, fullRange)}>Failed {edge.callee} spans</Link></li>
        <li><Link href={logsHref({ query: serviceErrorLogQL(edge.callee) }, windowRange)}>{edge.callee} error lines</Link></li>
        <li><Link href={metricsHref(edgeErrorPromQL(edge.caller, edge.callee), fullRange)}>Error ratio of the hop</Link></li>
      </ul>
    </>
  );
}
