//! SQL latency over the `logs` and `spans` tables (`query::sql::execute`, the code behind
//! `POST /api/v1/sql`, minus HTTP): filters with aggregates on each table, a full-text
//! `match()`, and the cross-signal join of the issue, "error logs of the spans slower
//! than 2 s in the last 15 minutes".
//!
//! Data: the deterministic request workload (`benches/workload.rs`), where 2 % of the
//! requests fail at their last hop with an ERROR line; here those failing spans are also
//! made slow (2.5 s), so the join has real hits. Appended straight into the storage
//! engine, flushed every `SQL_BENCH_FLUSH_REQUESTS` requests and compacted; the data ends
//! now.
//!
//! Run: `SQL_BENCH_REQUESTS=200000 cargo bench --bench sql` (default 100 k requests,
//! ~0.65 M spans and ~1.3 M log lines).

#[path = "workload.rs"]
mod workload;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{ByteSize, HumanDuration, TenantId};
use query::QueryContext;
use storage::model::{logs_batch, spans_batch};
use storage::{Config, Storage};
use workload::RequestWorkload;

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

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

const QUERIES: [(&str, &str); 6] = [
    (
        "logs: errors per service (filter + group by)",
        "SELECT service, count(*) AS n FROM logs WHERE severity = 'ERROR' \
         GROUP BY service ORDER BY n DESC",
    ),
    (
        "logs: lines per service, last 15 min",
        "SELECT service, count(*) AS n FROM logs WHERE ts > now() - INTERVAL '15 minutes' \
         GROUP BY service ORDER BY n DESC",
    ),
    (
        "logs: match(body, 'SocketTimeoutException')",
        "SELECT count(*) FROM logs WHERE match(body, 'SocketTimeoutException')",
    ),
    (
        "spans: slow spans per service (filter + avg)",
        "SELECT service, count(*) AS n, avg(duration_ns) AS mean FROM spans \
         WHERE duration_ns > 50000000 GROUP BY service ORDER BY n DESC",
    ),
    (
        "spans: p99-ish per operation, last 15 min",
        "SELECT name, max(duration_ns), approx_percentile_cont(duration_ns, 0.99) FROM spans \
         WHERE start > now() - INTERVAL '15 minutes' GROUP BY name",
    ),
    (
        "join: error logs of spans > 2 s, last 15 min",
        "SELECT s.service, s.name, l.severity, l.body, l.trace_id \
         FROM spans s JOIN logs l ON l.trace_id = s.trace_id AND l.span_id = s.span_id \
         WHERE s.duration_ns > 2000000000 AND s.start > now() - INTERVAL '15 minutes' \
           AND l.ts > now() - INTERVAL '15 minutes' AND l.severity = 'ERROR'",
    ),
];

fn main() {
    let requests_total = env_usize("SQL_BENCH_REQUESTS", 100_000);
    let flush_every = env_usize("SQL_BENCH_FLUSH_REQUESTS", 50_000);
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

    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let mut requests = RequestWorkload::new(31);
    // ~10.5 ms between requests on average; end a little before now.
    requests.now_ns = now_ns - requests_total as i64 * 10_500_000 - 5_000_000_000;
    let started = Instant::now();
    let (mut span_count, mut log_count, mut slow) = (0usize, 0usize, 0usize);
    let (mut spans, mut logs) = (Vec::new(), Vec::new());
    for request in 0..requests_total {
        let (mut s, l) = requests.request();
        for span in &mut s {
            if span.status_code == 2 {
                span.duration_ns = 2_500_000_000;
                slow += 1;
            }
        }
        spans.extend(s);
        logs.extend(l);
        if spans.len() >= 20_000 || request + 1 == requests_total {
            span_count += spans.len();
            log_count += logs.len();
            let span_batch = spans_batch(&std::mem::take(&mut spans)).expect("spans batch");
            let log_batch = logs_batch(&std::mem::take(&mut logs)).expect("logs batch");
            runtime
                .block_on(storage.append_spans(&tenant, span_batch))
                .expect("append spans");
            runtime
                .block_on(storage.append_logs(&tenant, log_batch))
                .expect("append logs");
        }
        if (request + 1) % flush_every == 0 {
            runtime.block_on(storage.flush()).expect("flush");
        }
    }
    runtime.block_on(storage.flush()).expect("flush");
    runtime.block_on(storage.compact()).expect("compact");
    runtime.block_on(storage.delete_replaced_segments_now());
    let _ = writeln!(
        out,
        "sql: {requests_total} requests, {span_count} spans ({slow} slow failing spans), {log_count} log lines, written in {:.1}s, {} segments",
        started.elapsed().as_secs_f64(),
        storage.segments().len()
    );

    let context =
        QueryContext::with_storage(query::Config::default(), storage.clone(), tenant.clone());
    for (name, sql) in QUERIES {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let output = runtime
                .block_on(query::sql::execute(&context, &tenant, sql, 10_000))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            times.push(t.elapsed());
            rows = output.rows();
        }
        let _ = writeln!(
            out,
            "{name:<50} p50 {:>9.1} ms  ({rows} rows)",
            median(times)
        );
    }
    runtime.block_on(storage.close()).expect("close");
}
