//! PromQL over cold data (Parquet segments only), in process: the data set and the nine
//! queries of `benches/promql_peers.rs` (per instance: a latency histogram of 5 routes ×
//! 10 buckets, a request counter of 5 routes × 2 statuses, a memory gauge and `up`;
//! 1 h at 15 s), written through `Storage::append_metrics`, answered once from the
//! memtables, then flushed and timed from the segments (median and max of a few runs,
//! instant at the last sample, range over the last 55 min at a 60 s step). Every cold
//! answer is checked against the hot one (same series, bit-identical values).
//!
//! Run: `cargo bench --profile dev --bench promql_cold -- [--series N] [--runs N]`
//! (default 10 000 series, 5 runs; the setup time grows linearly with the series).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use proto::TenantId;
use query::QueryContext;
use query::promql::Engine;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::series::Labels;
use storage::{Config, Storage};

const INTERVAL_MS: i64 = 15_000;
const SAMPLES: i64 = 240;
const SERVICES: usize = 20;
const ROUTES: [&str; 5] = [
    "/api/orders",
    "/api/cart",
    "/api/users",
    "/login",
    "/health",
];
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];
const PER_INSTANCE: usize = ROUTES.len() * BUCKETS.len() + ROUTES.len() * 2 + 2;
/// Series written per append call.
const BATCH_SERIES: usize = 2_000;

const QUERIES: [(&str, &str); 9] = [
    (
        "rate_sum_by",
        "sum by (service) (rate(http_requests_total[5m]))",
    ),
    (
        "histogram_quantile",
        "histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "error_ratio",
        "sum by (service) (rate(http_requests_total{status=\"500\"}[5m])) / sum by (service) (rate(http_requests_total[5m]))",
    ),
    (
        "topk_instances",
        "topk(10, sum by (instance) (rate(http_requests_total[5m])))",
    ),
    (
        "sum_all_buckets",
        "sum(rate(http_request_duration_seconds_bucket[5m]))",
    ),
    (
        "one_service_rate",
        "rate(http_requests_total{service=\"svc-3\"}[5m])",
    ),
    (
        "high_cardinality_selector",
        "http_requests_total{status=\"500\"}",
    ),
    (
        "gauge_avg_by",
        "avg by (service) (process_resident_memory_bytes)",
    ),
    ("regex_count", "count(up{service=~\"svc-1.*\"} == 1)"),
];

struct Options {
    series: usize,
    runs: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| -> Option<usize> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    Options {
        series: get("--series").unwrap_or(10_000).max(PER_INSTANCE),
        runs: get("--runs").unwrap_or(5).max(1),
    }
}

enum Kind {
    Counter(f64),
    Bucket(f64),
    Gauge(f64),
}

/// Labels and value kind of every series, instance by instance (so series ids are
/// grouped by instance, as a scrape or a remote_write sender assigns them).
fn generate(series: usize) -> Vec<(Labels, Kind)> {
    let instances = (series / PER_INSTANCE).max(1);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(instances * PER_INSTANCE);
    for i in 0..instances {
        let service = format!("svc-{}", i % SERVICES);
        let instance = format!("pod-{i}");
        let labels = |name: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("__name__".to_string(), name.to_string()),
                ("instance".to_string(), instance.clone()),
                ("job".to_string(), "app".to_string()),
                ("service".to_string(), service.clone()),
            ];
            pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            Labels::new(pairs).expect("labels")
        };
        for route in ROUTES {
            let traffic = rng.random_range(1.0..20.0);
            for (b, le) in BUCKETS.iter().enumerate() {
                let share = (b as f64 + 1.0) / BUCKETS.len() as f64;
                out.push((
                    labels(
                        "http_request_duration_seconds_bucket",
                        &[("le", le), ("route", route)],
                    ),
                    Kind::Bucket(traffic * share),
                ));
            }
            for status in ["200", "500"] {
                let rate = if status == "200" {
                    traffic
                } else {
                    traffic / 50.0
                };
                out.push((
                    labels(
                        "http_requests_total",
                        &[("route", route), ("status", status)],
                    ),
                    Kind::Counter(rate),
                ));
            }
        }
        out.push((
            labels("process_resident_memory_bytes", &[]),
            Kind::Gauge(rng.random_range(2e8..8e8_f64).round()),
        ));
        out.push((labels("up", &[]), Kind::Gauge(1.0)));
    }
    out
}

fn points(kind: &Kind, rng: &mut SmallRng, t0: i64) -> Vec<Sample> {
    let mut value = 0.0;
    (0..SAMPLES)
        .map(|k| {
            value = match kind {
                Kind::Counter(max) => value + (rng.random_range(0.0..*max) * 15.0).round(),
                Kind::Bucket(share) => value + (share * 15.0 * rng.random_range(0.5..1.5)).round(),
                Kind::Gauge(level) if *level == 1.0 => 1.0,
                Kind::Gauge(level) => (level * rng.random_range(0.9..1.1)).round(),
            };
            Sample {
                ts_ms: t0 + k * INTERVAL_MS,
                value,
            }
        })
        .collect()
}

fn median_and_max(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tenant = TenantId::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<Storage> = runtime
        .block_on(Storage::open(Config::default(), dir.path()))
        .expect("open storage");
    // Sample times never sit on a 60 s step boundary.
    let t0 = 1_790_000_000_000 + 1_234;
    let mut rng = SmallRng::seed_from_u64(11);
    let all = generate(options.series);
    let started = Instant::now();
    for chunk in all.chunks(BATCH_SERIES) {
        let write = MetricsWrite {
            series: chunk
                .iter()
                .map(|(labels, kind)| SeriesWrite {
                    labels: labels.clone(),
                    samples: points(kind, &mut rng, t0),
                    exemplars: Vec::new(),
                })
                .collect(),
            metadata: Vec::new(),
        };
        runtime
            .block_on(storage.append_metrics(&tenant, &write))
            .expect("append");
    }
    println!(
        "loaded {} series x {SAMPLES} samples in {:.1} s",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    let context =
        QueryContext::with_storage(query::Config::default(), storage.clone(), tenant.clone());
    let engine = Engine::new(context);
    let last = t0 + (SAMPLES - 1) * INTERVAL_MS;
    let (start, end) = (last - 55 * 60_000, last);
    let run = |query: &str, range: bool| {
        runtime.block_on(async {
            if range {
                engine.range(&tenant, query, start, end, 60_000).await
            } else {
                engine.instant(&tenant, query, end).await
            }
        })
    };
    let mut hot = Vec::new();
    for (_, query) in QUERIES {
        for range in [false, true] {
            hot.push(format!("{:?}", run(query, range).expect("hot query").value));
        }
    }
    let started = Instant::now();
    runtime.block_on(storage.flush()).expect("flush");
    let stats = storage.stats();
    println!(
        "flushed in {:.1} s: {} segments, {} bytes ({:.2} B/sample)",
        started.elapsed().as_secs_f64(),
        stats.segments,
        stats.segment_bytes,
        stats.segment_bytes as f64 / (all.len() as f64 * SAMPLES as f64)
    );
    println!("| query | kind | cold median ms | cold max ms | same answer as hot |");
    println!("|---|---|---|---|---|");
    let mut answers = hot.into_iter();
    let mut mismatches = 0;
    for (name, query) in QUERIES {
        for range in [false, true] {
            let want = answers.next().expect("one hot answer per case");
            let got = format!("{:?}", run(query, range).expect("cold query").value);
            let same = got == want;
            mismatches += usize::from(!same);
            let times: Vec<f64> = (0..options.runs)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(run(query, range).expect("cold query"));
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            let (median, max) = median_and_max(times);
            let kind = if range { "range" } else { "instant" };
            println!("| {name} | {kind} | {median:.1} | {max:.1} | {same} |");
        }
    }
    if mismatches > 0 {
        println!("{mismatches} cold answers differ from the hot ones");
        std::process::exit(1);
    }
}
