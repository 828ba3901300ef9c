//! Full-text log search latency over a large log set, next to `grep -c` over the same
//! raw text in the same run: a rare term, a common term, a phrase, each with and
//! without a service filter, through `query::logql::search` (one page of 100 lines,
//! newest first) and `query::logql::count_by_bucket` (every hit counted).
//!
//! Lines are appended straight into the storage engine (no HTTP), flushed to segments
//! (Parquet + full-text index) so the searches run on the cold path.
//!
//! The peers are `grep -c` and, when installed, `rg -c` (ripgrep) over the raw text of
//! the same lines (`<service> <body>` per line), in the same run.
//!
//! Run: `LOG_BENCH_LINES=10000000 cargo bench --bench log_search` (default 1 M lines;
//! `LOG_BENCH_FLUSH_LINES`, default 2 M, lines per flushed segment; `LOG_BENCH_ONLY`, a
//! substring of the case names to run, e.g. `rare` while profiling; `LOG_BENCH_RUNS`,
//! default 5, page runs per case; `LOG_BENCH_BLOCK_ROWS`, `storage.log_index_block_rows`,
//! default 64).

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::TenantId;
use query::logql::{LogSearch, count_by_bucket, search};
use storage::model::{LogRecord, logs_batch};
use storage::{Config, Storage};

const SERVICES: usize = 20;
const BATCH: usize = 20_000;
const RARE: &str = "kaboomerror";
const RARE_EVERY: usize = 100_000;

fn line(i: usize, rng: &mut u64) -> (String, String) {
    // xorshift: deterministic, no dependency.
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let r = *rng;
    let service = format!("svc-{:02}", (r >> 40) as usize % SERVICES);
    // Half the rare lines come from svc-03, so the service filter has hits.
    let service = if i % (2 * RARE_EVERY) == 7 {
        "svc-03".to_string()
    } else {
        service
    };
    let body = if i % RARE_EVERY == 7 {
        format!("fatal {RARE} in worker {} after {}ms", r % 64, r % 900)
    } else {
        match r % 100 {
            0 => format!(
                "connection refused to 10.0.{}.{}:5432 retry {}",
                r % 256,
                (r >> 8) % 256,
                r % 5
            ),
            1..=49 => format!(
                "GET /api/v1/orders/{} request served status=200 in {}ms user={}",
                r % 100_000,
                r % 500,
                (r >> 20) % 10_000
            ),
            50..=79 => format!("cache hit key=session:{:x} ttl={}s", r, r % 3600),
            _ => format!(
                "processed batch {} of {} items for tenant t{}",
                r % 1000,
                r % 50_000,
                r % 97
            ),
        }
    };
    (service, body)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let total: usize = std::env::var("LOG_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config {
        log_index_block_rows: std::env::var("LOG_BENCH_BLOCK_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(Config::default().log_index_block_rows),
        ..Config::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let raw_path = dir.path().join("raw.log");
    let storage: Arc<Storage> = runtime
        .block_on(Storage::open(config, &dir.path().join("data")))
        .expect("open storage");
    let tenant = TenantId::default();
    let mut out = std::io::stdout();

    let started = Instant::now();
    // Recent enough that retention keeps it: lines one per ms, ending about now.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let base_ns: i64 = now_ns - total as i64 * 1_000_000;
    let mut raw = std::io::BufWriter::new(std::fs::File::create(&raw_path).expect("raw file"));
    let mut rng = 0x9e3779b97f4a7c15u64;
    let flush_every: usize = std::env::var("LOG_BENCH_FLUSH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let mut written = 0;
    let mut since_flush = 0;
    while written < total {
        let n = BATCH.min(total - written);
        let records: Vec<LogRecord> = (written..written + n)
            .map(|i| {
                let (service, body) = line(i, &mut rng);
                writeln!(raw, "{service} {body}").expect("raw write");
                LogRecord {
                    timestamp_ns: base_ns + i as i64 * 1_000_000,
                    observed_ns: base_ns,
                    service,
                    severity_text: Some("INFO".into()),
                    severity_number: 9,
                    body,
                    ..LogRecord::default()
                }
            })
            .collect();
        let batch = logs_batch(&records).expect("batch");
        runtime
            .block_on(storage.append_logs(&tenant, batch))
            .expect("append");
        written += n;
        since_flush += n;
        if since_flush >= flush_every {
            runtime.block_on(storage.flush()).expect("flush");
            since_flush = 0;
        }
    }
    raw.flush().expect("raw flush");
    drop(raw);
    runtime.block_on(storage.flush()).expect("flush");
    let segments = storage.segments();
    let parquet_bytes: u64 = segments.iter().map(|s| s.parquet_bytes).sum();
    let all_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let _ = writeln!(
        out,
        "log_search: {total} lines written and flushed in {:.1}s, {} segments, {:.1} MB Parquet + {:.1} MB index",
        started.elapsed().as_secs_f64(),
        segments.len(),
        parquet_bytes as f64 / 1e6,
        all_bytes.saturating_sub(parquet_bytes) as f64 / 1e6,
    );
    let only = std::env::var("LOG_BENCH_ONLY").unwrap_or_default();
    let runs: usize = std::env::var("LOG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);

    let end_ns = base_ns + total as i64 * 1_000_000;
    let cases: [(&str, &str, Option<&str>, &str); 6] = [
        ("rare term", RARE, None, RARE),
        ("rare term, service", RARE, Some("svc-03"), RARE),
        ("common term", "request", None, "request"),
        ("common term, service", "request", Some("svc-03"), "request"),
        (
            "phrase",
            "\"connection refused\"",
            None,
            "connection refused",
        ),
        (
            "phrase, service",
            "\"connection refused\"",
            Some("svc-03"),
            "connection refused",
        ),
    ];
    let ripgrep = Command::new("rg").arg("--version").output().is_ok();
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>14} {:>10} {:>12} {:>10} {:>10}",
        "query", "page p50 ms", "count p50 ms", "hits", "grep -c ms", "rg -c ms", "grep hits"
    );
    for (name, q, service, needle) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let request = LogSearch {
            query: q.to_string(),
            start_ns: base_ns,
            end_ns,
            limit: 100,
            services: service.map(|s| vec![s.to_string()]).unwrap_or_default(),
            ..LogSearch::default()
        };
        let mut page_times = Vec::new();
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let page = runtime
                .block_on(search(&storage, &tenant, &request))
                .expect("search");
            page_times.push(t.elapsed());
            if std::env::var("LOG_BENCH_DEBUG").is_ok() {
                let _ = writeln!(out, "  {name}: page of {} lines", page.lines.len());
            }
        }
        let mut count_times = Vec::new();
        let mut hits = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let histogram = runtime
                .block_on(count_by_bucket(&storage, &tenant, &request, 60_000_000_000))
                .expect("count");
            count_times.push(t.elapsed());
            hits = histogram.total;
        }
        let pattern = match service {
            Some(s) => format!("^{s} .*{needle}"),
            None => needle.to_string(),
        };
        let peer = |program: &str| {
            let mut times = Vec::new();
            let mut hits = String::new();
            for _ in 0..3 {
                let t = Instant::now();
                let output = Command::new(program)
                    .arg("-c")
                    .arg(&pattern)
                    .arg(&raw_path)
                    .output()
                    .expect("peer");
                times.push(t.elapsed());
                hits = String::from_utf8_lossy(&output.stdout).trim().to_string();
            }
            (median(times).as_secs_f64() * 1e3, hits)
        };
        let (grep_ms, grep_hits) = peer("grep");
        let rg_ms = if ripgrep {
            format!("{:.2}", peer("rg").0)
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            out,
            "{:<24} {:>12.2} {:>14.2} {:>10} {:>12.2} {:>10} {:>10}",
            name,
            median(page_times).as_secs_f64() * 1e3,
            median(count_times).as_secs_f64() * 1e3,
            hits,
            grep_ms,
            rg_ms,
            grep_hits
        );
    }
    runtime.block_on(storage.close()).expect("close");
}
