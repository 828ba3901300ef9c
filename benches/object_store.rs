//! The same three reads over segments on local disk and in an S3 bucket (SeaweedFS's S3
//! gateway on loopback, started here), with a cold and a warm cache: a PromQL range
//! query, a full-text log search (one page of 100 lines) and a trace by id.
//!
//! Each backend gets the same data (metric series, log lines, traces), appended straight
//! into the storage engine and flushed to segments. "Cold" is the first run of a query
//! on a freshly opened engine: no parsed footers or log indexes in memory and, for S3,
//! an empty read cache (the cache directory is emptied at open). For local disk the OS
//! page cache stays warm, so local "cold" is the engine's cold, not the disk's. "Warm"
//! is the median of the next runs on the same engine.
//!
//! Run (needs `weed`: `bash scripts/test-deps/seaweedfs.sh`):
//! `cargo bench --bench object_store`. Scale with `OBJECT_STORE_BENCH_SERIES` (default
//! 2000 series × 240 samples), `OBJECT_STORE_BENCH_LOGS` (default 200000 lines),
//! `OBJECT_STORE_BENCH_TRACES` (default 20000 traces of 5 spans).

#[path = "../tests/s3_support/mod.rs"]
mod s3_support;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{SpanId, TenantId, TraceId};
use query::QueryContext;
use query::logql::{LogSearch, search};
use query::promql::Engine;
use query::traces::trace_by_id;
use s3_support::{SECRET_KEY, Seaweed};
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::model::{LogRecord, SpanRecord, logs_batch, spans_batch};
use storage::series::Labels;
use storage::{Config, Storage};

const BUCKET: &str = "bench";
const STEP_MS: i64 = 15_000;
const SAMPLES: i64 = 240;
const SERVICES: usize = 20;
const SPANS_PER_TRACE: usize = 5;
const COLD_RUNS: usize = 3;
const WARM_RUNS: usize = 10;
const PROMQL: &str = "sum by (service) (rate(bench_requests_total[5m]))";
const LOG_QUERY: &str = "\"connection refused\"";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sizes {
    series: usize,
    logs: usize,
    traces: usize,
}

fn trace_id(index: usize) -> TraceId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(
        &(index as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_be_bytes(),
    );
    id[8..].copy_from_slice(&(index as u64).to_be_bytes());
    TraceId(id)
}

/// Appends the data set; returns the time of the first sample (ms).
async fn load(storage: &Storage, tenant: &TenantId, sizes: &Sizes, t0_ms: i64) {
    for chunk in (0..sizes.series).collect::<Vec<_>>().chunks(1000) {
        let series = chunk
            .iter()
            .map(|i| SeriesWrite {
                labels: Labels::new(vec![
                    ("__name__".to_string(), "bench_requests_total".to_string()),
                    ("service".to_string(), format!("svc-{}", i % SERVICES)),
                    ("instance".to_string(), format!("pod-{i}")),
                ])
                .expect("labels"),
                samples: (0..SAMPLES)
                    .map(|k| Sample {
                        ts_ms: t0_ms + k * STEP_MS,
                        value: (k as f64) * (1.0 + (i % 7) as f64),
                    })
                    .collect(),
                exemplars: Vec::new(),
            })
            .collect();
        let write = MetricsWrite {
            series,
            metadata: Vec::new(),
        };
        storage
            .append_metrics(tenant, &write)
            .await
            .expect("append metrics");
    }
    let span_ms = (SAMPLES * STEP_MS) as usize;
    for chunk in (0..sizes.logs).collect::<Vec<_>>().chunks(20_000) {
        let records: Vec<LogRecord> = chunk
            .iter()
            .map(|i| {
                let body = match i % 50 {
                    0 => format!("connection refused to 10.0.{}.{}:5432", i % 256, i % 97),
                    1..=25 => format!("GET /api/orders/{i} served status=200 in {}ms", i % 500),
                    _ => format!("cache hit key=session:{i:x} ttl={}s", i % 3600),
                };
                LogRecord {
                    timestamp_ns: (t0_ms + (i * span_ms / sizes.logs.max(1)) as i64) * 1_000_000,
                    observed_ns: t0_ms * 1_000_000,
                    service: format!("svc-{}", i % SERVICES),
                    severity_text: Some("INFO".into()),
                    severity_number: 9,
                    body,
                    ..LogRecord::default()
                }
            })
            .collect();
        storage
            .append_logs(tenant, logs_batch(&records).expect("logs batch"))
            .await
            .expect("append logs");
    }
    for chunk in (0..sizes.traces).collect::<Vec<_>>().chunks(4_000) {
        let spans: Vec<SpanRecord> = chunk
            .iter()
            .flat_map(|t| {
                let start_ns = (t0_ms + (t * span_ms / sizes.traces.max(1)) as i64) * 1_000_000;
                (0..SPANS_PER_TRACE).map(move |s| SpanRecord {
                    trace_id: trace_id(*t),
                    span_id: SpanId(((*t * SPANS_PER_TRACE + s) as u64 + 1).to_be_bytes()),
                    parent_span_id: (s > 0)
                        .then(|| SpanId(((*t * SPANS_PER_TRACE) as u64 + 1).to_be_bytes())),
                    service: format!("svc-{}", (t + s) % SERVICES),
                    name: format!("op-{s}"),
                    kind: "server".to_string(),
                    start_ns: start_ns + s as i64 * 1_000_000,
                    duration_ns: 5_000_000,
                    ..SpanRecord::default()
                })
            })
            .collect();
        storage
            .append_spans(tenant, spans_batch(&spans).expect("spans batch"))
            .await
            .expect("append spans");
    }
}

#[derive(Clone, Copy)]
enum Read {
    PromqlRange,
    LogSearch,
    TraceById,
}

impl Read {
    const ALL: [Read; 3] = [Read::PromqlRange, Read::LogSearch, Read::TraceById];

    fn name(self) -> &'static str {
        match self {
            Read::PromqlRange => "promql range (1h, 1m step)",
            Read::LogSearch => "log search, phrase, 1 page",
            Read::TraceById => "trace by id",
        }
    }
}

/// Runs one read and returns how long it took and how many items it returned.
async fn run(
    storage: &Arc<Storage>,
    tenant: &TenantId,
    read: Read,
    sizes: &Sizes,
    t0_ms: i64,
) -> (Duration, usize) {
    let context =
        QueryContext::with_storage(query::Config::default(), storage.clone(), tenant.clone());
    let end_ms = t0_ms + (SAMPLES - 1) * STEP_MS;
    let started = Instant::now();
    let items = match read {
        Read::PromqlRange => {
            let engine = Engine::new(context);
            let evaluated = engine
                .range(tenant, PROMQL, t0_ms + 5 * 60_000, end_ms, 60_000)
                .await
                .expect("promql");
            match evaluated.value {
                query::promql::Value::Matrix(series) => series.iter().map(|s| s.points.len()).sum(),
                other => panic!("a range query answers a matrix, not {other:?}"),
            }
        }
        Read::LogSearch => {
            let request = LogSearch {
                query: LOG_QUERY.to_string(),
                start_ns: t0_ms * 1_000_000,
                end_ns: end_ms * 1_000_000,
                limit: 100,
                ..LogSearch::default()
            };
            search(storage, tenant, &request)
                .await
                .expect("search")
                .lines
                .len()
        }
        Read::TraceById => {
            let wanted = trace_id(sizes.traces / 3);
            trace_by_id(&context, tenant, wanted, None)
                .await
                .expect("trace")
                .map_or(0, |trace| trace.spans.len())
        }
    };
    (started.elapsed(), items)
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

struct Figures {
    cold_ms: f64,
    warm_ms: f64,
    items: usize,
}

async fn measure(config: &Config, data_dir: &Path, sizes: &Sizes, t0_ms: i64) -> Vec<Figures> {
    let tenant = TenantId::default();
    let storage = Storage::open(config.clone(), data_dir).await.expect("open");
    load(&storage, &tenant, sizes, t0_ms).await;
    storage.flush().await.expect("flush");
    storage.close().await.expect("close");
    drop(storage);
    let mut figures = Vec::new();
    for read in Read::ALL {
        let mut cold = Vec::new();
        for _ in 0..COLD_RUNS {
            let storage = Storage::open(config.clone(), data_dir)
                .await
                .expect("reopen");
            cold.push(run(&storage, &tenant, read, sizes, t0_ms).await.0);
            storage.close().await.expect("close");
        }
        let storage = Storage::open(config.clone(), data_dir)
            .await
            .expect("reopen");
        let (_, items) = run(&storage, &tenant, read, sizes, t0_ms).await;
        // Let the background cache fills of the first run land.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut warm = Vec::new();
        for _ in 0..WARM_RUNS {
            warm.push(run(&storage, &tenant, read, sizes, t0_ms).await.0);
        }
        storage.close().await.expect("close");
        figures.push(Figures {
            cold_ms: median(cold),
            warm_ms: median(warm),
            items,
        });
    }
    figures
}

fn main() {
    let sizes = Sizes {
        series: env_count("OBJECT_STORE_BENCH_SERIES", 2_000),
        logs: env_count("OBJECT_STORE_BENCH_LOGS", 200_000),
        traces: env_count("OBJECT_STORE_BENCH_TRACES", 20_000),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = std::io::stdout();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0_ms = now_ms - 2 * SAMPLES * STEP_MS;
    let dir = tempfile::tempdir().expect("tempdir");

    let local = runtime.block_on(measure(
        &Config::default(),
        &dir.path().join("local"),
        &sizes,
        t0_ms,
    ));

    let seaweed = runtime.block_on(Seaweed::start(&[BUCKET]));
    let credentials = seaweed.credentials_file(dir.path(), SECRET_KEY);
    let mut s3 = Config {
        url: Some(format!("s3://{BUCKET}/bench")),
        ..Config::default()
    };
    s3.s3.endpoint = Some(seaweed.endpoint());
    s3.s3.allow_http = true;
    s3.s3.credentials_file = Some(credentials);
    let remote = runtime.block_on(measure(&s3, &dir.path().join("s3"), &sizes, t0_ms));
    let objects = runtime.block_on(seaweed.keys(BUCKET, "bench"));

    let _ = writeln!(
        out,
        "object_store: {} series x {SAMPLES} samples, {} log lines, {} traces x {SPANS_PER_TRACE} spans; {} objects in the bucket",
        sizes.series,
        sizes.logs,
        sizes.traces,
        objects.len()
    );
    let _ = writeln!(
        out,
        "{:<28} {:>14} {:>14} {:>14} {:>14} {:>7}",
        "read", "local cold ms", "local warm ms", "s3 cold ms", "s3 warm ms", "items"
    );
    for ((read, local), remote) in Read::ALL.iter().zip(&local).zip(&remote) {
        assert_eq!(local.items, remote.items, "{}: same answer", read.name());
        let _ = writeln!(
            out,
            "{:<28} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>7}",
            read.name(),
            local.cold_ms,
            local.warm_ms,
            remote.cold_ms,
            remote.warm_ms,
            local.items
        );
    }
}
