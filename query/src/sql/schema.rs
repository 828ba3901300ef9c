//! The public SQL tables (`logs`, `spans`, `metrics`): their columns, and the
//! conversion of storage batches into them.
//!
//! Logs and spans keep the storage column order with public names; binary ids become
//! lowercase hex strings; attribute maps stay `Map<Utf8, Utf8>`. Metrics rows join the
//! series labels onto each sample.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, Float64Array, Int64Array, MapBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use storage::model::{LOGS_SCHEMA, SPANS_SCHEMA, attributes_type};

/// The three SQL tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// `logs`: one row per log record.
    Logs,
    /// `spans`: one row per span.
    Spans,
    /// `metrics`: one row per sample.
    Metrics,
}

impl TableKind {
    /// Every table.
    pub const ALL: [TableKind; 3] = [TableKind::Logs, TableKind::Spans, TableKind::Metrics];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Logs => "logs",
            TableKind::Spans => "spans",
            TableKind::Metrics => "metrics",
        }
    }

    /// The column whose range is pushed into the storage scan.
    pub fn time_column(self) -> &'static str {
        match self {
            TableKind::Logs | TableKind::Metrics => "ts",
            TableKind::Spans => "start",
        }
    }

    /// The public schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            TableKind::Logs => LOGS.clone(),
            TableKind::Spans => SPANS.clone(),
            TableKind::Metrics => METRICS.clone(),
        }
    }
}

/// Public names of the storage log columns, in storage order; `true` marks hex ids.
const LOG_COLUMNS: [(&str, bool); 11] = [
    ("ts", false),
    ("observed_ts", false),
    ("service", false),
    ("instance", false),
    ("severity", false),
    ("severity_number", false),
    ("body", false),
    ("trace_id", true),
    ("span_id", true),
    ("attributes", false),
    ("resource", false),
];

/// Public names of the storage span columns, in storage order; `true` marks hex ids.
const SPAN_COLUMNS: [(&str, bool); 16] = [
    ("trace_id", true),
    ("span_id", true),
    ("parent_span_id", true),
    ("service", false),
    ("instance", false),
    ("name", false),
    ("kind", false),
    ("start", false),
    ("duration_ns", false),
    ("status_code", false),
    ("status_message", false),
    ("peer_service", false),
    ("attributes", false),
    ("resource", false),
    ("events", false),
    ("links", false),
];

fn renamed(storage: &Schema, columns: &[(&str, bool)]) -> SchemaRef {
    let fields: Vec<Field> = storage
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, (name, hex))| {
            let data_type = if *hex {
                DataType::Utf8
            } else {
                field.data_type().clone()
            };
            Field::new(*name, data_type, field.is_nullable())
        })
        .collect();
    Arc::new(Schema::new(fields))
}

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| renamed(&LOGS_SCHEMA, &LOG_COLUMNS));
static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| renamed(&SPANS_SCHEMA, &SPAN_COLUMNS));
static METRICS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", attributes_type(), false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Float64, false),
        Field::new("service", DataType::Utf8, true),
        Field::new("instance", DataType::Utf8, true),
        Field::new("job", DataType::Utf8, true),
    ]))
});

fn hex_column(array: &ArrayRef) -> Result<ArrayRef> {
    let ids = array
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .ok_or_else(|| DataFusionError::Internal("id column is not fixed-size binary".into()))?;
    let mut out =
        StringBuilder::with_capacity(ids.len(), ids.len() * 2 * ids.value_length() as usize);
    let mut text = String::new();
    for row in 0..ids.len() {
        if ids.is_null(row) {
            out.append_null();
            continue;
        }
        text.clear();
        for byte in ids.value(row) {
            text.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
            text.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
        }
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// Turns a storage log or span batch into the projected public batch.
pub fn convert_batch(
    kind: TableKind,
    batch: &RecordBatch,
    projection: &[usize],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let hex: &[(&str, bool)] = match kind {
        TableKind::Logs => &LOG_COLUMNS,
        TableKind::Spans => &SPAN_COLUMNS,
        TableKind::Metrics => {
            return Err(DataFusionError::Internal(
                "metrics rows are built from samples".into(),
            ));
        }
    };
    let columns = projection
        .iter()
        .map(|index| {
            let column = batch.column(*index);
            if hex[*index].1 {
                hex_column(column)
            } else {
                Ok(column.clone())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// What the metrics table shows of one series.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    /// The metric name.
    pub metric: String,
    /// Every label but the name.
    pub labels: storage::model::Attributes,
}

/// Builds projected public metrics rows from a samples batch and the labels of its series.
pub fn metrics_batch(
    samples: &RecordBatch,
    series: &std::collections::HashMap<u64, SeriesRow>,
    projection: &[usize],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let ids = samples
        .column(0)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| DataFusionError::Internal("series ids are not u64".into()))?;
    let rows: Vec<Option<&SeriesRow>> = ids.values().iter().map(|id| series.get(id)).collect();
    let label = |name: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(|row| {
            row.and_then(|r| r.labels.get(name).map(String::as_str))
        })))
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(projection.len());
    for index in projection {
        let column: ArrayRef = match index {
            0 => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|row| row.map_or("", |r| r.metric.as_str())),
            )),
            1 => {
                let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
                for row in &rows {
                    for (key, value) in row.map(|r| &r.labels).into_iter().flatten() {
                        builder.keys().append_value(key);
                        builder.values().append_value(value);
                    }
                    builder.append(true)?;
                }
                Arc::new(builder.finish())
            }
            2 => {
                let ts = samples
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| DataFusionError::Internal("sample times are not i64".into()))?;
                Arc::new(
                    TimestampMillisecondArray::new(ts.values().clone(), None).with_timezone("UTC"),
                )
            }
            3 => {
                let values = samples
                    .column(2)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| DataFusionError::Internal("sample values are not f64".into()))?;
                Arc::new(values.clone())
            }
            4 => label("service"),
            5 => label("instance"),
            6 => label("job"),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "metrics has no column {other}"
                )));
            }
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(samples.num_rows())),
    )?)
}
