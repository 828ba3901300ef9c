//! Criterion benchmark of PromQL through `query::promql::Engine`, in process: a series
//! selector, `rate`, `sum by` and `histogram_quantile` over latency histograms of
//! 100 k series × 1 h at 15 s (240 samples each, 24 M samples).
//!
//! Run: `cargo bench --bench promql`. Scale the data down with
//! `SIGHTLINE_PROMQL_BENCH_SERIES=10000` (any multiple of 10; setup time grows linearly).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto::TenantId;
use query::QueryContext;
use query::promql::Engine;
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::series::Labels;
use storage::{Config, Storage};

const STEP_MS: i64 = 15_000;
const SAMPLES: i64 = 240;
const BOUNDS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];
const SERVICES: usize = 20;
/// Series written per append call.
const BATCH_SERIES: usize = 2_000;

fn series_count() -> usize {
    std::env::var("SIGHTLINE_PROMQL_BENCH_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
        .max(BOUNDS.len())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Labels of histogram series `index`: one of `SERVICES` services, an instance, a bucket.
fn labels(index: usize) -> Labels {
    let histogram = index / BOUNDS.len();
    Labels::new(vec![
        (
            "__name__".to_string(),
            "http_request_duration_seconds_bucket".to_string(),
        ),
        (
            "service".to_string(),
            format!("svc-{}", histogram % SERVICES),
        ),
        ("instance".to_string(), format!("pod-{histogram}")),
        ("le".to_string(), BOUNDS[index % BOUNDS.len()].to_string()),
    ])
    .expect("labels")
}

/// Writes the data set; returns the time of the first sample.
fn load(runtime: &tokio::runtime::Runtime, storage: &Storage, tenant: &TenantId) -> i64 {
    let t0 = 1_790_000_000_000;
    let count = series_count();
    let mut index = 0;
    while index < count {
        let series = (index..(index + BATCH_SERIES).min(count))
            .map(|i| {
                let bucket = (i % BOUNDS.len()) as f64;
                SeriesWrite {
                    labels: labels(i),
                    samples: (0..SAMPLES)
                        .map(|k| Sample {
                            ts_ms: t0 + k * STEP_MS,
                            // Cumulative buckets: higher `le`, more requests.
                            value: (k as f64) * (1.0 + bucket) * (1.0 + (i % 7) as f64),
                        })
                        .collect(),
                    exemplars: Vec::new(),
                }
            })
            .collect();
        let write = MetricsWrite {
            series,
            metadata: Vec::new(),
        };
        runtime
            .block_on(storage.append_metrics(tenant, &write))
            .expect("append");
        index += BATCH_SERIES;
    }
    t0
}

fn promql(c: &mut Criterion) {
    let runtime = runtime();
    let tenant = TenantId::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<Storage> = runtime
        .block_on(Storage::open(Config::default(), dir.path()))
        .expect("open storage");
    let t0 = load(&runtime, &storage, &tenant);
    let context = QueryContext::with_storage(query::Config::default(), storage, tenant.clone());
    let engine = Engine::new(context);
    let (start, end) = (t0 + 5 * 60_000, t0 + (SAMPLES - 1) * STEP_MS);
    let series = series_count() as u64;

    let mut group = c.benchmark_group("promql");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(series * SAMPLES as u64));
    let cases = [
        (
            "selector_instant",
            "http_request_duration_seconds_bucket{service=\"svc-3\"}",
            false,
        ),
        (
            "rate_sum_by_range_1m",
            "sum by (service) (rate(http_request_duration_seconds_bucket[5m]))",
            true,
        ),
        (
            "histogram_quantile_range_1m",
            "histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket[5m])))",
            true,
        ),
        (
            "histogram_quantile_instant",
            "histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket[5m])))",
            false,
        ),
    ];
    for (name, query, is_range) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let result = runtime.block_on(async {
                    if is_range {
                        engine.range(&tenant, query, start, end, 60_000).await
                    } else {
                        engine.instant(&tenant, query, end).await
                    }
                });
                std::hint::black_box(result.expect("query"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, promql);
criterion_main!(benches);
