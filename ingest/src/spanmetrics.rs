//! Span-derived metrics, named as Tempo's metrics-generator names them, so that
//! Grafana's service map and RED panels (and our failing-hop analysis) read ordinary
//! series:
//!
//! - `traces_spanmetrics_calls_total` and `traces_spanmetrics_latency_{bucket,sum,count}`
//!   by `service`, `span_name`, `span_kind`, `status_code`;
//! - `traces_service_graph_request_total`, `…_failed_total`,
//!   `…_server_seconds_{bucket,sum,count}`, `…_client_seconds_{bucket,sum,count}` by
//!   `client`, `server`, `connection_type`.
//!
//! Counters are cumulative in memory and written as samples every collection interval.
//! Edges pair a client (or producer) span with the server (or consumer) span whose
//! parent it is, or that shares its id (Zipkin's shared spans). A client span left
//! unpaired when it expires becomes an edge to its `peer_service` (a database, a
//! broker, or a service that does not report spans): a virtual node, as Tempo does.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use proto::{SpanId, TraceId};
use storage::metrics::{MetricMetadata, MetricType, MetricsWrite, Sample, SeriesWrite};
use storage::model::SpanRecord;
use storage::series::Labels;

/// Latency buckets of `traces_spanmetrics_latency`, seconds (Tempo's defaults).
const SPAN_BUCKETS: [f64; 14] = [
    0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
    16.384,
];
/// Latency buckets of the service graph histograms, seconds (Tempo's defaults).
const EDGE_BUCKETS: [f64; 8] = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8];
/// How long a half of an edge waits for its other half.
const PAIR_WAIT: Duration = Duration::from_secs(10);
/// Most unpaired halves kept per tenant; more are dropped (and counted).
const MAX_PENDING: usize = 100_000;
/// Series not updated for this long stop being written.
const SERIES_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: usize) -> Self {
        Histogram {
            buckets: vec![0; bounds],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Clone)]
struct CallStats {
    calls: u64,
    latency: Histogram,
    touched: Instant,
}

#[derive(Debug, Clone)]
struct EdgeStats {
    requests: u64,
    failed: u64,
    server: Histogram,
    client: Histogram,
    touched: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CallKey {
    service: String,
    span_name: String,
    span_kind: &'static str,
    status_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct EdgeKey {
    client: String,
    server: String,
    connection_type: &'static str,
}

/// One half of an edge waiting for the other.
#[derive(Debug, Clone)]
struct Half {
    service: String,
    seconds: f64,
    failed: bool,
    peer: Option<String>,
    /// The edge's `connection_type` when the other half turns up.
    connection_type: &'static str,
    /// The edge's `connection_type` if it never does and `peer` names the callee.
    virtual_type: &'static str,
    /// The other key a server half waits under, removed with it.
    twin: Option<(TraceId, SpanId)>,
    since: Instant,
}

/// The span-derived metrics of one tenant.
#[derive(Debug, Default)]
pub struct SpanMetrics {
    calls: HashMap<CallKey, CallStats>,
    edges: HashMap<EdgeKey, EdgeStats>,
    clients: HashMap<(TraceId, SpanId), Half>,
    servers: HashMap<(TraceId, SpanId), Half>,
    dropped_halves: u64,
}

fn span_kind_label(kind: &str) -> &'static str {
    match kind {
        "server" => "SPAN_KIND_SERVER",
        "client" => "SPAN_KIND_CLIENT",
        "producer" => "SPAN_KIND_PRODUCER",
        "consumer" => "SPAN_KIND_CONSUMER",
        "internal" => "SPAN_KIND_INTERNAL",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn status_label(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

/// The kind of a virtual node, from the attributes of the client span that called it.
fn virtual_connection_type(span: &SpanRecord) -> &'static str {
    if span.attributes.contains_key("db.system") || span.attributes.contains_key("db.name") {
        "database"
    } else if span.attributes.contains_key("messaging.system") || span.kind == "producer" {
        "messaging_system"
    } else {
        "virtual_node"
    }
}

impl SpanMetrics {
    /// Accounts for spans as they are acknowledged.
    pub fn record(&mut self, spans: &[SpanRecord], now: Instant) {
        for span in spans {
            let seconds = span.duration_ns.max(0) as f64 / 1e9;
            let key = CallKey {
                service: span.service.clone(),
                span_name: span.name.clone(),
                span_kind: span_kind_label(&span.kind),
                status_code: status_label(span.status_code),
            };
            let stats = self.calls.entry(key).or_insert_with(|| CallStats {
                calls: 0,
                latency: Histogram::new(SPAN_BUCKETS.len()),
                touched: now,
            });
            stats.calls += 1;
            stats.latency.observe(&SPAN_BUCKETS, seconds);
            stats.touched = now;
            self.pair(span, seconds, now);
        }
    }

    fn pair(&mut self, span: &SpanRecord, seconds: f64, now: Instant) {
        let half = |connection_type, virtual_type| Half {
            service: span.service.clone(),
            seconds,
            failed: span.status_code == 2,
            peer: span.peer_service.clone(),
            connection_type,
            virtual_type,
            twin: None,
            since: now,
        };
        match span.kind.as_str() {
            "client" | "producer" => {
                let connection_type = if span.kind == "producer" {
                    "messaging_system"
                } else {
                    ""
                };
                let client = half(connection_type, virtual_connection_type(span));
                let own = (span.trace_id, span.span_id);
                match self.take_server(own) {
                    Some(server) => self.complete(client, server, now),
                    None => self.insert_half(true, own, client),
                }
            }
            "server" | "consumer" => {
                let by_parent = span.parent_span_id.map(|parent| (span.trace_id, parent));
                let shared = (span.trace_id, span.span_id);
                let client = by_parent
                    .and_then(|key| self.clients.remove(&key))
                    .or_else(|| self.clients.remove(&shared));
                match client {
                    Some(client) => self.complete(client, half("", ""), now),
                    None => {
                        // Wait under the parent's id and, for Zipkin shared spans, under our own.
                        let mut waiting = half("", "");
                        if let Some(key) = by_parent {
                            waiting.twin = Some(shared);
                            self.insert_half(false, key, waiting.clone());
                            waiting.twin = Some(key);
                        }
                        self.insert_half(false, shared, waiting);
                    }
                }
            }
            _ => {}
        }
    }

    /// Takes the server half waiting for client span `key`, and its twin entry.
    fn take_server(&mut self, key: (TraceId, SpanId)) -> Option<Half> {
        let server = self.servers.remove(&key)?;
        if let Some(twin) = server.twin {
            self.servers.remove(&twin);
        }
        Some(server)
    }

    fn insert_half(&mut self, client: bool, key: (TraceId, SpanId), half: Half) {
        let map = if client {
            &mut self.clients
        } else {
            &mut self.servers
        };
        if map.len() >= MAX_PENDING {
            self.dropped_halves += 1;
            return;
        }
        map.insert(key, half);
    }

    fn complete(&mut self, client: Half, server: Half, now: Instant) {
        self.add_edge(
            EdgeKey {
                client: client.service,
                server: server.service,
                connection_type: client.connection_type,
            },
            client.seconds,
            Some(server.seconds),
            client.failed || server.failed,
            now,
        );
    }

    fn add_edge(
        &mut self,
        key: EdgeKey,
        client_seconds: f64,
        server_seconds: Option<f64>,
        failed: bool,
        now: Instant,
    ) {
        let stats = self.edges.entry(key).or_insert_with(|| EdgeStats {
            requests: 0,
            failed: 0,
            server: Histogram::new(EDGE_BUCKETS.len()),
            client: Histogram::new(EDGE_BUCKETS.len()),
            touched: now,
        });
        stats.requests += 1;
        stats.failed += u64::from(failed);
        stats.client.observe(&EDGE_BUCKETS, client_seconds);
        if let Some(seconds) = server_seconds {
            stats.server.observe(&EDGE_BUCKETS, seconds);
        }
        stats.touched = now;
    }

    /// Turns expired unpaired client halves into edges to their peer, drops other
    /// expired halves and series nobody updated for a long time.
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<(TraceId, SpanId)> = self
            .clients
            .iter()
            .filter(|(_, half)| now.duration_since(half.since) >= PAIR_WAIT)
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            if let Some(half) = self.clients.remove(&key)
                && let Some(peer) = half.peer.clone()
            {
                let edge = EdgeKey {
                    client: half.service,
                    server: peer,
                    connection_type: half.virtual_type,
                };
                self.add_edge(edge, half.seconds, None, half.failed, now);
            }
        }
        self.servers
            .retain(|_, half| now.duration_since(half.since) < PAIR_WAIT);
        self.calls
            .retain(|_, stats| now.duration_since(stats.touched) < SERIES_TTL);
        self.edges
            .retain(|_, stats| now.duration_since(stats.touched) < SERIES_TTL);
    }

    /// The current value of every series, as one write stamped `ts_ms`.
    pub fn collect(&self, ts_ms: i64) -> MetricsWrite {
        let mut out = MetricsWrite::default();
        let mut push = |name: &str, labels: &BTreeMap<&str, String>, value: f64| {
            let mut pairs: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            pairs.push(("__name__".to_string(), name.to_string()));
            if let Ok(labels) = Labels::new(pairs) {
                out.series.push(SeriesWrite {
                    labels,
                    samples: vec![Sample { ts_ms, value }],
                    exemplars: Vec::new(),
                });
            }
        };
        for (key, stats) in &self.calls {
            let labels = BTreeMap::from([
                ("service", key.service.clone()),
                ("span_name", key.span_name.clone()),
                ("span_kind", key.span_kind.to_string()),
                ("status_code", key.status_code.to_string()),
            ]);
            push(
                "traces_spanmetrics_calls_total",
                &labels,
                stats.calls as f64,
            );
            histogram(
                &mut push,
                "traces_spanmetrics_latency",
                &labels,
                &SPAN_BUCKETS,
                &stats.latency,
            );
        }
        for (key, stats) in &self.edges {
            let labels = BTreeMap::from([
                ("client", key.client.clone()),
                ("server", key.server.clone()),
                ("connection_type", key.connection_type.to_string()),
            ]);
            push(
                "traces_service_graph_request_total",
                &labels,
                stats.requests as f64,
            );
            push(
                "traces_service_graph_request_failed_total",
                &labels,
                stats.failed as f64,
            );
            histogram(
                &mut push,
                "traces_service_graph_request_server_seconds",
                &labels,
                &EDGE_BUCKETS,
                &stats.server,
            );
            histogram(
                &mut push,
                "traces_service_graph_request_client_seconds",
                &labels,
                &EDGE_BUCKETS,
                &stats.client,
            );
        }
        if !out.series.is_empty() {
            out.metadata = metadata();
        }
        out
    }

    /// Halves dropped because too many were waiting.
    pub fn dropped_halves(&self) -> u64 {
        self.dropped_halves
    }
}

fn histogram(
    push: &mut impl FnMut(&str, &BTreeMap<&str, String>, f64),
    name: &str,
    labels: &BTreeMap<&str, String>,
    bounds: &[f64],
    histogram: &Histogram,
) {
    let mut with_le = labels.clone();
    for (bound, count) in bounds.iter().zip(&histogram.buckets) {
        with_le.insert("le", format_bound(*bound));
        push(&format!("{name}_bucket"), &with_le, *count as f64);
    }
    with_le.insert("le", "+Inf".to_string());
    push(&format!("{name}_bucket"), &with_le, histogram.count as f64);
    push(&format!("{name}_sum"), labels, histogram.sum);
    push(&format!("{name}_count"), labels, histogram.count as f64);
}

fn format_bound(bound: f64) -> String {
    let text = format!("{bound}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

fn metadata() -> Vec<MetricMetadata> {
    let entry = |metric: &str, kind, help: &str| MetricMetadata {
        metric: metric.to_string(),
        kind,
        help: help.to_string(),
        unit: String::new(),
    };
    vec![
        entry(
            "traces_spanmetrics_calls_total",
            MetricType::Counter,
            "Spans seen, by service, span name, kind and status.",
        ),
        entry(
            "traces_spanmetrics_latency",
            MetricType::Histogram,
            "Span durations in seconds.",
        ),
        entry(
            "traces_service_graph_request_total",
            MetricType::Counter,
            "Requests between two services.",
        ),
        entry(
            "traces_service_graph_request_failed_total",
            MetricType::Counter,
            "Failed requests between two services.",
        ),
        entry(
            "traces_service_graph_request_server_seconds",
            MetricType::Histogram,
            "Server-side latency of requests between two services.",
        ),
        entry(
            "traces_service_graph_request_client_seconds",
            MetricType::Histogram,
            "Client-side latency of requests between two services.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        kind: &str,
        status: i32,
        ms: i64,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.to_string(),
            name: format!("{kind} op"),
            kind: kind.to_string(),
            duration_ns: ms * 1_000_000,
            status_code: status,
            ..SpanRecord::default()
        }
    }

    fn value(write: &MetricsWrite, name: &str, label: (&str, &str)) -> Option<f64> {
        write
            .series
            .iter()
            .find(|s| s.labels.metric_name() == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| s.samples[0].value)
    }

    #[test]
    fn client_and_server_spans_make_an_edge_in_either_order() {
        let now = Instant::now();
        let mut metrics = SpanMetrics::default();
        // Server first, then its client (the parent).
        metrics.record(&[span(1, 2, Some(1), "funding", "server", 2, 30)], now);
        metrics.record(&[span(1, 1, None, "gateway", "client", 0, 40)], now);
        // Client first, then server.
        metrics.record(&[span(2, 1, None, "gateway", "client", 0, 10)], now);
        metrics.record(&[span(2, 2, Some(1), "funding", "server", 0, 5)], now);
        let write = metrics.collect(1000);
        let edge = write
            .series
            .iter()
            .find(|s| s.labels.metric_name() == "traces_service_graph_request_total")
            .unwrap();
        assert_eq!(edge.labels.get("client"), Some("gateway"));
        assert_eq!(edge.labels.get("server"), Some("funding"));
        assert_eq!(edge.samples[0].value, 2.0);
        assert_eq!(
            value(
                &write,
                "traces_service_graph_request_failed_total",
                ("server", "funding")
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &write,
                "traces_spanmetrics_calls_total",
                ("status_code", "STATUS_CODE_ERROR")
            ),
            Some(1.0)
        );
    }

    #[test]
    fn unpaired_clients_with_a_peer_become_virtual_nodes() {
        let now = Instant::now();
        let mut metrics = SpanMetrics::default();
        let mut call = span(3, 1, None, "asset", "client", 0, 3);
        call.peer_service = Some("mysql".to_string());
        call.attributes
            .insert("db.system".to_string(), "mysql".to_string());
        metrics.record(&[call], now);
        metrics.expire(now + PAIR_WAIT);
        let write = metrics.collect(1000);
        let edge = write
            .series
            .iter()
            .find(|s| s.labels.metric_name() == "traces_service_graph_request_total")
            .unwrap();
        assert_eq!(edge.labels.get("server"), Some("mysql"));
        assert_eq!(edge.labels.get("connection_type"), Some("database"));
    }

    #[test]
    fn latency_buckets_are_cumulative() {
        let now = Instant::now();
        let mut metrics = SpanMetrics::default();
        metrics.record(
            &[
                span(4, 1, None, "sms", "server", 0, 3),
                span(5, 1, None, "sms", "server", 0, 300),
            ],
            now,
        );
        let write = metrics.collect(1);
        let bucket = |le: &str| {
            write
                .series
                .iter()
                .find(|s| {
                    s.labels.metric_name() == "traces_spanmetrics_latency_bucket"
                        && s.labels.get("le") == Some(le)
                })
                .map(|s| s.samples[0].value)
        };
        assert_eq!(bucket("0.004"), Some(1.0));
        assert_eq!(bucket("0.512"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
    }
}
