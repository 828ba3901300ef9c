//! Reading ingested rows back through the storage read API, as the models ingest wrote.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, MapArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use proto::{SpanId, TenantId, TraceId};
use storage::model::{Attributes, LogRecord, SpanRecord};
use storage::series::{Labels, MatchOp, Matcher};
use storage::{LogScan, SpanScan, Storage};

fn attributes(map: &MapArray, row: usize) -> Attributes {
    let entries = map.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    (0..entries.len())
        .map(|i| (keys.value(i).to_string(), values.value(i).to_string()))
        .collect()
}

fn text(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    let array = batch.column(column).as_string::<i32>();
    array.is_valid(row).then(|| array.value(row).to_string())
}

fn id<T>(
    batch: &RecordBatch,
    column: usize,
    row: usize,
    build: fn(&[u8]) -> Option<T>,
) -> Option<T> {
    let array = batch.column(column).as_fixed_size_binary();
    if array.is_valid(row) {
        build(array.value(row))
    } else {
        None
    }
}

pub async fn spans(storage: &Storage, tenant: &TenantId) -> Vec<SpanRecord> {
    let scan = SpanScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..SpanScan::default()
    };
    let mut out = Vec::new();
    for batch in storage.scan_spans(tenant, &scan).await.expect("scan spans") {
        let time = |c: usize| {
            batch
                .column(c)
                .as_primitive::<TimestampNanosecondType>()
                .clone()
        };
        let (start, duration) = (time(7), batch.column(8).as_primitive::<Int64Type>().clone());
        for row in 0..batch.num_rows() {
            out.push(SpanRecord {
                trace_id: id(&batch, 0, row, TraceId::from_slice).expect("trace id"),
                span_id: id(&batch, 1, row, SpanId::from_slice).expect("span id"),
                parent_span_id: id(&batch, 2, row, SpanId::from_slice),
                service: text(&batch, 3, row).expect("service"),
                instance: text(&batch, 4, row),
                name: text(&batch, 5, row).expect("name"),
                kind: text(&batch, 6, row).expect("kind"),
                start_ns: start.value(row),
                duration_ns: duration.value(row),
                status_code: batch.column(9).as_primitive::<Int32Type>().value(row),
                status_message: text(&batch, 10, row),
                peer_service: text(&batch, 11, row),
                attributes: attributes(batch.column(12).as_map(), row),
                resource: attributes(batch.column(13).as_map(), row),
                events: text(&batch, 14, row),
                links: text(&batch, 15, row),
            });
        }
    }
    out.sort_by_key(|span| (span.start_ns, span.span_id));
    out
}

pub async fn logs(storage: &Storage, tenant: &TenantId) -> Vec<LogRecord> {
    let scan = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..LogScan::default()
    };
    let mut out = Vec::new();
    for batch in storage.scan_logs(tenant, &scan).await.expect("scan logs") {
        let time = |c: usize| {
            batch
                .column(c)
                .as_primitive::<TimestampNanosecondType>()
                .clone()
        };
        let (timestamp, observed) = (time(0), time(1));
        for row in 0..batch.num_rows() {
            out.push(LogRecord {
                timestamp_ns: timestamp.value(row),
                observed_ns: observed.value(row),
                service: text(&batch, 2, row).expect("service"),
                instance: text(&batch, 3, row),
                severity_text: text(&batch, 4, row),
                severity_number: batch.column(5).as_primitive::<Int32Type>().value(row),
                body: text(&batch, 6, row).expect("body"),
                trace_id: id(&batch, 7, row, TraceId::from_slice),
                span_id: id(&batch, 8, row, SpanId::from_slice),
                attributes: attributes(batch.column(9).as_map(), row),
                resource: attributes(batch.column(10).as_map(), row),
            });
        }
    }
    out.sort_by(|a, b| (a.timestamp_ns, &a.body).cmp(&(b.timestamp_ns, &b.body)));
    out
}

/// Every series of the tenant (or those named `name`): labels → `(ts_ms, value)` samples.
pub async fn series(
    storage: &Storage,
    tenant: &TenantId,
    name: &str,
) -> BTreeMap<Labels, Vec<(i64, f64)>> {
    let matcher = Matcher::new(MatchOp::RegexMatch, "__name__", name).expect("matcher");
    let mut out = BTreeMap::new();
    for (id, labels) in storage.select_series(tenant, &[matcher], i64::MIN, i64::MAX) {
        let batch = storage
            .scan_samples(tenant, &[id], i64::MIN, i64::MAX)
            .await
            .expect("scan samples");
        let ts = batch.column(1).as_primitive::<Int64Type>();
        let values = batch.column(2).as_primitive::<Float64Type>();
        let samples = (0..batch.num_rows())
            .map(|row| (ts.value(row), values.value(row)))
            .collect();
        out.insert(labels, samples);
    }
    out
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .expect("labels")
}

pub fn map(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn trace_id(hex: &str) -> TraceId {
    hex.parse().expect("trace id")
}

pub fn span_id(hex: &str) -> SpanId {
    hex.parse().expect("span id")
}
