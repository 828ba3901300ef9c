//! The late-materialised span read (`Storage::span_timeline`, then
//! `Storage::read_span_rows`) returns exactly the spans a full `scan_spans` returns, on
//! hot, flushed and compacted data, with and without trace and service filters.

mod common;

use std::collections::BTreeSet;

use arrow::array::{Array, FixedSizeBinaryArray, TimestampNanosecondArray};
use common::*;
use storage::model::spans_batch;
use storage::{SpanScan, Storage};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const SERVICES: [&str; 3] = ["api", "db", "pay"];

fn scans() -> Vec<SpanScan> {
    let window = |start_ns: i64, end_ns: i64| SpanScan {
        start_ns,
        end_ns,
        trace_id: None,
        service: None,
    };
    vec![
        window(i64::MIN, i64::MAX),
        window(2_000, 7_999),
        window(11_000, 11_000),
        SpanScan {
            service: Some("db".into()),
            ..window(1_000, 9_000)
        },
        SpanScan {
            trace_id: Some(trace_for(77)),
            ..window(i64::MIN, i64::MAX)
        },
        SpanScan {
            trace_id: Some(trace_for(1_234)),
            service: Some("pay".into()),
            ..window(0, 10_000)
        },
        window(50_000, 60_000),
    ]
}

/// (trace id, span start) of every row.
fn keys(batches: &[arrow::array::RecordBatch]) -> BTreeSet<(Vec<u8>, i64)> {
    let mut out = BTreeSet::new();
    for batch in batches {
        let ids = batch
            .column_by_name("trace_id")
            .unwrap()
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        let starts = batch
            .column_by_name("start")
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        for row in 0..batch.num_rows() {
            out.insert((ids.value(row).to_vec(), starts.value(row)));
        }
    }
    out
}

async fn check(storage: &Storage, stage: &str) {
    for scan in scans() {
        let expected = keys(&storage.scan_spans(&tenant(), &scan).await.unwrap());
        let timeline = storage
            .span_timeline(&tenant(), &scan, &["trace_id", "duration_ns"])
            .await
            .unwrap();
        assert_eq!(timeline.len(), expected.len(), "{stage}: {scan:?}");
        let mut projected = BTreeSet::new();
        let mut full = BTreeSet::new();
        for source in &timeline.sources {
            let rows: usize = source.columns.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, source.rows.len(), "{stage}");
            assert!(source.rows.is_sorted(), "{stage}");
            for batch in &source.columns {
                let names: Vec<&str> = batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                assert!(names.contains(&"duration_ns") && !names.contains(&"attributes"));
            }
            projected.extend(keys(&source.columns));
            // Every other row: the second pass reads exactly the rows asked for.
            let every_other: Vec<u32> = source.rows.iter().copied().step_by(2).collect();
            let read = storage.read_span_rows(source, &every_other).await.unwrap();
            assert_eq!(
                read.iter().map(|b| b.num_rows()).sum::<usize>(),
                every_other.len(),
                "{stage}"
            );
            assert!(read.iter().all(|b| b.num_columns() == 16));
            full.extend(keys(
                &storage.read_span_rows(source, &source.rows).await.unwrap(),
            ));
        }
        assert_eq!(projected, expected, "{stage}: {scan:?}");
        assert_eq!(full, expected, "{stage}: {scan:?}");
    }
    assert!(
        storage
            .span_timeline(&tenant(), &scans()[0], &["no_such_column"])
            .await
            .is_err()
    );
}

#[test]
fn span_timeline_reads_the_spans_scan_spans_reads() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path(), small_config()).await;
        let spans: Vec<_> = (0..12_000u64)
            .map(|span| {
                span_record(
                    (span * 7) % 2_000,
                    span,
                    SERVICES[(span % 3) as usize],
                    span as i64,
                )
            })
            .collect();
        // Two flushed segments and hot spans.
        for (i, chunk) in spans.chunks(4_000).enumerate() {
            storage
                .append_spans(&tenant(), spans_batch(chunk).unwrap())
                .await
                .unwrap();
            if i < 2 {
                storage.flush().await.unwrap();
            }
        }
        check(&storage, "hot and flushed").await;
        storage.flush().await.unwrap();
        storage.compact().await.unwrap();
        check(&storage, "compacted").await;
        storage.close().await.unwrap();
    });
}
