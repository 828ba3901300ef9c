//! Criterion micro-benchmarks of the storage engine: append throughput per signal
//! (into WAL + memtable, acknowledged after fsync) and flush throughput.
//!
//! Run: `cargo bench --bench storage` (numbers in BENCHMARKS.md).

#[path = "workload.rs"]
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use proto::TenantId;
use storage::model::{logs_batch, spans_batch};
use storage::{Config, Storage};
use workload::{MetricsWorkload, RequestWorkload};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn open(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> Arc<Storage> {
    runtime
        .block_on(Storage::open(Config::default(), dir))
        .expect("open storage")
}

fn append(c: &mut Criterion) {
    let runtime = runtime();
    let tenant = TenantId::default();
    let mut group = c.benchmark_group("append");
    group.measurement_time(Duration::from_secs(10));

    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(&runtime, dir.path());
    let mut metrics = MetricsWorkload::new(1);
    group.throughput(Throughput::Elements(metrics.series_count() as u64));
    group.bench_function("metrics_scrape_2000_per_write", |b| {
        b.iter_batched(
            || metrics.scrape(2000),
            |writes| {
                runtime.block_on(async {
                    let appends = writes.iter().map(|w| storage.append_metrics(&tenant, w));
                    for result in futures::future::join_all(appends).await {
                        result.expect("append");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });

    let mut requests = RequestWorkload::new(2);
    let mut make_logs = || {
        let mut lines = Vec::new();
        while lines.len() < 2000 {
            lines.extend(requests.request().1);
        }
        let bytes: usize = lines.iter().map(|l| l.body.len()).sum();
        (logs_batch(&lines).expect("batch"), bytes)
    };
    let (_, sample_bytes) = make_logs();
    group.throughput(Throughput::Bytes(sample_bytes as u64));
    group.bench_function("logs_2000_lines", |b| {
        b.iter_batched(
            || make_logs().0,
            |batch| {
                runtime
                    .block_on(storage.append_logs(&tenant, batch))
                    .expect("append")
            },
            BatchSize::SmallInput,
        )
    });

    let mut requests = RequestWorkload::new(3);
    group.throughput(Throughput::Elements(4 * 1000));
    group.bench_function("spans_4x1000_concurrent", |b| {
        b.iter_batched(
            || {
                (0..4)
                    .map(|_| {
                        let mut spans = Vec::new();
                        while spans.len() < 1000 {
                            spans.extend(requests.request().0);
                        }
                        spans.truncate(1000);
                        spans_batch(&spans).expect("batch")
                    })
                    .collect::<Vec<_>>()
            },
            |batches| {
                runtime.block_on(async {
                    let appends = batches
                        .into_iter()
                        .map(|batch| storage.append_spans(&tenant, batch));
                    for result in futures::future::join_all(appends).await {
                        result.expect("append");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    runtime.block_on(storage.close()).expect("close");
}

fn flush(c: &mut Criterion) {
    let runtime = runtime();
    let tenant = TenantId::default();
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(&runtime, dir.path());
    let mut requests = RequestWorkload::new(4);
    let mut metrics = MetricsWorkload::new(5);
    // One flush of ~10k log lines, ~10k spans and 10 scrapes (~86k samples).
    group.throughput(Throughput::Elements(1));
    group.bench_function("mixed_memtable", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                runtime.block_on(async {
                    let (mut spans, mut logs) = (Vec::new(), Vec::new());
                    while logs.len() < 10_000 {
                        let (s, l) = requests.request();
                        spans.extend(s);
                        logs.extend(l);
                    }
                    storage
                        .append_logs(&tenant, logs_batch(&logs).expect("batch"))
                        .await
                        .expect("append");
                    storage
                        .append_spans(&tenant, spans_batch(&spans).expect("batch"))
                        .await
                        .expect("append");
                    for _ in 0..10 {
                        for write in metrics.scrape(2000) {
                            storage
                                .append_metrics(&tenant, &write)
                                .await
                                .expect("append");
                        }
                    }
                    let started = Instant::now();
                    storage.flush().await.expect("flush");
                    total += started.elapsed();
                });
            }
            total
        })
    });
    group.finish();
    runtime.block_on(storage.close()).expect("close");
}

criterion_group!(benches, append, flush);
criterion_main!(benches);
