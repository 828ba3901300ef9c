//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, FixedSizeBinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use proto::{ByteSize, HumanDuration, SpanId, TenantId, TraceId};
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::model::{LogRecord, SpanRecord};
use storage::series::{Labels, MatchOp, Matcher};
use storage::{Config, Storage};

/// A config with small thresholds, so tests cross flush and compaction boundaries.
pub fn small_config() -> Config {
    Config {
        memtable_flush_size: ByteSize::mib(1),
        memory_limit: ByteSize::mib(256),
        flush_interval: HumanDuration::secs(3600),
        compaction_interval: HumanDuration::secs(3600),
        compaction_min_segments: 2,
        row_group_rows: 1024,
        log_index_memory: ByteSize::mib(16),
        ..Config::default()
    }
}

pub async fn open(dir: &Path, config: Config) -> Arc<Storage> {
    Storage::open(config, dir).await.expect("open storage")
}

pub fn tenant() -> TenantId {
    TenantId::default()
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
}

pub fn series_write(name: &str, instance: &str, samples: &[(i64, f64)]) -> SeriesWrite {
    SeriesWrite {
        labels: labels(&[("__name__", name), ("instance", instance), ("job", "test")]),
        samples: samples
            .iter()
            .map(|(ts_ms, value)| Sample {
                ts_ms: *ts_ms,
                value: *value,
            })
            .collect(),
        exemplars: Vec::new(),
    }
}

pub fn metrics(series: Vec<SeriesWrite>) -> MetricsWrite {
    MetricsWrite {
        series,
        metadata: Vec::new(),
    }
}

/// Every sample of the tenant's series named `name`, as (instance, ts) → value bits.
pub async fn all_samples(storage: &Storage, name: &str) -> BTreeMap<(String, i64), u64> {
    let matchers = [Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
    let series = storage.select_series(&tenant(), &matchers, i64::MIN, i64::MAX);
    let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
    let batch = storage
        .scan_samples(&tenant(), &ids, i64::MIN / 4, i64::MAX / 4)
        .await
        .unwrap();
    let sid = batch
        .column(0)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap();
    let ts = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let values = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    let mut out = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let labels = &series
            .iter()
            .find(|(id, _)| id.0 == sid.value(row))
            .unwrap()
            .1;
        let key = (labels.get("instance").unwrap().to_string(), ts.value(row));
        assert!(
            out.insert(key, values.value(row).to_bits()).is_none(),
            "duplicate sample"
        );
    }
    out
}

pub fn log_record(seq: u64, service: &str, ts_ns: i64, body: &str) -> LogRecord {
    LogRecord {
        timestamp_ns: ts_ns,
        observed_ns: ts_ns,
        service: service.to_string(),
        instance: Some(format!("{service}-0")),
        severity_text: Some(
            if seq.is_multiple_of(7) {
                "ERROR"
            } else {
                "INFO"
            }
            .to_string(),
        ),
        severity_number: if seq.is_multiple_of(7) { 17 } else { 9 },
        body: body.to_string(),
        trace_id: Some(trace_for(seq / 3)),
        span_id: Some(SpanId(seq.to_be_bytes())),
        attributes: [("seq".to_string(), seq.to_string())].into(),
        resource: [("service.name".to_string(), service.to_string())].into(),
    }
}

pub fn trace_for(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TraceId(bytes)
}

pub fn span_record(trace: u64, span: u64, service: &str, start_ns: i64) -> SpanRecord {
    SpanRecord {
        trace_id: trace_for(trace),
        span_id: SpanId(span.to_be_bytes()),
        parent_span_id: (!span.is_multiple_of(4)).then(|| SpanId((span - 1).to_be_bytes())),
        service: service.to_string(),
        instance: Some(format!("{service}-1")),
        name: format!("GET /api/{}", span % 5),
        kind: "server".to_string(),
        start_ns,
        duration_ns: 1_000_000 + span as i64,
        status_code: if span.is_multiple_of(11) { 2 } else { 0 },
        status_message: None,
        peer_service: None,
        attributes: [("http.status_code".to_string(), "200".to_string())].into(),
        resource: Default::default(),
        events: None,
        links: None,
    }
}

/// (timestamp, service, body) of every log row in the batches.
pub fn log_rows(batches: &[RecordBatch]) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    for batch in batches {
        let ts = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        let service = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let body = batch
            .column(6)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for row in 0..batch.num_rows() {
            out.push((
                ts.value(row),
                service.value(row).to_string(),
                body.value(row).to_string(),
            ));
        }
    }
    out.sort();
    out
}

/// (trace id, span id) of every span row in the batches.
pub fn span_keys(batches: &[RecordBatch]) -> Vec<(TraceId, SpanId)> {
    let mut out = Vec::new();
    for batch in batches {
        let traces = batch
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        let spans = batch
            .column(1)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        for row in 0..batch.num_rows() {
            assert!(traces.is_valid(row));
            out.push((
                TraceId::from_slice(traces.value(row)).unwrap(),
                SpanId::from_slice(spans.value(row)).unwrap(),
            ));
        }
    }
    out.sort();
    out
}
