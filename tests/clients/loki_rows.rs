//! Reads log rows back from storage as [`LogRecord`]s, for the Elasticsearch and Loki
//! ingest tests (`#[path = "clients/loki_rows.rs"] mod loki_rows;`).
#![allow(dead_code)]

use arrow::array::{
    Array, AsArray, FixedSizeBinaryArray, Int32Array, MapArray, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use proto::{SpanId, TenantId, TraceId};
use storage::LogScan;
use storage::model::{Attributes, LogRecord};

use crate::common::TestServer;

pub fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).expect("column");
    let array = column.as_any().downcast_ref::<StringArray>().expect("utf8");
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
        .collect()
}

pub fn maps(batch: &RecordBatch, name: &str) -> Vec<Attributes> {
    let array = batch
        .column_by_name(name)
        .expect("column")
        .as_any()
        .downcast_ref::<MapArray>()
        .expect("map");
    (0..array.len())
        .map(|i| {
            let entries = array.value(i);
            let keys = entries.column(0).as_string::<i32>();
            let values = entries.column(1).as_string::<i32>();
            (0..keys.len())
                .map(|j| (keys.value(j).to_string(), values.value(j).to_string()))
                .collect()
        })
        .collect()
}

pub fn ids<const N: usize>(batch: &RecordBatch, name: &str) -> Vec<Option<[u8; N]>> {
    let array = batch
        .column_by_name(name)
        .expect("column")
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .expect("fixed binary");
    (0..array.len())
        .map(|i| {
            array
                .is_valid(i)
                .then(|| array.value(i).try_into().expect("width"))
        })
        .collect()
}

/// Every log row of `tenant`, sorted by timestamp.
pub async fn logs(server: &TestServer, tenant: &str) -> Vec<LogRecord> {
    let tenant = TenantId::new(tenant).expect("tenant");
    let scan = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..Default::default()
    };
    let batches = server
        .storage()
        .scan_logs(&tenant, &scan)
        .await
        .expect("scan");
    let mut out = Vec::new();
    for batch in &batches {
        let time = |name: &str| {
            let array = batch.column_by_name(name).expect("column");
            let array = array
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .expect("ts");
            array.values().to_vec()
        };
        let (timestamps, observed) = (time("timestamp"), time("observed_timestamp"));
        let severity = batch
            .column_by_name("severity_number")
            .expect("column")
            .as_any()
            .downcast_ref::<Int32Array>()
            .expect("i32")
            .values()
            .to_vec();
        let (service, instance, text, body) = (
            strings(batch, "service"),
            strings(batch, "instance"),
            strings(batch, "severity_text"),
            strings(batch, "body"),
        );
        let (traces, spans) = (ids::<16>(batch, "trace_id"), ids::<8>(batch, "span_id"));
        let (attributes, resource) = (maps(batch, "attributes"), maps(batch, "resource"));
        for i in 0..batch.num_rows() {
            out.push(LogRecord {
                timestamp_ns: timestamps[i],
                observed_ns: observed[i],
                service: service[i].clone().unwrap_or_default(),
                instance: instance[i].clone(),
                severity_text: text[i].clone(),
                severity_number: severity[i],
                body: body[i].clone().unwrap_or_default(),
                trace_id: traces[i].map(TraceId),
                span_id: spans[i].map(SpanId),
                attributes: attributes[i].clone(),
                resource: resource[i].clone(),
            });
        }
    }
    out.sort_by_key(|row| row.timestamp_ns);
    out
}

pub fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
