//! End-to-end storage harness: ingests a realistic generated workload, measures the
//! append throughput per CPU-second, flushes and compacts, then reports the bytes on
//! disk per sample, per log line and per span.
//!
//! Run: `cargo bench --bench footprint` (figures in BENCHMARKS.md).
#![allow(clippy::print_stdout)]

#[path = "workload.rs"]
mod workload;

use std::path::Path;
use std::time::Instant;

use proto::{ByteSize, HumanDuration, TenantId};
use storage::model::{logs_batch, spans_batch};
use storage::{Config, Storage};
use workload::{MetricsWorkload, RequestWorkload};

/// CPU seconds (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += disk_bytes(&path);
        } else {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

fn config() -> Config {
    Config {
        memtable_flush_size: ByteSize::mib(2048),
        memory_limit: ByteSize::mib(4096),
        flush_interval: HumanDuration::secs(86_400),
        compaction_interval: HumanDuration::secs(86_400),
        ..Config::default()
    }
}

struct Phase {
    units: f64,
    wall: f64,
    cpu: f64,
}

impl Phase {
    fn report(&self, what: &str) {
        println!(
            "{what:<34} {:>12.0}/s wall   {:>12.0}/s per CPU-second   ({:.2} s wall, {:.2} CPU-s)",
            self.units / self.wall,
            self.units / self.cpu.max(0.01),
            self.wall,
            self.cpu
        );
    }
}

async fn measure<F: Future<Output = f64>>(work: F) -> Phase {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let units = work.await;
    Phase {
        units,
        wall: wall.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu,
    }
}

async fn flush_and_compact(storage: &Storage) {
    storage.flush().await.expect("flush");
    storage.compact().await.expect("compact");
    storage.delete_replaced_segments_now().await;
}

/// Prints the compressed bytes of each column of the Parquet files under `dir` whose path contains `table`.
fn print_column_sizes(dir: &Path, table: &str) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut sizes: std::collections::BTreeMap<String, i64> = Default::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if path.to_string_lossy().contains(table)
            && path.extension().is_some_and(|e| e == "parquet")
        {
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            let Ok(reader) = SerializedFileReader::new(file) else {
                continue;
            };
            for group in reader.metadata().row_groups() {
                for column in group.columns() {
                    *sizes.entry(column.column_path().string()).or_default() +=
                        column.compressed_size();
                }
            }
        }
    }
    let line: Vec<String> = sizes.iter().map(|(c, b)| format!("{c} {b} B")).collect();
    println!("  {table} columns: {}", line.join(", "));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tenant = TenantId::default();
    let hours: i64 = std::env::var("FOOTPRINT_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(2);

    // Metrics: `hours` of 15 s scrapes, flushed every 30 minutes of data, then compacted.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(config(), dir.path()).await.expect("open");
    let mut metrics = MetricsWorkload::new(7);
    let scrapes = hours * 3600 * 1000 / workload::SCRAPE_INTERVAL_MS;
    let mut writes_per_flush = Vec::new();
    let mut total = Phase {
        units: 0.0,
        wall: 0.0,
        cpu: 0.0,
    };
    for scrape in 0..scrapes {
        writes_per_flush.push(metrics.scrape(2000));
        if (scrape + 1) % 120 == 0 || scrape + 1 == scrapes {
            let batch = std::mem::take(&mut writes_per_flush);
            let phase = measure(async {
                let mut samples = 0usize;
                for writes in &batch {
                    let appends = writes.iter().map(|w| storage.append_metrics(&tenant, w));
                    for result in futures::future::join_all(appends).await {
                        result.expect("append");
                    }
                    samples += writes.iter().map(|w| w.sample_count()).sum::<usize>();
                }
                samples as f64
            })
            .await;
            total.units += phase.units;
            total.wall += phase.wall;
            total.cpu += phase.cpu;
            storage.flush().await.expect("flush");
        }
    }
    total.report("metrics append (samples)");
    let samples = (scrapes as usize * metrics.series_count()) as f64;
    let level0 = disk_bytes(dir.path());
    flush_and_compact(&storage).await;
    let compacted = disk_bytes(dir.path());
    print_column_sizes(&dir.path().join("segments"), "samples");
    println!(
        "metrics: {} series, {samples} samples over {hours} h: {:.3} B/sample flushed (zstd 1), {:.3} B/sample compacted (zstd 3)",
        metrics.series_count(),
        level0 as f64 / samples,
        compacted as f64 / samples
    );
    storage.close().await.expect("close");

    // Logs and spans: requests through the gateway.
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(config(), dir.path()).await.expect("open");
    let mut requests = RequestWorkload::new(11);
    let (mut log_lines, mut raw_bytes, mut span_count) = (0usize, 0usize, 0usize);
    let mut log_batches = Vec::new();
    let mut span_batches = Vec::new();
    for _ in 0..100 {
        let (mut spans, mut logs) = (Vec::new(), Vec::new());
        while logs.len() < 2000 {
            let (s, l) = requests.request();
            spans.extend(s);
            logs.extend(l);
        }
        log_lines += logs.len();
        raw_bytes += logs.iter().map(|l| l.body.len() + 1).sum::<usize>();
        span_count += spans.len();
        log_batches.push(logs_batch(&logs).expect("batch"));
        span_batches.push(spans_batch(&spans).expect("batch"));
    }
    let phase = measure(async {
        for batch in log_batches {
            storage.append_logs(&tenant, batch).await.expect("append");
        }
        raw_bytes as f64
    })
    .await;
    phase.report("logs append (raw bytes)");
    let phase = measure(async {
        let mut pending = Vec::new();
        for batch in span_batches {
            pending.push(storage.append_spans(&tenant, batch));
            if pending.len() == 4 {
                for result in futures::future::join_all(pending.drain(..)).await {
                    result.expect("append");
                }
            }
        }
        for result in futures::future::join_all(pending).await {
            result.expect("append");
        }
        span_count as f64
    })
    .await;
    phase.report("spans append (spans)");
    let flush = measure(async {
        let report = storage.flush().await.expect("flush");
        report.rows as f64
    })
    .await;
    flush.report("flush logs + spans (rows)");
    flush_and_compact(&storage).await;
    let segments = storage.segments();
    let bytes_of = |table: storage::Table| {
        segments
            .iter()
            .filter(|s| s.table == table)
            .map(|s| s.bytes)
            .sum::<u64>()
    };
    let logs_bytes = bytes_of(storage::Table::Logs);
    let index_bytes: u64 = segments
        .iter()
        .filter(|s| s.table == storage::Table::Logs)
        .map(|s| s.bytes - s.parquet_bytes)
        .sum();
    println!(
        "logs: {log_lines} lines, {raw_bytes} raw bytes: parquet {:.1}% + index {:.1}% = {:.1}% of raw, {:.1} B/line",
        (logs_bytes - index_bytes) as f64 * 100.0 / raw_bytes as f64,
        index_bytes as f64 * 100.0 / raw_bytes as f64,
        logs_bytes as f64 * 100.0 / raw_bytes as f64,
        logs_bytes as f64 / log_lines as f64
    );
    println!(
        "spans: {span_count} spans: {:.1} B/span",
        bytes_of(storage::Table::Spans) as f64 / span_count as f64
    );
    storage.close().await.expect("close");
}
