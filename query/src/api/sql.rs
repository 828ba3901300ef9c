//! `POST /api/v1/sql`: SQL over the `logs`, `spans` and `metrics` tables.
//!
//! Request: `{"sql": "...", "limit": 100}` (`limit` optional, at most
//! [`DEFAULT_ROW_LIMIT`]). Response: `{"columns": [{"name", "type"}], "rows": [[...]],
//! "truncated": bool}`, or an Arrow IPC stream when the request accepts
//! `application/vnd.apache.arrow.stream` (truncation then in the `x-sightline-truncated`
//! header). Errors: `{"status": "error", "error": message}` with 400 for bad SQL and
//! plan errors, 413 past the memory limit, 503 on timeout.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::ipc::writer::StreamWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::sql::{DEFAULT_ROW_LIMIT, SqlOutput, execute};
use crate::{Error, QueryContext, Result};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new().route("/api/v1/sql", post(sql))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    #[serde(default)]
    limit: Option<usize>,
}

async fn sql(State(context): State<QueryContext>, headers: HeaderMap, body: String) -> Response {
    match answer(&context, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

async fn answer(context: &QueryContext, headers: &HeaderMap, body: &str) -> Result<Response> {
    let tenant = context.tenant(headers)?;
    let request: SqlRequest = serde_json::from_str(body).map_err(|e| {
        Error::BadRequest(format!(
            "request body must be {{\"sql\": \"...\", \"limit\": n}}: {e}"
        ))
    })?;
    let limit = request
        .limit
        .unwrap_or(DEFAULT_ROW_LIMIT)
        .min(DEFAULT_ROW_LIMIT);
    let started = std::time::Instant::now();
    let output = execute(context, &tenant, &request.sql, limit).await?;
    tracing::debug!(
        tenant = %tenant,
        rows = output.rows(),
        truncated = output.truncated,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sql query answered"
    );
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    if wants_arrow {
        return arrow_response(&output);
    }
    Ok(axum::Json(json_body(&output)?).into_response())
}

fn error_response(error: &Error) -> Response {
    let status = StatusCode::from_u16(error.code().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message =
        if status.is_server_error() && !matches!(error, Error::Timeout(_) | Error::NotReady(_)) {
            tracing::error!(error = ?error, "sql query failed");
            "internal error while running the query".to_string()
        } else {
            error.to_string()
        };
    (
        status,
        axum::Json(json!({"status": "error", "error": message})),
    )
        .into_response()
}

fn arrow_response(output: &SqlOutput) -> Result<Response> {
    let mut buffer = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut buffer, &output.schema)?;
        for batch in &output.batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    let mut response = buffer.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ARROW_STREAM));
    headers.insert(
        "x-sightline-truncated",
        HeaderValue::from_static(if output.truncated { "true" } else { "false" }),
    );
    Ok(response)
}

/// Builds the JSON answer: column names and types, and rows of JSON values.
pub fn json_body(output: &SqlOutput) -> Result<Value> {
    let columns: Vec<Value> = output
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut rows = Vec::with_capacity(output.rows());
    for batch in &output.batches {
        append_rows(batch, &mut rows)?;
    }
    Ok(json!({"columns": columns, "rows": rows, "truncated": output.truncated}))
}

fn append_rows(batch: &RecordBatch, rows: &mut Vec<Value>) -> Result<()> {
    let first = rows.len();
    rows.extend(
        (0..batch.num_rows()).map(|_| Value::Array(Vec::with_capacity(batch.num_columns()))),
    );
    for column in batch.columns() {
        let values = json_values(column)?;
        for (row, value) in rows[first..].iter_mut().zip(values) {
            if let Value::Array(cells) = row {
                cells.push(value);
            }
        }
    }
    Ok(())
}

fn number(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else if value.is_nan() {
        json!("NaN")
    } else if value > 0.0 {
        json!("+Inf")
    } else {
        json!("-Inf")
    }
}

macro_rules! typed {
    ($array:expr, $ty:ty, $convert:expr) => {{
        let typed = $array
            .as_any()
            .downcast_ref::<$ty>()
            .ok_or_else(|| Error::Internal("array type does not match its data type".into()))?;
        (0..typed.len())
            .map(|i| {
                if typed.is_null(i) {
                    Value::Null
                } else {
                    $convert(typed.value(i))
                }
            })
            .collect()
    }};
}

/// Renders every value of a column as JSON: numbers, strings, RFC 3339 timestamps (UTC,
/// nanosecond precision), maps as objects, lists as arrays.
fn json_values(array: &ArrayRef) -> Result<Vec<Value>> {
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; array.len()],
        DataType::Boolean => typed!(array, BooleanArray, |v: bool| json!(v)),
        DataType::Int8 => typed!(array, Int8Array, |v: i8| json!(v)),
        DataType::Int16 => typed!(array, Int16Array, |v: i16| json!(v)),
        DataType::Int32 => typed!(array, Int32Array, |v: i32| json!(v)),
        DataType::Int64 => typed!(array, Int64Array, |v: i64| json!(v)),
        DataType::UInt8 => typed!(array, UInt8Array, |v: u8| json!(v)),
        DataType::UInt16 => typed!(array, UInt16Array, |v: u16| json!(v)),
        DataType::UInt32 => typed!(array, UInt32Array, |v: u32| json!(v)),
        DataType::UInt64 => typed!(array, UInt64Array, |v: u64| json!(v)),
        DataType::Float32 => typed!(array, Float32Array, |v: f32| number(f64::from(v))),
        DataType::Float64 => typed!(array, Float64Array, number),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = cast(array, &DataType::Utf8)?;
            typed!(strings, StringArray, |v: &str| json!(v))
        }
        DataType::Timestamp(_, _) => {
            let nanos = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            let nanos = cast(&nanos, &DataType::Int64)?;
            typed!(nanos, Int64Array, |v: i64| json!(
                chrono::DateTime::from_timestamp_nanos(v)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ))
        }
        DataType::Map(_, _) => {
            let maps = array
                .as_any()
                .downcast_ref::<MapArray>()
                .ok_or_else(|| Error::Internal("map array type mismatch".into()))?;
            let keys = json_values(maps.keys())?;
            let values = json_values(maps.values())?;
            let offsets = maps.value_offsets();
            (0..maps.len())
                .map(|row| {
                    if maps.is_null(row) {
                        return Value::Null;
                    }
                    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                    let object: Map<String, Value> = (start..end)
                        .map(|i| {
                            let key = match &keys[i] {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            (key, values[i].clone())
                        })
                        .collect();
                    Value::Object(object)
                })
                .collect()
        }
        DataType::List(_) => {
            let lists = array
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| Error::Internal("list array type mismatch".into()))?;
            let items = json_values(lists.values())?;
            let offsets = lists.value_offsets();
            (0..lists.len())
                .map(|row| {
                    if lists.is_null(row) {
                        return Value::Null;
                    }
                    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                    Value::Array(items[start..end].to_vec())
                })
                .collect()
        }
        DataType::Struct(fields) => {
            let structs = array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| Error::Internal("struct array type mismatch".into()))?;
            let children: Vec<Vec<Value>> = structs
                .columns()
                .iter()
                .map(json_values)
                .collect::<Result<_>>()?;
            (0..structs.len())
                .map(|row| {
                    if structs.is_null(row) {
                        return Value::Null;
                    }
                    Value::Object(
                        fields
                            .iter()
                            .zip(&children)
                            .map(|(f, values)| (f.name().clone(), values[row].clone()))
                            .collect(),
                    )
                })
                .collect()
        }
        _ => {
            let options = FormatOptions::default();
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        Value::Null
                    } else {
                        json!(formatter.value(i).to_string())
                    }
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn values_render_as_json() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert_eq!(json_values(&ints).unwrap(), vec![json!(1), Value::Null]);
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![0.5, f64::NAN, f64::INFINITY]));
        assert_eq!(
            json_values(&floats).unwrap(),
            vec![json!(0.5), json!("NaN"), json!("+Inf")]
        );
        let times: ArrayRef = Arc::new(
            arrow::array::TimestampNanosecondArray::from(vec![1_500_000_001]).with_timezone("UTC"),
        );
        assert_eq!(
            json_values(&times).unwrap(),
            vec![json!("1970-01-01T00:00:01.500000001Z")]
        );
    }
}
