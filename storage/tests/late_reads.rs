//! Late-materialised reads give the same rows as the plain scans: the log timeline
//! (times first, rows later) against `scan_logs`, and page-index trace lookups against
//! a full span scan, on hot and cold data.

mod common;

use std::collections::BTreeSet;

use common::*;
use storage::model::{logs_batch, spans_batch};
use storage::{LogScan, SpanScan, TextQuery};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const SERVICES: [&str; 3] = ["api", "db", "pay"];

fn body(seq: u64) -> String {
    match seq % 5 {
        0 => format!("GET /orders/{seq} request served in {}ms", seq % 97),
        1 => format!("connection refused to db-{}", seq % 3),
        2 => format!("Request timeout after {}ms", seq % 50),
        3 => format!("cache hit key={seq:x}"),
        _ => format!("refused connection for user {seq}"),
    }
}

fn scans(start: i64, end: i64) -> Vec<LogScan> {
    let base = LogScan {
        start_ns: start,
        end_ns: end,
        ..LogScan::default()
    };
    let text = |q: TextQuery| LogScan {
        text: Some(q),
        ..base.clone()
    };
    vec![
        base.clone(),
        text(TextQuery::Term("request".into())),
        text(TextQuery::Contains("request".into())),
        text(TextQuery::Phrase(vec![
            "connection".into(),
            "refused".into(),
        ])),
        text(TextQuery::Or(vec![
            TextQuery::Term("timeout".into()),
            TextQuery::Term("hit".into()),
        ])),
        LogScan {
            services: vec!["db".into()],
            ..text(TextQuery::Term("refused".into()))
        },
        LogScan {
            services: vec!["db".into(), "pay".into()],
            ..text(TextQuery::Term("connection".into()))
        },
        LogScan {
            start_ns: start + (end - start) / 3,
            end_ns: end - (end - start) / 3,
            ..text(TextQuery::Term("served".into()))
        },
    ]
}

/// Both kinds of full-text index: blocks of rows (the default) and a document per row.
#[test]
fn log_timeline_reads_the_rows_scan_logs_reads() {
    for block_rows in [64, 7, 1] {
        timeline_matches_scan(block_rows);
    }
}

fn timeline_matches_scan(block_rows: usize) {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = storage::Config {
            log_index_block_rows: block_rows,
            ..small_config()
        };
        let storage = open(dir.path(), config).await;
        let records: Vec<_> = (0..6_000u64)
            .map(|seq| {
                log_record(
                    seq,
                    SERVICES[(seq % 3) as usize],
                    1_000_000 + seq as i64 * 1_000,
                    &body(seq),
                )
            })
            .collect();
        // Two flushed segments and a hot tail.
        for (i, chunk) in records.chunks(2_000).enumerate() {
            storage
                .append_logs(&tenant(), logs_batch(chunk).unwrap())
                .await
                .unwrap();
            if i < 2 {
                storage.flush().await.unwrap();
            }
        }
        for scan in scans(0, 10_000_000) {
            let expected: BTreeSet<_> =
                log_rows(&storage.scan_logs(&tenant(), &scan).await.unwrap())
                    .into_iter()
                    .collect();
            assert!(!expected.is_empty(), "{scan:?}");
            // Every matching record, found without any index.
            let brute = records
                .iter()
                .filter(|r| r.timestamp_ns >= scan.start_ns && r.timestamp_ns <= scan.end_ns)
                .filter(|r| scan.services.is_empty() || scan.services.contains(&r.service))
                .filter(|r| scan.text.as_ref().is_none_or(|t| t.matches(&r.body)))
                .count();
            assert_eq!(
                expected.len(),
                brute,
                "{scan:?}, {block_rows} rows per block"
            );
            let confirmed = storage.log_timeline(&tenant(), &scan, true).await.unwrap();
            let times: BTreeSet<i64> = confirmed
                .sources
                .iter()
                .flat_map(|s| s.ts.iter().copied())
                .collect();
            let expected_times: BTreeSet<i64> = expected.iter().map(|r| r.0).collect();
            assert_eq!(times, expected_times, "{scan:?}");
            assert_eq!(confirmed.len(), expected.len(), "{scan:?}");
            assert!(confirmed.sources.iter().all(|s| s.confirmed));

            let lazy = storage.log_timeline(&tenant(), &scan, false).await.unwrap();
            assert!(lazy.len() >= expected.len(), "{scan:?}");
            let mut read = BTreeSet::new();
            for source in &lazy.sources {
                // Read in two halves, as a paged reader does.
                let (first, second) = source.rows.split_at(source.rows.len() / 2);
                for part in [first, second] {
                    let batches = storage
                        .read_timeline_rows(source, part, &scan)
                        .await
                        .unwrap();
                    read.extend(log_rows(&batches));
                }
            }
            assert_eq!(read, expected, "{scan:?}");
        }
        storage.close().await.unwrap();
    });
}

#[test]
fn trace_lookups_read_only_the_trace() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path(), small_config()).await;
        let spans: Vec<_> = (0..12_000u64)
            .map(|span| {
                span_record(
                    span % 1_500,
                    span,
                    SERVICES[(span % 3) as usize],
                    span as i64,
                )
            })
            .collect();
        for chunk in spans.chunks(4_000) {
            storage
                .append_spans(&tenant(), spans_batch(chunk).unwrap())
                .await
                .unwrap();
            storage.flush().await.unwrap();
        }
        let check = |stage: &'static str| {
            let storage = storage.clone();
            async move {
                for trace in [0u64, 7, 777, 1_499, 99_999] {
                    let scan = SpanScan {
                        start_ns: i64::MIN,
                        end_ns: i64::MAX,
                        trace_id: Some(trace_for(trace)),
                        service: None,
                    };
                    let batches = storage.scan_spans(&tenant(), &scan).await.unwrap();
                    let mut got: Vec<i64> = Vec::new();
                    for batch in &batches {
                        let starts = batch
                            .column(7)
                            .as_any()
                            .downcast_ref::<arrow::array::TimestampNanosecondArray>()
                            .unwrap();
                        got.extend(starts.values().iter().copied());
                    }
                    got.sort_unstable();
                    let expected: Vec<i64> = (0..12_000i64)
                        .filter(|span| (*span as u64) % 1_500 == trace)
                        .collect();
                    assert_eq!(got, expected, "trace {trace} {stage}");
                }
            }
        };
        check("flushed").await;
        storage.compact().await.unwrap();
        check("compacted").await;
        storage.close().await.unwrap();
    });
}
