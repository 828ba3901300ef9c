//! Trace-by-id latency among many stored spans, and trace search latency, through the
//! query crate's trace API (`query::traces::trace_by_id`, `query::traces::search`): the
//! code the Tempo, Zipkin and Jaeger endpoints call, minus HTTP.
//!
//! Spans come from the deterministic request workload (`benches/workload.rs`: gateway
//! rooted call trees of 4-9 spans), appended straight into the storage engine, flushed
//! every `TRACE_BENCH_FLUSH_SPANS` spans (default 1 M) and compacted, so lookups run on
//! the cold path over several segments, as on a server that has run for a while.
//!
//! Run: `TRACE_BENCH_SPANS=10000000 cargo bench --bench trace_lookup` (default 1 M).

#[path = "workload.rs"]
mod workload;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{ByteSize, HumanDuration, TenantId, TraceId};
use query::QueryContext;
use query::traces::{TimeRange, TraceSearch, search, search_full_scan, trace_by_id};
use storage::model::spans_batch;
use storage::{Config, Storage};
use workload::RequestWorkload;

const BATCH_SPANS: usize = 20_000;
/// Trace ids looked up (spread evenly over the whole data set).
const LOOKUPS: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn storage_config() -> Config {
    Config {
        memtable_flush_size: ByteSize::mib(2048),
        memory_limit: ByteSize::mib(4096),
        flush_interval: HumanDuration::secs(86_400),
        compaction_interval: HumanDuration::secs(86_400),
        spans_retention: HumanDuration::secs(3650 * 86_400),
        logs_retention: HumanDuration::secs(3650 * 86_400),
        ..Config::default()
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1e3
}

fn main() {
    let total = env_usize("TRACE_BENCH_SPANS", 1_000_000);
    let flush_every = env_usize("TRACE_BENCH_FLUSH_SPANS", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<Storage> = runtime
        .block_on(Storage::open(storage_config(), dir.path()))
        .expect("open storage");
    let tenant = TenantId::default();
    let mut out = std::io::stdout();

    // ~10.5 ms between requests on average: start far enough back that the data ends now.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let mut requests = RequestWorkload::new(23);
    requests.now_ns = now_ns - (total as i64 / 6) * 10_500_000;

    let started = Instant::now();
    let mut written = 0usize;
    let mut since_flush = 0usize;
    let mut trace_ids: Vec<TraceId> = Vec::new();
    let mut request_count = 0usize;
    let mut pending = Vec::with_capacity(BATCH_SPANS + 16);
    while written < total {
        let (spans, _logs) = requests.request();
        request_count += 1;
        trace_ids.push(spans[0].trace_id);
        pending.extend(spans);
        if pending.len() >= BATCH_SPANS || written + pending.len() >= total {
            let batch = spans_batch(&pending).expect("spans batch");
            written += pending.len();
            since_flush += pending.len();
            pending.clear();
            runtime
                .block_on(storage.append_spans(&tenant, batch))
                .expect("append spans");
            if since_flush >= flush_every {
                runtime.block_on(storage.flush()).expect("flush");
                since_flush = 0;
            }
        }
    }
    runtime.block_on(storage.flush()).expect("flush");
    let flushed = storage.segments().len();
    runtime.block_on(storage.compact()).expect("compact");
    runtime.block_on(storage.delete_replaced_segments_now());
    let end_ns = requests.now_ns + 10_000_000_000;
    let segments = storage.segments();
    let parquet_bytes: u64 = segments.iter().map(|s| s.parquet_bytes).sum();
    let _ = writeln!(
        out,
        "trace_lookup: {written} spans in {request_count} traces written in {:.1}s; {flushed} segments flushed, {} after compaction ({:.1} B/span)",
        started.elapsed().as_secs_f64(),
        segments.len(),
        parquet_bytes as f64 / written as f64
    );

    let context =
        QueryContext::with_storage(query::Config::default(), storage.clone(), tenant.clone());
    let step = (trace_ids.len() / LOOKUPS).max(1);
    let wanted: Vec<TraceId> = trace_ids
        .iter()
        .step_by(step)
        .take(LOOKUPS)
        .copied()
        .collect();

    // First lookup: footers, bloom filters and page indexes not cached yet.
    let t = Instant::now();
    let first = runtime
        .block_on(trace_by_id(&context, &tenant, wanted[0], None))
        .expect("trace by id")
        .expect("trace found");
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut found_times = Vec::new();
    let mut spans_found = first.spans.len();
    for id in &wanted {
        let t = Instant::now();
        let trace = runtime
            .block_on(trace_by_id(&context, &tenant, *id, None))
            .expect("trace by id")
            .expect("trace found");
        found_times.push(t.elapsed());
        spans_found += trace.spans.len();
        assert_eq!(trace.trace_id, *id);
    }
    // Absent ids: the bloom filters should answer without reading pages.
    let mut missing_times = Vec::new();
    let mut rng = 0x2545f4914f6cdd1du64;
    for _ in 0..LOOKUPS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let id = TraceId((u128::from(rng) << 64 | u128::from(rng.rotate_left(17))).to_be_bytes());
        let t = Instant::now();
        let trace = runtime
            .block_on(trace_by_id(&context, &tenant, id, None))
            .expect("trace by id");
        missing_times.push(t.elapsed());
        assert!(trace.is_none());
    }
    let _ = writeln!(
        out,
        "trace by id, present ({} lookups, {} spans): first (cold caches) {first_ms:.2} ms, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wanted.len(),
        spans_found,
        percentile(&mut found_times, 0.5),
        percentile(&mut found_times, 0.95),
        percentile(&mut found_times, 0.99),
        percentile(&mut found_times, 1.0),
    );
    let _ = writeln!(
        out,
        "trace by id, absent ({LOOKUPS} lookups): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        percentile(&mut missing_times, 0.5),
        percentile(&mut missing_times, 0.95),
        percentile(&mut missing_times, 0.99),
    );

    // Trace search over the last 15 minutes and the last hour of data.
    for (label, window_ns) in [
        ("15 min", 15 * 60 * 1_000_000_000i64),
        ("1 h", 3_600 * 1_000_000_000i64),
    ] {
        let range = TimeRange {
            start_ns: end_ns - window_ns,
            end_ns,
        };
        let cases: Vec<(&str, TraceSearch)> = vec![
            ("any, limit 20", TraceSearch::new(range, 20)),
            (
                "service + min duration 50 ms, limit 20",
                TraceSearch {
                    service: Some("interest-settlement".into()),
                    min_duration_ns: Some(50_000_000),
                    ..TraceSearch::new(range, 20)
                },
            ),
            (
                "error spans, limit 100",
                TraceSearch {
                    error: Some(true),
                    ..TraceSearch::new(range, 100)
                },
            ),
        ];
        for (name, request) in cases {
            let mut times = Vec::new();
            let mut found = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                found = runtime
                    .block_on(search(&context, &tenant, &request))
                    .expect("search");
                times.push(t.elapsed());
            }
            // The full-scan search it replaced, same data, same run (3 runs: it is slow).
            let mut full_times = Vec::new();
            let mut full = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                full = runtime
                    .block_on(search_full_scan(&context, &tenant, &request))
                    .expect("full-scan search");
                full_times.push(t.elapsed());
            }
            assert!(
                found == full,
                "search and full-scan search disagree on {name}"
            );
            let _ = writeln!(
                out,
                "trace search, last {label}, {name}: p50 {:.1} ms, full scan p50 {:.1} ms ({} traces, same answer)",
                percentile(&mut times, 0.5),
                percentile(&mut full_times, 0.5),
                found.len()
            );
        }
    }
    runtime.block_on(storage.close()).expect("close");
}
