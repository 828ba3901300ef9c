//! `GET /api/metrics/query_range` (PROTOCOLS.md §5.6): TraceQL metrics as Tempo's
//! `QueryRangeResponse` JSON.

use serde_json::{Value as Json, json};

use super::params::{Params, parse_go_duration};
use super::search::value_json;
use crate::traces::metrics::query_range;
use crate::traces::traceql::{Query, Value};
use crate::traces::{DEFAULT_WINDOW_NS, TimeRange, now_ns};
use crate::{Error, QueryContext, Result};

/// Parses a time as Tempo takes it: Unix seconds (with fraction), Unix nanoseconds or
/// RFC 3339.
fn time_ns(name: &str, text: &str) -> Result<i64> {
    if let Ok(number) = text.parse::<i64>()
        && number > 100_000_000_000_000
    {
        return Ok(number);
    }
    crate::api::params::parse_time(name, text).map(|ms| ms.saturating_mul(1_000_000))
}

fn label_text(value: &Value) -> String {
    match value {
        Value::Str(s) | Value::Raw(s) | Value::Kind(s) => s.clone(),
        Value::Int(i) | Value::Duration(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Status(code) => crate::traces::traceql::status_name(*code).to_string(),
        Value::Nil => "nil".to_string(),
    }
}

/// Answers `/api/metrics/query_range`.
pub(crate) async fn metrics_query_range(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
) -> Result<Json> {
    let text = params
        .get("q")
        .or_else(|| params.get("query"))
        .ok_or_else(|| Error::BadRequest("q is required".into()))?;
    let query = Query::parse(text)?;
    let end_ns = params
        .get("end")
        .map(|t| time_ns("end", t))
        .transpose()?
        .unwrap_or_else(now_ns);
    let start_ns = params
        .get("start")
        .map(|t| time_ns("start", t))
        .transpose()?
        .unwrap_or(end_ns - DEFAULT_WINDOW_NS);
    let range = TimeRange { start_ns, end_ns }.validate()?;
    let step_ns = match params.get("step") {
        Some(step) => parse_go_duration(step)
            .map(|ns| {
                if step.chars().all(|c| c.is_ascii_digit()) {
                    ns * 1_000_000_000
                } else {
                    ns
                }
            })
            .ok_or_else(|| Error::BadRequest(format!("invalid step {step:?}")))?,
        None => ((end_ns - start_ns) / 100).max(1_000_000_000),
    };
    let result = query_range(context, tenant, &query, range, step_ns).await?;
    let series: Vec<Json> = result
        .series
        .iter()
        .map(|series| {
            let prom = series
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_text(v)))
                .collect::<Vec<_>>()
                .join(", ");
            json!({
                "labels": series.labels.iter().map(|(k, v)| json!({"key": k, "value": value_json(v)})).collect::<Vec<_>>(),
                "samples": series.samples.iter().map(|(t, v)| json!({"timestampMs": t.to_string(), "value": v})).collect::<Vec<_>>(),
                "promLabels": format!("{{{prom}}}"),
            })
        })
        .collect();
    Ok(json!({
        "series": series,
        "metrics": {
            "inspectedTraces": result.inspected_traces,
            "inspectedSpans": result.inspected_spans.to_string(),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    }))
}
