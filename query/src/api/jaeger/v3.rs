//! The Jaeger v3 query API (OTLP/JSON gateway) that newer Grafana versions may use
//! (PROTOCOLS.md §5.7, last bullet): services, operations, trace by id, search.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::tempo::otlp::{resource_spans, resource_spans_json};
use super::super::tempo::params::{Params, parse_go_duration, status_and_message};
use super::DEFAULT_LIMIT;
use crate::traces::{self, TimeRange, Trace, TraceSearch};
use crate::{Error, QueryContext, Result};

fn answer(result: Result<Value>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => {
            let (status, message) = status_and_message(&error);
            let body = json!({"error": {"httpCode": status.as_u16(), "message": message}});
            (status, Json(body)).into_response()
        }
    }
}

fn traces_json(found: &[Trace]) -> Value {
    let groups: Vec<_> = found.iter().flat_map(resource_spans).collect();
    json!({"result": {"resourceSpans": resource_spans_json(&groups)}})
}

pub(super) async fn services(State(context): State<QueryContext>, headers: HeaderMap) -> Response {
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let services = traces::service_names(&context, &tenant, TimeRange::recent()).await?;
            Ok(json!({"services": services}))
        }
        .await,
    )
}

pub(super) async fn operations(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let service = params
                .get("service")
                .ok_or_else(|| Error::BadRequest("service is required".into()))?;
            let kind = params.get("span_kind").or_else(|| params.get("spanKind"));
            let list: Vec<Value> =
                traces::operations(&context, &tenant, TimeRange::recent(), Some(service))
                    .await?
                    .into_iter()
                    .filter(|o| kind.is_none_or(|k| k.eq_ignore_ascii_case(&o.kind)))
                    .map(|o| json!({"name": o.name, "spanKind": o.kind}))
                    .collect();
            Ok(json!({"operations": list}))
        }
        .await,
    )
}

pub(super) async fn trace(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let trace_id = traces::parse_trace_id(&id)?;
            match traces::trace_by_id(&context, &tenant, trace_id, None).await? {
                Some(trace) => Ok(traces_json(std::slice::from_ref(&trace))),
                None => Err(Error::NotFound(format!("trace not found: {id}"))),
            }
        }
        .await,
    )
}

fn rfc3339_ns(name: &str, text: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| Error::BadRequest(format!("invalid {name} {text:?}: expected RFC 3339")))
}

pub(super) async fn search(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let recent = TimeRange::recent();
            let start_ns = params
                .get("query.start_time_min")
                .map(|t| rfc3339_ns("query.start_time_min", t))
                .transpose()?
                .unwrap_or(recent.start_ns);
            let end_ns = params
                .get("query.start_time_max")
                .map(|t| rfc3339_ns("query.start_time_max", t))
                .transpose()?
                .unwrap_or(recent.end_ns);
            let duration = |name: &str| -> Result<Option<i64>> {
                params
                    .get(name)
                    .map(|d| {
                        parse_go_duration(d)
                            .ok_or_else(|| Error::BadRequest(format!("invalid {name} {d:?}")))
                    })
                    .transpose()
            };
            let mut tags = Vec::new();
            if let Some(text) = params.get("query.attributes") {
                let object: serde_json::Map<String, Value> = serde_json::from_str(text)
                    .map_err(|e| Error::BadRequest(format!("malformed query.attributes: {e}")))?;
                for (key, value) in object {
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string);
                    tags.push(traces::TagFilter::Equals(key, value));
                }
            }
            let limit = params.limit("query.search_depth", DEFAULT_LIMIT)?;
            let search = TraceSearch {
                service: params.get("query.service_name").map(str::to_string),
                span_name: params.get("query.operation_name").map(str::to_string),
                tags,
                min_duration_ns: duration("query.duration_min")?,
                max_duration_ns: duration("query.duration_max")?,
                ..TraceSearch::new(TimeRange { start_ns, end_ns }, limit)
            };
            let found = traces::search(&context, &tenant, &search).await?;
            Ok(traces_json(&found))
        }
        .await,
    )
}
