//! The signal models: Arrow schemas of every table, and row structs that build batches.
//!
//! Ingest turns each protocol into these batches; queries read them back. Ids are
//! binary (`FixedSizeBinary(16)` trace ids, `FixedSizeBinary(8)` span ids), times are
//! UTC nanoseconds for logs and spans and milliseconds for metric samples (as PromQL
//! counts them).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, FixedSizeBinaryBuilder, Float64Array, Int32Array, Int64Array, MapBuilder,
    RecordBatch, StringBuilder, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use proto::{SpanId, TraceId};

use crate::{Error, Result};

/// Attribute maps (`attributes`, `resource`, `labels`) as stored: sorted key → value.
pub type Attributes = BTreeMap<String, String>;

/// The Arrow type of an attribute map column: `Map<Utf8, Utf8>`.
pub fn attributes_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn timestamp_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Metric samples: `(series_id, ts_ms, value)`, sorted by series then time on disk.
pub static SAMPLES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("ts_ms", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ]))
});

/// Metric series: id, metric name and the other labels.
pub static SERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", attributes_type(), false),
    ]))
});

/// Exemplars attached to samples, with the trace they came from.
pub static EXEMPLARS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("ts_ms", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("trace_id", DataType::FixedSizeBinary(16), true),
        Field::new("span_id", DataType::FixedSizeBinary(8), true),
        Field::new("labels", attributes_type(), false),
    ]))
});

/// Metric metadata: type, help and unit per metric name.
pub static METADATA_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("help", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
    ]))
});

/// Log records.
pub static LOGS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_ns(), false),
        Field::new("observed_timestamp", timestamp_ns(), false),
        Field::new("service", DataType::Utf8, false),
        Field::new("instance", DataType::Utf8, true),
        Field::new("severity_text", DataType::Utf8, true),
        Field::new("severity_number", DataType::Int32, false),
        Field::new("body", DataType::Utf8, false),
        Field::new("trace_id", DataType::FixedSizeBinary(16), true),
        Field::new("span_id", DataType::FixedSizeBinary(8), true),
        Field::new("attributes", attributes_type(), false),
        Field::new("resource", attributes_type(), false),
    ]))
});

/// Trace spans.
pub static SPANS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new("service", DataType::Utf8, false),
        Field::new("instance", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("start", timestamp_ns(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Int32, false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new("peer_service", DataType::Utf8, true),
        Field::new("attributes", attributes_type(), false),
        Field::new("resource", attributes_type(), false),
        Field::new("events", DataType::Utf8, true),
        Field::new("links", DataType::Utf8, true),
    ]))
});

/// Column positions in [`LOGS_SCHEMA`].
pub(crate) mod log_col {
    pub const TIMESTAMP: usize = 0;
    pub const SERVICE: usize = 2;
    pub const BODY: usize = 6;
    pub const TRACE_ID: usize = 7;
}

/// Column positions in [`SPANS_SCHEMA`].
pub(crate) mod span_col {
    pub const TRACE_ID: usize = 0;
    pub const SERVICE: usize = 3;
    pub const START: usize = 7;
}

/// Checks that a batch has exactly the columns and types of `expected`.
pub(crate) fn check_schema(batch: &RecordBatch, expected: &Schema, table: &str) -> Result<()> {
    let actual = batch.schema();
    if actual.fields().len() != expected.fields().len() {
        return Err(Error::InvalidWrite(format!(
            "{table} batch has {} columns, expected {}",
            actual.fields().len(),
            expected.fields().len()
        )));
    }
    for (got, want) in actual.fields().iter().zip(expected.fields()) {
        if got.name() != want.name() || got.data_type() != want.data_type() {
            return Err(Error::InvalidWrite(format!(
                "{table} column {:?} of type {} does not match expected {:?} of type {}",
                got.name(),
                got.data_type(),
                want.name(),
                want.data_type()
            )));
        }
    }
    Ok(())
}

/// One log record, as ingest builds it before it becomes a row of [`LOGS_SCHEMA`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRecord {
    /// When the event happened, UTC nanoseconds.
    pub timestamp_ns: i64,
    /// When a collector first saw it, UTC nanoseconds.
    pub observed_ns: i64,
    /// The emitting service (`service.name`).
    pub service: String,
    /// The emitting replica (`service.instance.id`, pod or host name).
    pub instance: Option<String>,
    /// Severity as the source wrote it (`ERROR`, `warn`…).
    pub severity_text: Option<String>,
    /// OTLP severity number (1-24, 0 when unknown).
    pub severity_number: i32,
    /// The log line.
    pub body: String,
    /// The trace the record belongs to.
    pub trace_id: Option<TraceId>,
    /// The span the record belongs to.
    pub span_id: Option<SpanId>,
    /// Record attributes.
    pub attributes: Attributes,
    /// Resource attributes.
    pub resource: Attributes,
}

/// One span, as ingest builds it before it becomes a row of [`SPANS_SCHEMA`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanRecord {
    /// The trace id.
    pub trace_id: TraceId,
    /// The span id.
    pub span_id: SpanId,
    /// The parent span, absent on a root span.
    pub parent_span_id: Option<SpanId>,
    /// The service that recorded the span.
    pub service: String,
    /// The replica that recorded the span.
    pub instance: Option<String>,
    /// The operation name.
    pub name: String,
    /// `server`, `client`, `producer`, `consumer`, `internal` or `unspecified`.
    pub kind: String,
    /// Start time, UTC nanoseconds.
    pub start_ns: i64,
    /// Duration in nanoseconds.
    pub duration_ns: i64,
    /// OTLP status: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Status message, usually set on errors.
    pub status_message: Option<String>,
    /// The remote service this span called (`peer.service`), when known.
    pub peer_service: Option<String>,
    /// Span attributes.
    pub attributes: Attributes,
    /// Resource attributes.
    pub resource: Attributes,
    /// Span events as JSON.
    pub events: Option<String>,
    /// Span links as JSON.
    pub links: Option<String>,
}

/// A string column built in buffers of its exact final size. Arrow's builders grow by
/// doubling: they copy the bytes at each step and leave up to half of the last buffer
/// unused, and a memtable keeps these buffers until its flush.
fn string_column<'a>(values: impl Iterator<Item = Option<&'a str>> + Clone) -> ArrayRef {
    let (rows, bytes) = values.clone().fold((0, 0), |(rows, bytes), v| {
        (rows + 1, bytes + v.map_or(0, str::len))
    });
    let mut builder = StringBuilder::with_capacity(rows, bytes);
    for value in values {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

/// An attribute map column, its buffers sized exactly as [`string_column`]'s are.
fn map_column<'a>(maps: impl Iterator<Item = &'a Attributes> + Clone) -> Result<ArrayRef> {
    entries_column(maps.map(|map| map.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
}

/// A map column from each row's entries (sorted by key, each key once), its buffers
/// sized exactly as [`string_column`]'s are.
fn entries_column<'a, E>(maps: impl Iterator<Item = E> + Clone) -> Result<ArrayRef>
where
    E: Iterator<Item = (&'a str, &'a str)>,
{
    let (rows, entries, key_bytes, value_bytes) =
        maps.clone()
            .fold((0, 0, 0, 0), |(rows, entries, keys, values), map| {
                let (n, k, v) = map.fold((0, 0, 0), |(n, k, v), (key, value)| {
                    (n + 1, k + key.len(), v + value.len())
                });
                (rows + 1, entries + n, keys + k, values + v)
            });
    let mut builder = MapBuilder::with_capacity(
        None,
        StringBuilder::with_capacity(entries, key_bytes),
        StringBuilder::with_capacity(entries, value_bytes),
        rows,
    );
    for map in maps {
        for (key, value) in map {
            builder.keys().append_value(key);
            builder.values().append_value(value);
        }
        builder
            .append(true)
            .map_err(|e| Error::arrow("building attribute map", e))?;
    }
    Ok(Arc::new(builder.finish()))
}

fn fixed_column<const N: usize>(
    ids: impl Iterator<Item = Option<[u8; N]>>,
    capacity: usize,
) -> Result<ArrayRef> {
    let mut builder = FixedSizeBinaryBuilder::with_capacity(capacity, N as i32);
    for id in ids {
        match id {
            Some(bytes) => builder
                .append_value(bytes)
                .map_err(|e| Error::arrow("building id column", e))?,
            None => builder.append_null(),
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// A log record as [`logs_batch`] reads it: a [`LogRecord`], or a row whose fields are
/// borrowed from the request it came in (so that nothing is copied but into the batch).
pub trait LogRow {
    /// When the event happened, UTC nanoseconds.
    fn timestamp_ns(&self) -> i64;
    /// When a collector first saw it, UTC nanoseconds.
    fn observed_ns(&self) -> i64;
    /// The emitting service.
    fn service(&self) -> &str;
    /// The emitting replica.
    fn instance(&self) -> Option<&str>;
    /// Severity as the source wrote it.
    fn severity_text(&self) -> Option<&str>;
    /// OTLP severity number (0 when unknown).
    fn severity_number(&self) -> i32;
    /// The log line.
    fn body(&self) -> &str;
    /// The trace the record belongs to.
    fn trace_id(&self) -> Option<TraceId>;
    /// The span the record belongs to.
    fn span_id(&self) -> Option<SpanId>;
    /// Record attributes, sorted by key, each key once.
    fn attributes(&self) -> impl Iterator<Item = (&str, &str)> + Clone;
    /// Resource attributes, sorted by key, each key once.
    fn resource(&self) -> impl Iterator<Item = (&str, &str)> + Clone;
}

impl LogRow for LogRecord {
    fn timestamp_ns(&self) -> i64 {
        self.timestamp_ns
    }
    fn observed_ns(&self) -> i64 {
        self.observed_ns
    }
    fn service(&self) -> &str {
        &self.service
    }
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
    fn severity_text(&self) -> Option<&str> {
        self.severity_text.as_deref()
    }
    fn severity_number(&self) -> i32 {
        self.severity_number
    }
    fn body(&self) -> &str {
        &self.body
    }
    fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }
    fn span_id(&self) -> Option<SpanId> {
        self.span_id
    }
    fn attributes(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
    fn resource(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.resource.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Builds a [`LOGS_SCHEMA`] batch from records, every buffer at its exact final size.
pub fn logs_batch<R: LogRow>(records: &[R]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        timestamps(records.iter().map(LogRow::timestamp_ns)),
        timestamps(records.iter().map(LogRow::observed_ns)),
        string_column(records.iter().map(|r| Some(r.service()))),
        string_column(records.iter().map(LogRow::instance)),
        string_column(records.iter().map(LogRow::severity_text)),
        Arc::new(Int32Array::from_iter_values(
            records.iter().map(LogRow::severity_number),
        )),
        string_column(records.iter().map(|r| Some(r.body()))),
        fixed_column(
            records.iter().map(|r| r.trace_id().map(|id| id.0)),
            records.len(),
        )?,
        fixed_column(
            records.iter().map(|r| r.span_id().map(|id| id.0)),
            records.len(),
        )?,
        entries_column(records.iter().map(LogRow::attributes))?,
        entries_column(records.iter().map(LogRow::resource))?,
    ];
    RecordBatch::try_new(LOGS_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("building logs batch", e))
}

/// Builds a [`SPANS_SCHEMA`] batch from records.
pub fn spans_batch(records: &[SpanRecord]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        fixed_column(records.iter().map(|r| Some(r.trace_id.0)), records.len())?,
        fixed_column(records.iter().map(|r| Some(r.span_id.0)), records.len())?,
        fixed_column(
            records.iter().map(|r| r.parent_span_id.map(|id| id.0)),
            records.len(),
        )?,
        string_column(records.iter().map(|r| Some(r.service.as_str()))),
        string_column(records.iter().map(|r| r.instance.as_deref())),
        string_column(records.iter().map(|r| Some(r.name.as_str()))),
        string_column(records.iter().map(|r| Some(r.kind.as_str()))),
        timestamps(records.iter().map(|r| r.start_ns)),
        Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.duration_ns),
        )),
        Arc::new(Int32Array::from_iter_values(
            records.iter().map(|r| r.status_code),
        )),
        string_column(records.iter().map(|r| r.status_message.as_deref())),
        string_column(records.iter().map(|r| r.peer_service.as_deref())),
        map_column(records.iter().map(|r| &r.attributes))?,
        map_column(records.iter().map(|r| &r.resource))?,
        string_column(records.iter().map(|r| r.events.as_deref())),
        string_column(records.iter().map(|r| r.links.as_deref())),
    ];
    RecordBatch::try_new(SPANS_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("building spans batch", e))
}

/// Builds a [`SAMPLES_SCHEMA`] batch from parallel columns.
pub(crate) fn samples_batch(
    series: Vec<u64>,
    ts: Vec<i64>,
    values: Vec<f64>,
) -> Result<RecordBatch> {
    RecordBatch::try_new(
        SAMPLES_SCHEMA.clone(),
        vec![
            Arc::new(UInt64Array::from(series)),
            Arc::new(Int64Array::from(ts)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .map_err(|e| Error::arrow("building samples batch", e))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::*;

    fn record(i: usize) -> LogRecord {
        LogRecord {
            timestamp_ns: i as i64,
            service: format!("svc-{}", i % 3),
            instance: i.is_multiple_of(2).then(|| format!("pod-{i}")),
            severity_text: None,
            body: "x".repeat(200 + i % 50),
            attributes: (0..i % 4)
                .map(|k| (format!("key{k}"), format!("value {i}")))
                .collect(),
            ..LogRecord::default()
        }
    }

    #[test]
    fn log_columns_hold_the_records_in_buffers_of_their_exact_size() {
        let records: Vec<LogRecord> = (0..1000).map(record).collect();
        let batch = logs_batch(&records).unwrap();
        check_schema(&batch, &LOGS_SCHEMA, "logs").unwrap();

        let body = batch.column(log_col::BODY).as_string::<i32>();
        let instance = batch.column(3).as_string::<i32>();
        let severity = batch.column(4).as_string::<i32>();
        let attributes = batch.column(9).as_map();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(body.value(i), r.body);
            assert_eq!(instance.is_valid(i), r.instance.is_some());
            if let Some(expected) = &r.instance {
                assert_eq!(instance.value(i), expected);
            }
            let entries = attributes.value(i);
            let keys = entries.column(0).as_string::<i32>();
            let values = entries.column(1).as_string::<i32>();
            let got: Attributes = (0..entries.len())
                .map(|e| (keys.value(e).to_string(), values.value(e).to_string()))
                .collect();
            assert_eq!(got, r.attributes);
        }
        assert_eq!(severity.null_count(), records.len());
        assert_eq!(body.null_count(), 0);
        assert!(
            body.nulls().is_none(),
            "no validity buffer for a column without nulls"
        );

        // The body bytes' buffer is allocated once, at its final size (rounded up to
        // arrow's 64-byte alignment), not grown by doubling.
        let bytes: usize = records.iter().map(|r| r.body.len()).sum();
        let capacity = body.to_data().buffers()[1].capacity();
        assert!(
            (bytes..bytes + 64).contains(&capacity),
            "{capacity} bytes held for {bytes}"
        );
    }
}
