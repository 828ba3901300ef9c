//! The service graph and dependency links, computed from spans: a parent span of one
//! service with a child span of another is one call caller → callee (the child's
//! duration is its latency, the child's status its outcome). A client or producer span
//! naming a remote service that recorded no span of its own (a database, a queue) is a
//! call to that remote service.

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::{SpanId, TenantId, TraceId};
use serde::Serialize;

use super::rows::{SpanBatch, SpanRef};
use super::{TimeRange, scan, with_timeout};
use crate::{QueryContext, Result};

/// One service of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceNode {
    /// The service name.
    pub service: String,
    /// Spans it recorded in the window (0 for a remote service that records none).
    pub spans: u64,
    /// Of which failed.
    pub errors: u64,
}

/// Calls from one service to another over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceEdge {
    /// The calling service.
    pub caller: String,
    /// The called service.
    pub callee: String,
    /// Number of calls.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Median call latency, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile call latency, milliseconds.
    pub p95_ms: f64,
    /// 99th percentile call latency, milliseconds.
    pub p99_ms: f64,
}

/// The services of a window and the calls between them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ServiceGraph {
    /// Every service, sorted by name.
    pub nodes: Vec<ServiceNode>,
    /// Every caller → callee pair, sorted.
    pub edges: Vec<ServiceEdge>,
}

/// A Zipkin/Jaeger dependency link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyLink {
    /// The calling service.
    pub parent: String,
    /// The called service.
    pub child: String,
    /// Number of calls.
    pub call_count: u64,
    /// Calls that failed.
    pub error_count: u64,
}

#[derive(Default)]
struct EdgeStats {
    errors: u64,
    durations_ns: Vec<i64>,
}

/// Builds the service graph of the spans that started in `range`.
pub async fn service_graph(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
) -> Result<ServiceGraph> {
    with_timeout(context, async {
        let batches = scan(context, tenant, range.validate()?, None).await?;
        Ok(build(&batches))
    })
    .await
}

/// The dependency links (caller → callee with call and error counts) of `range`.
pub async fn dependencies(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
) -> Result<Vec<DependencyLink>> {
    let graph = service_graph(context, tenant, range).await?;
    Ok(graph
        .edges
        .into_iter()
        .map(|edge| DependencyLink {
            parent: edge.caller,
            child: edge.callee,
            call_count: edge.calls,
            error_count: edge.errors,
        })
        .collect())
}

fn percentile_ms(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

pub(crate) fn build(batches: &[SpanBatch]) -> ServiceGraph {
    let mut by_id: HashMap<(TraceId, SpanId), Vec<SpanRef<'_>>> = HashMap::new();
    let mut nodes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for batch in batches {
        for row in 0..batch.len() {
            let span = batch.span(row);
            by_id
                .entry((span.trace_id(), span.span_id()))
                .or_default()
                .push(span);
            let node = nodes.entry(span.service()).or_default();
            node.0 += 1;
            node.1 += u64::from(span.is_error());
        }
    }
    let mut edges: BTreeMap<(&str, &str), EdgeStats> = BTreeMap::new();
    // Spans (by trace and id) whose call was seen from the callee's side.
    let mut answered: HashSet<(TraceId, SpanId)> = HashSet::new();
    for ((trace, id), halves) in &by_id {
        let services: HashSet<&str> = halves.iter().map(SpanRef::service).collect();
        if services.len() > 1 {
            answered.insert((*trace, *id));
        }
        for child in halves {
            let Some(parent_id) = child.parent_id() else {
                continue;
            };
            let Some(candidates) = by_id.get(&(*trace, parent_id)) else {
                continue;
            };
            let parent = candidates
                .iter()
                .find(|p| p.service() == child.service())
                .or_else(|| candidates.iter().find(|p| p.kind() == "server"))
                .or_else(|| candidates.first());
            let Some(parent) = parent else { continue };
            if parent.service() == child.service() {
                continue;
            }
            answered.insert((*trace, parent_id));
            let stats = edges
                .entry((parent.service(), child.service()))
                .or_default();
            stats.errors += u64::from(child.is_error());
            stats.durations_ns.push(child.duration_ns());
        }
    }
    for ((trace, id), halves) in &by_id {
        if answered.contains(&(*trace, *id)) {
            continue;
        }
        for span in halves {
            let outgoing = matches!(span.kind(), "client" | "producer");
            let Some(peer) = span.peer_service().filter(|_| outgoing) else {
                continue;
            };
            if peer == span.service() {
                continue;
            }
            nodes.entry(peer).or_default();
            let stats = edges.entry((span.service(), peer)).or_default();
            stats.errors += u64::from(span.is_error());
            stats.durations_ns.push(span.duration_ns());
        }
    }
    ServiceGraph {
        nodes: nodes
            .into_iter()
            .map(|(service, (spans, errors))| ServiceNode {
                service: service.to_string(),
                spans,
                errors,
            })
            .collect(),
        edges: edges
            .into_iter()
            .map(|((caller, callee), mut stats)| {
                stats.durations_ns.sort_unstable();
                let calls = stats.durations_ns.len() as u64;
                ServiceEdge {
                    caller: caller.to_string(),
                    callee: callee.to_string(),
                    calls,
                    errors: stats.errors,
                    error_rate: if calls == 0 {
                        0.0
                    } else {
                        stats.errors as f64 / calls as f64
                    },
                    p50_ms: percentile_ms(&stats.durations_ns, 0.50),
                    p95_ms: percentile_ms(&stats.durations_ns, 0.95),
                    p99_ms: percentile_ms(&stats.durations_ns, 0.99),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::{batch, span};
    use super::*;

    #[test]
    fn edges_from_parent_child_pairs_and_uninstrumented_peers() {
        let mut spans = Vec::new();
        for trace in 1..=4u8 {
            spans.push(span(trace, 1, None, "api", "GET /", 0, 100_000_000));
            let mut call = span(trace, 2, Some(1), "api", "call cart", 1, 50_000_000);
            call.kind = "client".into();
            call.peer_service = Some("cart".into());
            spans.push(call);
            let mut serve = span(
                trace,
                3,
                Some(2),
                "cart",
                "serve",
                2,
                trace as i64 * 10_000_000,
            );
            serve.status_code = if trace == 4 { 2 } else { 0 };
            spans.push(serve);
            let mut query = span(trace, 4, Some(3), "cart", "SELECT", 3, 1_000_000);
            query.kind = "client".into();
            query.peer_service = Some("postgres".into());
            spans.push(query);
        }
        let graph = build(&[batch(&spans)]);
        let names: Vec<&str> = graph.nodes.iter().map(|n| n.service.as_str()).collect();
        assert_eq!(names, ["api", "cart", "postgres"]);
        assert_eq!(graph.nodes[1].errors, 1);
        assert_eq!(graph.edges.len(), 2);
        let cart = &graph.edges[0];
        assert_eq!(
            (cart.caller.as_str(), cart.callee.as_str()),
            ("api", "cart")
        );
        assert_eq!((cart.calls, cart.errors, cart.error_rate), (4, 1, 0.25));
        assert_eq!((cart.p50_ms, cart.p95_ms, cart.p99_ms), (20.0, 40.0, 40.0));
        let db = &graph.edges[1];
        assert_eq!(
            (db.caller.as_str(), db.callee.as_str(), db.calls),
            ("cart", "postgres", 4)
        );
    }

    #[test]
    fn shared_zipkin_halves_make_one_edge() {
        let mut client = span(1, 2, Some(1), "api", "get", 1, 10);
        client.kind = "client".into();
        client.peer_service = Some("cart".into());
        let mut server = span(1, 2, Some(1), "cart", "get", 2, 8);
        server
            .attributes
            .insert("zipkin.shared".into(), "true".into());
        let root = span(1, 1, None, "api", "GET /", 0, 20);
        let graph = build(&[batch(&[root, client, server])]);
        assert_eq!(graph.edges.len(), 1);
        assert_eq!(graph.edges[0].calls, 1);
        assert_eq!(graph.edges[0].callee, "cart");
    }
}
