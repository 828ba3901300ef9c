//! Helpers for the remote_write tests: building and posting requests, reading the
//! stored series and exemplars back.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use proto::prometheus::v1;
use proto::{SpanId, TenantId, TraceId};
use storage::Storage;
use storage::series::{Labels, MatchOp, Matcher};

pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
pub const V1_TYPE: &str = "application/x-protobuf";
pub const V2_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

pub fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .expect("snappy")
}

pub async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/api/v1/write"))
        .header("Content-Type", content_type)
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    request.send().await.expect("post")
}

/// Series named `name`: labels and `(ts, value bits)` samples.
pub async fn read_series(storage: &Storage, name: &str) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let tenant = TenantId::default();
    let matcher = Matcher::new(MatchOp::Equal, "__name__", name).expect("matcher");
    let mut out = Vec::new();
    for (id, labels) in storage.select_series(&tenant, &[matcher], i64::MIN, i64::MAX) {
        let batch = storage
            .scan_samples(&tenant, &[id], i64::MIN, i64::MAX)
            .await
            .expect("scan");
        let ts = batch.column(1).as_primitive::<Int64Type>();
        let values = batch.column(2).as_primitive::<Float64Type>();
        let samples = (0..batch.num_rows())
            .map(|row| (ts.value(row), values.value(row).to_bits()))
            .collect();
        out.push((labels, samples));
    }
    out
}

/// Exemplars of series named `name`: `(ts, value, trace id, span id, labels)`.
pub type ExemplarRow = (
    i64,
    f64,
    Option<TraceId>,
    Option<SpanId>,
    Vec<(String, String)>,
);

pub async fn read_exemplars(storage: &Storage, name: &str) -> Vec<ExemplarRow> {
    let tenant = TenantId::default();
    let matcher = Matcher::new(MatchOp::Equal, "__name__", name).expect("matcher");
    let ids: Vec<_> = storage
        .select_series(&tenant, &[matcher], i64::MIN, i64::MAX)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut out = Vec::new();
    for batch in storage
        .scan_exemplars(&tenant, &ids, i64::MIN, i64::MAX)
        .await
        .expect("scan")
    {
        let ts = batch.column(1).as_primitive::<Int64Type>();
        let values = batch.column(2).as_primitive::<Float64Type>();
        let traces = batch.column(3).as_fixed_size_binary();
        let spans = batch.column(4).as_fixed_size_binary();
        let labels = batch.column(5).as_map();
        for row in 0..batch.num_rows() {
            let trace = (!traces.is_null(row))
                .then(|| TraceId::from_slice(traces.value(row)).expect("16 bytes"));
            let span = (!spans.is_null(row))
                .then(|| SpanId::from_slice(spans.value(row)).expect("8 bytes"));
            let entries = labels.value(row);
            let keys = entries.column(0).as_string::<i32>();
            let vals = entries.column(1).as_string::<i32>();
            let pairs = (0..entries.len())
                .map(|i| (keys.value(i).to_string(), vals.value(i).to_string()))
                .collect();
            out.push((ts.value(row), values.value(row), trace, span, pairs));
        }
    }
    out.sort_by_key(|row| row.0);
    out
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
    .expect("labels")
}

pub fn v1_label(name: &str, value: &str) -> v1::Label {
    v1::Label {
        name: name.to_string(),
        value: value.to_string(),
    }
}

pub fn v1_series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: pairs.iter().map(|(n, v)| v1_label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|(t, v)| v1::Sample {
                value: *v,
                timestamp: *t,
            })
            .collect(),
        ..v1::TimeSeries::default()
    }
}
