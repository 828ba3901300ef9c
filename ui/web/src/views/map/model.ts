// The service map's data: the service graph of the analysis window and of its baseline
// (`/api/v1/service_graph`), the failing-hop report (`/api/v1/rca`), and the health of
// each service and hop against its baseline.
import { getJSON, seconds } from "../../api";
import type { TimeRange } from "../../app/time";
import { parseDuration } from "../../app/time";
import type { Health } from "../../components/colors";

export interface GraphNode {
  service: string;
  spans: number;
  errors: number;
}

export interface GraphEdge {
  caller: string;
  callee: string;
  calls: number;
  errors: number;
  error_rate: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
}

export interface ServiceGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

/** A suspect hop of `/api/v1/rca` (query/src/rca/mod.rs `Suspect`). */
export interface Suspect {
  rank: number;
  service: string;
  instance: string | null;
  caller: string | null;
  callee: string;
  operation: string | null;
  kind: string;
  score: number;
  evidence: Evidence;
}

export interface Red {
  calls: number;
  errors: number;
  error_ratio: number;
  p50_ms: number;
  p99_ms: number;
}

export interface Evidence {
  summary?: string;
  window?: Red;
  baseline?: Red;
  example_trace_ids?: string[];
  logs?: {
    errors_window: number;
    errors_baseline: number;
    lines_window: number;
    lines_baseline: number;
    new_templates: { template: string; count: number; example: string }[];
    trace_lines: { trace_id: string; service: string; line: string }[];
  };
  metrics?: {
    selector: string;
    family: string;
    instance: string | null;
    window: number;
    baseline_median: number;
    z: number;
  }[];
}

export interface RcaReport {
  signals_used: string[];
  signals_missing: string[];
  suspects: Suspect[];
}

/** The analysis window (the end of the picked range) and its baseline (the rest). */
export interface Windows {
  window: { start: number; end: number };
  baseline: { start: number; end: number };
  /** The window length as written in the URL (`15m`) or computed. */
  label: string;
}

const MINUTE = 60_000;

/**
 * Splits the picked range: the last `window` (default: a quarter of the range, at most
 * 15 minutes) is analysed, everything before it is the baseline.
 */
export function splitRange(range: TimeRange, windowParam: string | null): Windows {
  const length = range.end - range.start;
  const asked = windowParam ? parseDuration(windowParam) : undefined;
  const fallback = Math.min(15 * MINUTE, length / 4);
  const windowMs = Math.max(MINUTE / 2, Math.min(asked ?? fallback, length / 2));
  const split = range.end - windowMs;
  const minutes = windowMs / MINUTE;
  return {
    window: { start: split, end: range.end },
    baseline: { start: range.start, end: split },
    label: windowParam && asked ? windowParam : `${Number.isInteger(minutes) ? minutes : minutes.toFixed(1)}m`,
  };
}

export function loadGraph(start: number, end: number, signal: AbortSignal): Promise<ServiceGraph> {
  return getJSON<{ data: ServiceGraph }>(
    "/api/v1/service_graph",
    { start: seconds(start), end: seconds(end) },
    signal,
  ).then((body) => body.data);
}

export function loadRca(windows: Windows, signal: AbortSignal): Promise<RcaReport> {
  return getJSON<{ data: RcaReport }>(
    "/api/v1/rca",
    {
      start: seconds(windows.window.start),
      end: seconds(windows.window.end),
      baseline_start: seconds(windows.baseline.start),
      baseline_end: seconds(windows.baseline.end - 1),
    },
    signal,
  ).then((body) => body.data);
}

/** One service on the map, with its window and baseline figures. */
export interface MapNode {
  id: string;
  window?: GraphNode;
  baseline?: GraphNode;
  health: Health;
  suspect: boolean;
  /** The best rank among the suspects naming it (1 = most likely cause). */
  rank?: number;
}

/** One hop on the map. */
export interface MapEdge {
  id: string;
  caller: string;
  callee: string;
  window?: GraphEdge;
  baseline?: GraphEdge;
  health: Health;
  suspect: boolean;
  rank?: number;
}

export interface MapModel {
  nodes: MapNode[];
  edges: MapEdge[];
}

export function edgeId(caller: string, callee: string): string {
  return `${caller}->${callee}`;
}

const ratio = (errors: number, calls: number) => (calls > 0 ? errors / calls : 0);

/** Errors and latency of a window against its baseline. */
export function health(
  window: { calls: number; errors: number; p95?: number } | undefined,
  baseline: { calls: number; errors: number; p95?: number } | undefined,
): Health {
  if (!window || window.calls === 0) return "idle";
  const rate = ratio(window.errors, window.calls);
  const baseRate = baseline ? ratio(baseline.errors, baseline.calls) : 0;
  const rise = rate - baseRate;
  const p95 = window.p95 ?? 0;
  const baseP95 = baseline?.p95 ?? 0;
  const slower = baseP95 > 0 ? p95 / baseP95 : 1;
  const added = p95 - baseP95;
  if ((rate >= 0.05 && rise >= 0.02) || (slower >= 3 && added >= 50)) return "error";
  if ((rate >= 0.01 && rise >= 0.005) || (slower >= 1.5 && added >= 20)) return "warn";
  return "ok";
}

/** Joins window, baseline and suspects into the map's nodes and hops. */
export function buildModel(window: ServiceGraph, baseline: ServiceGraph, suspects: Suspect[]): MapModel {
  const services = new Set<string>();
  for (const graph of [window, baseline]) {
    graph.nodes.forEach((n) => services.add(n.service));
    graph.edges.forEach((e) => {
      services.add(e.caller);
      services.add(e.callee);
    });
  }
  const nodeOf = (graph: ServiceGraph) => new Map(graph.nodes.map((n) => [n.service, n]));
  const edgeOf = (graph: ServiceGraph) => new Map(graph.edges.map((e) => [edgeId(e.caller, e.callee), e]));
  const [wNodes, bNodes, wEdges, bEdges] = [nodeOf(window), nodeOf(baseline), edgeOf(window), edgeOf(baseline)];
  const suspectRank = new Map<string, number>();
  for (const s of suspects) {
    for (const service of [s.service, s.callee]) {
      suspectRank.set(service, Math.min(s.rank, suspectRank.get(service) ?? Infinity));
    }
  }

  const edgeIds = new Set([...wEdges.keys(), ...bEdges.keys()]);
  const edges: MapEdge[] = [...edgeIds].sort().map((id) => {
    const w = wEdges.get(id);
    const b = bEdges.get(id);
    const caller = (w ?? b)!.caller;
    const callee = (w ?? b)!.callee;
    const naming = suspects.filter((s) => s.callee === callee && (s.caller === null || s.caller === caller));
    const suspect = naming.length > 0;
    const rank = suspect ? Math.min(...naming.map((s) => s.rank)) : undefined;
    return {
      id,
      caller,
      callee,
      window: w,
      baseline: b,
      health: health(w && { ...w, p95: w.p95_ms }, b && { ...b, p95: b.p95_ms }),
      suspect,
      rank,
    };
  });
  const nodes: MapNode[] = [...services].sort().map((service) => {
    const w = wNodes.get(service);
    const b = bNodes.get(service);
    // A dependency that records no spans (a database) takes the health of its hops in.
    const incoming = edges.filter((e) => e.callee === service);
    const own = w && w.spans > 0 ? health({ calls: w.spans, errors: w.errors }, b && { calls: b.spans, errors: b.errors }) : worst(incoming.map((e) => e.health));
    const rank = suspectRank.get(service);
    return { id: service, window: w, baseline: b, health: own, suspect: rank !== undefined, rank };
  });
  return { nodes, edges };
}

const ORDER: Health[] = ["idle", "ok", "warn", "error"];

function worst(list: Health[]): Health {
  return list.reduce<Health>((a, b) => (ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a), "idle");
}

/** Sort key: suspects, then errors, then warnings, then traffic. */
export function byConcern<T extends { suspect: boolean; health: Health }>(a: T, b: T): number {
  if (a.suspect !== b.suspect) return a.suspect ? -1 : 1;
  return ORDER.indexOf(b.health) - ORDER.indexOf(a.health);
}
