//! A generated workload shaped like the trust platform: 27 services × 2 replicas,
//! Spring Boot HTTP and JVM metrics scraped every 15 s, logback lines carrying trace
//! ids, and gateway-rooted call trees of spans. Deterministic for a given seed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use proto::{SpanId, TraceId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::model::{LogRecord, SpanRecord};
use storage::series::Labels;

pub const SERVICES: [&str; 27] = [
    "zuul-gateway",
    "oauth2-auth",
    "eureka-registry",
    "project",
    "funding",
    "asset",
    "interest-settlement",
    "finance",
    "ta",
    "sales",
    "family-trust",
    "abs",
    "workflow-engine",
    "rules-engine",
    "risk",
    "regulatory-reporting",
    "report",
    "e-signature",
    "sms",
    "mail",
    "invoicing",
    "bank-transfer",
    "valuation",
    "company-info",
    "open-api",
    "xxl-job",
    "portal",
];
const ROUTES: [&str; 5] = [
    "/api/v1/query",
    "/api/v1/save",
    "/api/v1/detail",
    "/api/v1/list",
    "/actuator/health",
];
const BUCKETS: [&str; 8] = ["0.005", "0.01", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"];
pub const SCRAPE_INTERVAL_MS: i64 = 15_000;
pub const START_MS: i64 = 1_790_000_000_000;

enum Kind {
    /// A counter that grows by about `rate` per scrape.
    Counter { rate: f64, value: f64 },
    /// A counter of seconds accumulated from nanosecond timings, as Micrometer reports it.
    SecondsCounter { rate: f64, nanos: u64 },
    /// A gauge wandering around `base` in integer steps.
    IntGauge { base: f64, value: f64 },
    /// A ratio gauge in [0, 1] with 4 decimals.
    Ratio { value: f64 },
}

pub struct MetricsWorkload {
    series: Vec<(Labels, Kind)>,
    rng: SmallRng,
    pub ts_ms: i64,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .expect("valid labels")
}

impl MetricsWorkload {
    pub fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut series = Vec::new();
        for service in SERVICES {
            for replica in 0..2 {
                let instance = format!("{service}-7d9f8c6b5-{replica}x{}", service.len());
                let base = [
                    ("application", service),
                    ("instance", instance.as_str()),
                    ("job", service),
                ];
                for route in ROUTES {
                    for status in ["200", "500"] {
                        let traffic = if status == "200" {
                            rng.random_range(5.0..200.0)
                        } else {
                            rng.random_range(0.0..2.0)
                        };
                        let mut with = |name: &str, extra: &[(&str, &str)], kind: Kind| {
                            let mut pairs: Vec<(&str, &str)> = base.to_vec();
                            pairs.extend_from_slice(&[
                                ("__name__", name),
                                ("uri", route),
                                ("status", status),
                                ("method", "GET"),
                            ]);
                            pairs.extend_from_slice(extra);
                            series.push((labels(&pairs), kind));
                        };
                        with(
                            "http_server_requests_seconds_count",
                            &[],
                            Kind::Counter {
                                rate: traffic,
                                value: 0.0,
                            },
                        );
                        with(
                            "http_server_requests_seconds_sum",
                            &[],
                            Kind::SecondsCounter {
                                rate: traffic * 0.04,
                                nanos: 0,
                            },
                        );
                        for (i, le) in BUCKETS.iter().enumerate() {
                            let share = ((i + 1) as f64 / BUCKETS.len() as f64).powf(0.3);
                            with(
                                "http_server_requests_seconds_bucket",
                                &[("le", le)],
                                Kind::Counter {
                                    rate: traffic * share,
                                    value: 0.0,
                                },
                            );
                        }
                    }
                }
                let mut gauge = |name: &str, extra: &[(&str, &str)], kind: Kind| {
                    let mut pairs: Vec<(&str, &str)> = base.to_vec();
                    pairs.push(("__name__", name));
                    pairs.extend_from_slice(extra);
                    series.push((labels(&pairs), kind));
                };
                for (area, id, base_bytes) in [
                    ("heap", "G1 Eden Space", 2.0e8),
                    ("heap", "G1 Old Gen", 4.0e8),
                    ("heap", "G1 Survivor Space", 1.0e7),
                    ("nonheap", "Metaspace", 1.2e8),
                    ("nonheap", "CodeHeap 'non-profiled nmethods'", 3.0e7),
                ] {
                    gauge(
                        "jvm_memory_used_bytes",
                        &[("area", area), ("id", id)],
                        Kind::IntGauge {
                            base: base_bytes,
                            value: base_bytes,
                        },
                    );
                }
                gauge(
                    "jvm_threads_live_threads",
                    &[],
                    Kind::IntGauge {
                        base: 80.0,
                        value: 80.0,
                    },
                );
                gauge(
                    "hikaricp_connections_active",
                    &[("pool", "HikariPool-1")],
                    Kind::IntGauge {
                        base: 4.0,
                        value: 4.0,
                    },
                );
                gauge(
                    "hikaricp_connections_idle",
                    &[("pool", "HikariPool-1")],
                    Kind::IntGauge {
                        base: 6.0,
                        value: 6.0,
                    },
                );
                gauge("process_cpu_usage", &[], Kind::Ratio { value: 0.1 });
                gauge("system_cpu_usage", &[], Kind::Ratio { value: 0.2 });
                gauge(
                    "jvm_gc_pause_seconds_count",
                    &[("action", "end of minor GC")],
                    Kind::Counter {
                        rate: 0.5,
                        value: 0.0,
                    },
                );
                gauge(
                    "jvm_gc_pause_seconds_sum",
                    &[("action", "end of minor GC")],
                    Kind::SecondsCounter {
                        rate: 0.004,
                        nanos: 0,
                    },
                );
                gauge(
                    "logback_events_total",
                    &[("level", "error")],
                    Kind::Counter {
                        rate: 0.2,
                        value: 0.0,
                    },
                );
                gauge(
                    "logback_events_total",
                    &[("level", "info")],
                    Kind::Counter {
                        rate: 30.0,
                        value: 0.0,
                    },
                );
                gauge(
                    "up",
                    &[],
                    Kind::IntGauge {
                        base: 1.0,
                        value: 1.0,
                    },
                );
            }
        }
        MetricsWorkload {
            series,
            rng,
            ts_ms: START_MS,
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// One scrape of every series, split into writes of at most `per_write` samples.
    pub fn scrape(&mut self, per_write: usize) -> Vec<MetricsWrite> {
        let ts_ms = self.ts_ms + self.rng.random_range(-40..40);
        self.ts_ms += SCRAPE_INTERVAL_MS;
        let mut writes = Vec::new();
        let mut current = MetricsWrite::default();
        for (labels, kind) in &mut self.series {
            let value = match kind {
                Kind::Counter { rate, value } => {
                    *value += (*rate * self.rng.random_range(0.6..1.4)).round();
                    *value
                }
                Kind::SecondsCounter { rate, nanos } => {
                    *nanos += (*rate * 1e9 * self.rng.random_range(0.5..1.5)) as u64;
                    *nanos as f64 / 1e9
                }
                Kind::IntGauge { base, value } => {
                    if self.rng.random_bool(0.3) {
                        *value = (*base * self.rng.random_range(0.8..1.2)).round();
                    }
                    *value
                }
                Kind::Ratio { value } => {
                    *value = ((*value + self.rng.random_range(-0.02..0.02)).clamp(0.0, 1.0)
                        * 10_000.0)
                        .round()
                        / 10_000.0;
                    *value
                }
            };
            current.series.push(SeriesWrite {
                labels: labels.clone(),
                samples: vec![Sample { ts_ms, value }],
                exemplars: Vec::new(),
            });
            if current.series.len() == per_write {
                writes.push(std::mem::take(&mut current));
            }
        }
        if !current.series.is_empty() {
            writes.push(current);
        }
        writes
    }
}

/// Log lines and spans of simulated requests through the gateway.
pub struct RequestWorkload {
    rng: SmallRng,
    pub now_ns: i64,
}

const OPERATIONS: [&str; 6] = [
    "queryContract",
    "settleInterest",
    "createFunding",
    "listAssets",
    "signContract",
    "sendNotice",
];

impl RequestWorkload {
    pub fn new(seed: u64) -> Self {
        RequestWorkload {
            rng: SmallRng::seed_from_u64(seed),
            now_ns: START_MS * 1_000_000,
        }
    }

    /// One request: a call tree of 4-9 spans rooted at the gateway, and 1-3 log lines per span.
    pub fn request(&mut self) -> (Vec<SpanRecord>, Vec<LogRecord>) {
        let trace_id = TraceId(self.rng.random());
        self.now_ns += self.rng.random_range(1_000_000..20_000_000);
        let start = self.now_ns;
        let hops = self.rng.random_range(4..10);
        let failed = self.rng.random_bool(0.02);
        let mut spans = Vec::with_capacity(hops);
        let mut logs = Vec::new();
        let mut parent: Option<SpanId> = None;
        let mut caller = SERVICES[0];
        for hop in 0..hops {
            let service = if hop == 0 {
                SERVICES[0]
            } else {
                SERVICES[self.rng.random_range(1..SERVICES.len())]
            };
            let span_id = SpanId(self.rng.random());
            let operation = OPERATIONS[self.rng.random_range(0..OPERATIONS.len())];
            let span_start = start + hop as i64 * 300_000;
            let duration = self.rng.random_range(200_000..80_000_000);
            let error = failed && hop == hops - 1;
            let instance = format!("{service}-7d9f8c6b5-{}x{}", hop % 2, service.len());
            let mut attributes = BTreeMap::new();
            attributes.insert("http.method".to_string(), "POST".to_string());
            attributes.insert("http.route".to_string(), format!("/api/v1/{operation}"));
            attributes.insert(
                "http.status_code".to_string(),
                if error { "500" } else { "200" }.to_string(),
            );
            spans.push(SpanRecord {
                trace_id,
                span_id,
                parent_span_id: parent,
                service: service.to_string(),
                instance: Some(instance.clone()),
                name: format!("POST /api/v1/{operation}"),
                kind: "server".to_string(),
                start_ns: span_start,
                duration_ns: duration,
                status_code: if error { 2 } else { 0 },
                status_message: error
                    .then(|| "java.net.SocketTimeoutException: Read timed out".to_string()),
                peer_service: (hop > 0).then(|| caller.to_string()),
                attributes,
                resource: BTreeMap::from([("service.name".to_string(), service.to_string())]),
                events: None,
                links: None,
            });
            for line in 0..self.rng.random_range(1..4) {
                let (level, text) = if error && line == 0 {
                    (
                        "ERROR",
                        format!(
                            "{operation} failed: java.net.SocketTimeoutException: Read timed out calling {caller}"
                        ),
                    )
                } else {
                    let contract = self.rng.random_range(10_000..99_999);
                    let amount = self.rng.random_range(100..1_000_000) as f64 / 100.0;
                    (
                        "INFO",
                        format!(
                            "{operation} completed for contract TC-2026-{contract}, amount={amount:.2} CNY, cost={}ms",
                            duration / 1_000_000
                        ),
                    )
                };
                let ts = span_start + line as i64 * 50_000;
                let thread = self.rng.random_range(1..200);
                let body = format!(
                    "2026-11-24 10:15:32.{:03} {level:>5} [{service},{trace_id},{span_id}] 1 --- [nio-8080-exec-{thread}] c.t.{}.service.{}Service : {text}",
                    (ts / 1_000_000) % 1000,
                    service.replace('-', ""),
                    operation
                );
                logs.push(LogRecord {
                    timestamp_ns: ts,
                    observed_ns: ts + 1_000_000,
                    service: service.to_string(),
                    instance: Some(instance.clone()),
                    severity_text: Some(level.to_string()),
                    severity_number: if level == "ERROR" { 17 } else { 9 },
                    body,
                    trace_id: Some(trace_id),
                    span_id: Some(span_id),
                    attributes: BTreeMap::new(),
                    resource: BTreeMap::from([("service.name".to_string(), service.to_string())]),
                });
            }
            parent = Some(span_id);
            caller = service;
        }
        (spans, logs)
    }
}
