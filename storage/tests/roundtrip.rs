//! Round trips per signal: what is appended reads back identically while hot, after a
//! flush, after compaction and after a restart.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use storage::model::{logs_batch, spans_batch};
use storage::{LogScan, SpanScan, Table, TextQuery};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Chunks of (instance, ts, value) written one chunk per append.
fn arb_sample_chunks() -> impl Strategy<Value = Vec<Vec<(u8, i64, f64)>>> {
    let value = prop_oneof![
        any::<f64>(),
        (0i64..1000).prop_map(|v| v as f64),
        Just(f64::NAN)
    ];
    prop::collection::vec(
        prop::collection::vec((0u8..4, 0i64..50, value), 1..20),
        1..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn metrics_read_back_at_every_stage(chunks in arb_sample_chunks()) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
            let storage = open(dir.path(), small_config()).await;
            for chunk in &chunks {
                let mut by_instance: BTreeMap<u8, Vec<(i64, f64)>> = BTreeMap::new();
                for (instance, ts, value) in chunk {
                    by_instance.entry(*instance).or_default().push((ts * 15_000, *value));
                    expected.insert((format!("pod-{instance}"), ts * 15_000), value.to_bits());
                }
                let series = by_instance.iter().map(|(i, s)| series_write("up", &format!("pod-{i}"), s)).collect();
                storage.append_metrics(&tenant(), &metrics(series)).await.unwrap();
                assert_eq!(all_samples(&storage, "up").await, expected, "hot");
                storage.flush().await.unwrap();
                assert_eq!(all_samples(&storage, "up").await, expected, "after flush");
            }
            storage.compact().await.unwrap();
            assert_eq!(all_samples(&storage, "up").await, expected, "after compaction");
            storage.close().await.unwrap();
            let storage = open(dir.path(), small_config()).await;
            assert_eq!(all_samples(&storage, "up").await, expected, "after restart");
            storage.close().await.unwrap();
        });
    }

    #[test]
    fn logs_read_back_and_search_matches_brute_force(
        chunks in prop::collection::vec(prop::collection::vec((0usize..3, 0i64..100, prop::collection::vec(0usize..8, 1..6)), 1..15), 1..4),
        needle in 0usize..8,
    ) {
        const WORDS: [&str; 8] = ["timeout", "connection", "refused", "GET", "/api/fund", "ok", "4bf92f3577b34da6", "支付"];
        const SERVICES: [&str; 3] = ["gateway", "funding", "asset"];
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let storage = open(dir.path(), small_config()).await;
            let mut expected = Vec::new();
            let mut seq = 0;
            for (round, chunk) in chunks.iter().enumerate() {
                let records: Vec<_> = chunk.iter().map(|(service, ts, words)| {
                    seq += 1;
                    let body: Vec<&str> = words.iter().map(|w| WORDS[*w]).collect();
                    log_record(seq, SERVICES[*service], ts * 1_000_000_000, &body.join(" "))
                }).collect();
                expected.extend(records.iter().map(|r| (r.timestamp_ns, r.service.clone(), r.body.clone())));
                storage.append_logs(&tenant(), logs_batch(&records).unwrap()).await.unwrap();
                if round % 2 == 0 {
                    storage.flush().await.unwrap();
                }
            }
            expected.sort();
            let all = LogScan { start_ns: i64::MIN, end_ns: i64::MAX, ..LogScan::default() };
            assert_eq!(log_rows(&storage.scan_logs(&tenant(), &all).await.unwrap()), expected);
            let check_search = |rows: Vec<(i64, String, String)>, stage: &str| {
                let want: Vec<_> = expected.iter().filter(|(ts, service, body)| {
                    body.contains(WORDS[needle]) && service == "funding" && *ts >= 20_000_000_000 && *ts <= 70_000_000_000
                }).cloned().collect();
                assert_eq!(rows, want, "search at {stage}");
            };
            let search = LogScan {
                start_ns: 20_000_000_000,
                end_ns: 70_000_000_000,
                services: vec!["funding".to_string()],
                text: Some(TextQuery::Contains(WORDS[needle].to_string())),
                ..LogScan::default()
            };
            check_search(log_rows(&storage.scan_logs(&tenant(), &search).await.unwrap()), "mixed hot/cold");
            storage.compact().await.unwrap();
            check_search(log_rows(&storage.scan_logs(&tenant(), &search).await.unwrap()), "compacted");
            storage.close().await.unwrap();
            let storage = open(dir.path(), small_config()).await;
            assert_eq!(log_rows(&storage.scan_logs(&tenant(), &all).await.unwrap()), expected);
            storage.flush().await.unwrap();
            check_search(log_rows(&storage.scan_logs(&tenant(), &search).await.unwrap()), "after restart and flush");
            storage.close().await.unwrap();
        });
    }

    #[test]
    fn spans_read_back_by_trace(chunks in prop::collection::vec(prop::collection::vec((0u64..6, 0i64..100), 1..25), 1..4), probe in 0u64..6) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let storage = open(dir.path(), small_config()).await;
            let mut expected = Vec::new();
            let mut span = 0;
            for chunk in &chunks {
                let records: Vec<_> = chunk.iter().map(|(trace, start)| {
                    span += 1;
                    span_record(*trace, span, "gateway", start * 1_000_000)
                }).collect();
                expected.extend(records.iter().map(|r| (r.trace_id, r.span_id)));
                storage.append_spans(&tenant(), spans_batch(&records).unwrap()).await.unwrap();
                storage.flush().await.unwrap();
            }
            expected.sort();
            let stages = ["flushed", "compacted"];
            for stage in stages {
                if stage == "compacted" {
                    storage.compact().await.unwrap();
                }
                let all = SpanScan { start_ns: i64::MIN, end_ns: i64::MAX, ..SpanScan::default() };
                assert_eq!(span_keys(&storage.scan_spans(&tenant(), &all).await.unwrap()), expected, "{stage}");
                let trace = trace_for(probe);
                let by_trace = SpanScan { trace_id: Some(trace), ..all };
                let want: Vec<_> = expected.iter().filter(|(t, _)| *t == trace).cloned().collect();
                assert_eq!(span_keys(&storage.scan_spans(&tenant(), &by_trace).await.unwrap()), want, "{stage} by trace");
            }
            storage.close().await.unwrap();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_and_metadata_survive_restart_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path(), small_config()).await;
    for round in 0..3 {
        let mut write = metrics(vec![series_write(
            "http_requests_total",
            &format!("pod-{round}"),
            &[(round * 1000, 1.0)],
        )]);
        write.metadata.push(storage::metrics::MetricMetadata {
            metric: "http_requests_total".into(),
            kind: storage::metrics::MetricType::Counter,
            help: format!("requests, revision {round}"),
            unit: String::new(),
        });
        storage.append_metrics(&tenant(), &write).await.unwrap();
        storage.flush().await.unwrap();
    }
    storage.compact().await.unwrap();
    let series_segments = storage
        .segments()
        .iter()
        .filter(|s| s.table == Table::Series)
        .count();
    assert_eq!(series_segments, 1, "series segments are merged");
    storage.close().await.unwrap();
    let storage = open(dir.path(), small_config()).await;
    assert_eq!(
        storage.label_values(&tenant(), "instance", &[]),
        vec!["pod-0", "pod-1", "pod-2"]
    );
    let metadata = storage.metric_metadata(&tenant());
    assert_eq!(metadata.len(), 1);
    assert_eq!(metadata[0].help, "requests, revision 2");
    // A new series after restart gets a fresh id, not one already on disk.
    storage
        .append_metrics(
            &tenant(),
            &metrics(vec![series_write(
                "http_requests_total",
                "pod-9",
                &[(5000, 2.0)],
            )]),
        )
        .await
        .unwrap();
    let samples = all_samples(&storage, "http_requests_total").await;
    assert_eq!(samples.len(), 4);
    storage.close().await.unwrap();
}
