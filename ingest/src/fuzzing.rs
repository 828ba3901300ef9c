//! Entry points for the fuzz targets in `fuzz/` (see `scripts/fuzz.sh`).
//!
//! Not an API: thin wrappers over the crate-private decoders, so the fuzz package can
//! drive each one with the limits a receiver would apply. Nothing here is used by the
//! server itself.

use proto::otlp::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};
use storage::metrics::MetricsWrite;
use storage::model::{LogRecord, SpanRecord};

pub use crate::body::{Encoding, decompress};
pub use crate::es::bulk::{Item, MalformedBulk, Parsed, parse as es_bulk};
pub use crate::loki::decode::{
    Entry, Stream, decode_json as loki_json, decode_proto as loki_proto,
};
pub use crate::loki::labels::parse_labels as loki_labels;
pub use crate::loki::map::stream_to_records as loki_stream_to_records;
pub use crate::zipkin::decode_spans as zipkin_spans;

use crate::otlp::decode::{Format, decode};
use crate::remote_write::convert::{Limits, convert_v1, convert_v1_prost, convert_v2};
use crate::{Config, Result};

/// What a remote_write conversion produced.
#[derive(Debug)]
pub struct RemoteWrite {
    /// The series to store.
    pub write: MetricsWrite,
    /// Samples in `write`.
    pub samples: usize,
    /// Exemplars in `write`.
    pub exemplars: usize,
}

/// The limits of the default [`Config`], with the clock at `now_ms`.
fn limits(now_ms: i64) -> Limits {
    Limits::new(&Config::default(), now_ms)
}

/// Most labels per series under the default config.
pub fn max_labels_per_series() -> usize {
    Config::default().max_labels_per_series
}

/// Longest label value under the default config.
pub fn max_label_value_length() -> usize {
    Config::default().max_label_value_length
}

/// Converts an uncompressed remote_write 1.0 `WriteRequest`.
pub fn remote_write_v1(body: &[u8], now_ms: i64) -> Result<RemoteWrite> {
    convert_v1(body, limits(now_ms)).map(|c| RemoteWrite {
        write: c.write,
        samples: c.samples,
        exemplars: c.exemplars,
    })
}

/// Converts an uncompressed remote_write 1.0 `WriteRequest` by decoding it with prost:
/// the reference the zero-copy decoder behind [`remote_write_v1`] must agree with.
pub fn remote_write_v1_prost(body: &[u8], now_ms: i64) -> Result<RemoteWrite> {
    convert_v1_prost(body, limits(now_ms)).map(|c| RemoteWrite {
        write: c.write,
        samples: c.samples,
        exemplars: c.exemplars,
    })
}

/// Converts an uncompressed remote_write 2.0 `Request`.
pub fn remote_write_v2(body: &[u8], now_ms: i64) -> Result<RemoteWrite> {
    convert_v2(body, limits(now_ms)).map(|c| RemoteWrite {
        write: c.write,
        samples: c.samples,
        exemplars: c.exemplars,
    })
}

fn format(json: bool) -> Format {
    if json { Format::Json } else { Format::Protobuf }
}

/// Decodes and converts an OTLP traces export: the request, the kept spans, the rejected count.
pub fn otlp_traces(
    body: &[u8],
    json: bool,
    now_ns: i64,
) -> Result<(ExportTraceServiceRequest, Vec<SpanRecord>, u64)> {
    let request: ExportTraceServiceRequest = decode(format(json), body)?;
    let (records, rejections) = crate::otlp::traces::convert(&request, now_ns);
    Ok((request, records, rejections.count))
}

/// Decodes and converts an OTLP logs export: the request, the kept records, the rejected count.
pub fn otlp_logs(
    body: &[u8],
    json: bool,
    now_ns: i64,
) -> Result<(ExportLogsServiceRequest, Vec<LogRecord>, u64)> {
    let request: ExportLogsServiceRequest = decode(format(json), body)?;
    let origins = crate::otlp::logs::origins(&request);
    let (rows, rejections) = crate::otlp::logs::convert(&request, &origins, now_ns);
    let records = rows
        .views()
        .iter()
        .map(crate::otlp::logs::RowView::to_record)
        .collect();
    Ok((request, records, rejections.count))
}

/// Decodes and converts an OTLP metrics export: the write and the rejected point count.
pub fn otlp_metrics(body: &[u8], json: bool, now_ns: i64) -> Result<(MetricsWrite, u64)> {
    let request: ExportMetricsServiceRequest = decode(format(json), body)?;
    let (write, rejections) = crate::otlp::metrics::convert(&request, now_ns);
    Ok((write, rejections.count))
}
