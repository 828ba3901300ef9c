//! Flush and compaction boundaries: while writers append and flushes and compactions
//! run, every acknowledged record is seen exactly once by every read.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use storage::LogScan;
use storage::model::logs_batch;
use tokio::sync::Mutex;

fn seqs(rows: &[(i64, String, String)]) -> Vec<u64> {
    rows.iter()
        .map(|(_, _, body)| {
            body.strip_prefix("seq=")
                .and_then(|s| s.split(' ').next())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_record_is_seen_exactly_once_during_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path(), small_config()).await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let acked_samples = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for writer in 0..2u64 {
        let storage = storage.clone();
        let acked = acked.clone();
        let acked_samples = acked_samples.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..150u64 {
                let seq = writer * 1_000_000 + round;
                let record = log_record(
                    seq,
                    "funding",
                    round as i64 * 1_000,
                    &format!("seq={seq} settle interest"),
                );
                storage
                    .append_logs(&tenant(), logs_batch(&[record]).unwrap())
                    .await
                    .unwrap();
                acked.lock().await.insert(seq);
                let ts = round as i64 * 1000;
                let write = metrics(vec![series_write(
                    "jvm_threads",
                    &format!("w{writer}"),
                    &[(ts, round as f64)],
                )]);
                storage.append_metrics(&tenant(), &write).await.unwrap();
                acked_samples
                    .lock()
                    .await
                    .insert((format!("w{writer}"), ts));
            }
        }));
    }
    let maintenance = {
        let storage = storage.clone();
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                storage.flush().await.unwrap();
                storage.compact().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let all = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..LogScan::default()
    };
    let mut checks = 0;
    while writers.iter().any(|w| !w.is_finished()) || checks < 3 {
        // Snapshot the acks first: everything acked before the scan must be in it.
        let before = acked.lock().await.clone();
        let before_samples = acked_samples.lock().await.clone();
        let seen = seqs(&log_rows(
            &storage.scan_logs(&tenant(), &all).await.unwrap(),
        ));
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a log record was returned twice");
        assert!(before.is_subset(&unique), "an acked log record is missing");
        let samples = all_samples(&storage, "jvm_threads").await;
        for key in &before_samples {
            assert!(samples.contains_key(key), "acked sample {key:?} missing");
        }
        checks += 1;
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::Release);
    maintenance.await.unwrap();
    let seen = seqs(&log_rows(
        &storage.scan_logs(&tenant(), &all).await.unwrap(),
    ));
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        *acked.lock().await
    );
    assert_eq!(seen.len(), 300);
    assert_eq!(all_samples(&storage, "jvm_threads").await.len(), 300);
    assert!(storage.stats().flushes > 0);
    storage.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path(), small_config()).await;
    let day_ns: i64 = 86_400 * 1_000_000_000;
    let now_ns = 100 * day_ns;
    let old = log_record(1, "sms", now_ns - 30 * day_ns, "seq=1 old");
    let recent = log_record(2, "sms", now_ns - day_ns, "seq=2 recent");
    storage
        .append_logs(&tenant(), logs_batch(&[old]).unwrap())
        .await
        .unwrap();
    storage.flush().await.unwrap();
    storage
        .append_logs(&tenant(), logs_batch(&[recent]).unwrap())
        .await
        .unwrap();
    storage.flush().await.unwrap();
    let removed = storage.apply_retention(now_ns).await.unwrap();
    assert_eq!(removed, 1);
    let all = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..LogScan::default()
    };
    assert_eq!(
        seqs(&log_rows(
            &storage.scan_logs(&tenant(), &all).await.unwrap()
        )),
        vec![2]
    );
    let files: Vec<_> = walk(&dir.path().join("segments"))
        .into_iter()
        .filter(|p| p.contains("/logs/"))
        .collect();
    assert_eq!(
        files.len(),
        2,
        "one parquet file and one index remain: {files:?}"
    );
    assert_eq!(storage.stats().retention_deleted_segments, 1);
    storage.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_memory_limit_are_refused_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let config = storage::Config {
        memtable_flush_size: proto::ByteSize::mib(1),
        memory_limit: proto::ByteSize::mib(1),
        ..small_config()
    };
    let storage = open(dir.path(), config).await;
    let body = "x".repeat(2 << 20);
    let big = log_record(1, "mail", 0, &body);
    let error = storage
        .append_logs(&tenant(), logs_batch(&[big]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.code(), proto::ErrorCode::Unavailable);
    assert_eq!(storage.stats().backpressure_rejections, 1);
    let all = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..LogScan::default()
    };
    assert!(
        log_rows(&storage.scan_logs(&tenant(), &all).await.unwrap()).is_empty(),
        "a refused write touched nothing"
    );
    storage.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_rejected_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path(), small_config()).await;
    let spans = storage::model::spans_batch(&[span_record(1, 1, "ta", 0)]).unwrap();
    let error = storage.append_logs(&tenant(), spans).await.unwrap_err();
    assert_eq!(error.code(), proto::ErrorCode::InvalidArgument);
    assert!(error.to_string().contains("logs batch"), "{error}");
    let nameless = storage::metrics::SeriesWrite {
        labels: labels(&[("job", "x")]),
        ..Default::default()
    };
    let error = storage
        .append_metrics(&tenant(), &metrics(vec![nameless]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("__name__"), "{error}");
    assert_eq!(storage.stats().wal_records, 0, "nothing reached the wal");
    storage.close().await.unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.to_string_lossy().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_limit_refuses_a_whole_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = storage::Config {
        max_series_per_tenant: 3,
        ..small_config()
    };
    let storage = open(dir.path(), config).await;
    let write = |instances: &[&str]| {
        metrics(
            instances
                .iter()
                .map(|i| series_write("up", i, &[(1000, 1.0)]))
                .collect(),
        )
    };
    storage
        .append_metrics(&tenant(), &write(&["a", "b"]))
        .await
        .unwrap();
    // Two new series would make four: the whole write is refused, nothing is stored.
    let error = storage
        .append_metrics(&tenant(), &write(&["a", "c", "d"]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), proto::ErrorCode::InvalidArgument);
    assert!(error.to_string().contains("series limit (3)"), "{error}");
    assert_eq!(all_samples(&storage, "up").await.len(), 2);
    // Existing series keep accepting samples, and one more new series fits.
    storage
        .append_metrics(&tenant(), &write(&["a", "b", "c", "c"]))
        .await
        .unwrap();
    assert_eq!(storage.stats().series, 3);
    storage.close().await.unwrap();
}
