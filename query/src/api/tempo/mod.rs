//! The Tempo API (PROTOCOLS.md §5.1–5.5): trace by id (protobuf or OTLP/JSON), TraceQL
//! and tag search, tag names and values, echo and build info, TraceQL metrics; plus the service graph
//! (`/api/v1/service_graph`) computed from spans.

mod metrics;
pub(crate) mod otlp;
pub(crate) mod params;
mod search;
mod tags;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message;
use serde_json::{Value, json};

use crate::traces::{self, TimeRange};
use crate::{Error, QueryContext, Result};
use otlp::{TempoTrace, TraceByIdMetrics, TraceByIdResponse};
use params::{Params, text_error, wants_protobuf};

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/echo", get(echo))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(values_v2))
        .route("/api/metrics/query_range", get(metrics_query_range))
        .route("/api/v1/service_graph", get(service_graph))
}

fn answer(result: Result<Value>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => text_error(error),
    }
}

async fn echo() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "echo",
    )
        .into_response()
}

async fn buildinfo() -> Json<Value> {
    Json(json!({
        "version": "2.8.0",
        "revision": concat!("sightline-", env!("CARGO_PKG_VERSION")),
        "branch": "main",
        "buildDate": "",
        "buildUser": "sightline",
        "goVersion": "",
    }))
}

/// The optional `start`/`end` (Unix seconds) of a trace-by-id request.
fn trace_range(params: &Params) -> Result<Option<TimeRange>> {
    let (Some(start), Some(end)) = (params.int("start")?, params.int("end")?) else {
        return Ok(None);
    };
    if start <= 0 || end <= 0 {
        return Ok(None);
    }
    Ok(Some(
        TimeRange {
            start_ns: start.saturating_mul(1_000_000_000),
            end_ns: end.saturating_add(1).saturating_mul(1_000_000_000),
        }
        .validate()?,
    ))
}

async fn find_trace(
    context: &QueryContext,
    headers: &HeaderMap,
    id: &str,
    params: &Params,
) -> Result<traces::Trace> {
    let tenant = context.tenant(headers)?;
    let trace_id = traces::parse_trace_id(id)?;
    traces::trace_by_id(context, &tenant, trace_id, trace_range(params)?)
        .await?
        .ok_or_else(|| Error::NotFound(format!("trace not found: {id}")))
}

fn protobuf(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/protobuf")],
        body,
    )
        .into_response()
}

async fn trace_v1(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let trace = match find_trace(&context, &headers, &id, &Params(params)).await {
        Ok(trace) => trace,
        Err(error) => return text_error(error),
    };
    let groups = otlp::resource_spans(&trace);
    if wants_protobuf(&headers) {
        protobuf(
            TempoTrace {
                resource_spans: groups,
            }
            .encode_to_vec(),
        )
    } else {
        Json(json!({"resourceSpans": otlp::resource_spans_json(&groups)})).into_response()
    }
}

async fn trace_v2(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let trace = match find_trace(&context, &headers, &id, &Params(params)).await {
        Ok(trace) => trace,
        Err(error) => return text_error(error),
    };
    let groups = otlp::resource_spans(&trace);
    if wants_protobuf(&headers) {
        protobuf(
            TraceByIdResponse {
                trace: Some(TempoTrace {
                    resource_spans: groups,
                }),
                metrics: Some(TraceByIdMetrics::default()),
                status: 0,
                message: String::new(),
            }
            .encode_to_vec(),
        )
    } else {
        Json(json!({
            "trace": {"resourceSpans": otlp::resource_spans_json(&groups)},
            "status": "COMPLETE",
        }))
        .into_response()
    }
}

async fn search(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            search::search(&context, &tenant, &params).await
        }
        .await,
    )
}

async fn metrics_query_range(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            metrics::metrics_query_range(&context, &tenant, &params).await
        }
        .await,
    )
}

async fn tags_v1(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            tags::tags_v1(&context, &tenant, &params).await
        }
        .await,
    )
}

async fn tags_v2(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            tags::tags_v2(&context, &tenant, &params).await
        }
        .await,
    )
}

async fn values_v1(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            tags::values_v1(&context, &tenant, &params, &tag).await
        }
        .await,
    )
}

async fn values_v2(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            tags::values_v2(&context, &tenant, &params, &tag).await
        }
        .await,
    )
}

/// `GET /api/v1/service_graph?start&end`: times as the Prometheus API takes them
/// (RFC 3339 or Unix seconds); the last hour by default.
async fn service_graph(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    let result = async {
        let tenant = context.tenant(&headers)?;
        let recent = TimeRange::recent();
        let ms = |name: &str| -> Result<Option<i64>> {
            params
                .get(name)
                .map(|v| crate::api::params::parse_time(name, v))
                .transpose()
        };
        let end_ns = ms("end")?.map_or(recent.end_ns, |t| t.saturating_mul(1_000_000));
        let start_ns = ms("start")?.map_or(end_ns - traces::DEFAULT_WINDOW_NS, |t| {
            t.saturating_mul(1_000_000)
        });
        let graph =
            traces::service_graph(&context, &tenant, TimeRange { start_ns, end_ns }).await?;
        Ok(json!({"status": "success", "data": graph}))
    }
    .await;
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => {
            let (status, message) = params::status_and_message(&error);
            (
                status,
                Json(json!({"status": "error", "errorType": "bad_data", "error": message})),
            )
                .into_response()
        }
    }
}
