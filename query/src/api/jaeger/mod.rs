//! The Jaeger query API (PROTOCOLS.md §5.7) served on the Jaeger listener: services,
//! operations, trace search, trace by id and dependencies, in the Jaeger UI's JSON
//! model (`{"data":…,"total","limit","offset","errors"}`, processes, typed tags,
//! microsecond times), and the v3 OTLP/JSON API (`/api/v3/…`).

mod v3;

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use storage::model::{Attributes, SpanRecord};

use super::tempo::params::{Params, status_and_message};
use crate::traces::{self, TagFilter, TimeRange, Trace, TraceSearch};
use crate::{Error, QueryContext, Result};

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .route("/api/v3/services", get(v3::services))
        .route("/api/v3/operations", get(v3::operations))
        .route("/api/v3/traces", get(v3::search))
        .route("/api/v3/traces/{id}", get(v3::trace))
}

/// Default number of traces a search returns.
const DEFAULT_LIMIT: usize = 20;

fn envelope(data: Value) -> Value {
    let total = data.as_array().map_or(0, Vec::len);
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

fn answer(result: Result<Value>) -> Response {
    match result {
        Ok(data) => Json(envelope(data)).into_response(),
        Err(error) => {
            let (status, message) = status_and_message(&error);
            let body = json!({
                "data": null, "total": 0, "limit": 0, "offset": 0,
                "errors": [{"code": status.as_u16(), "msg": message}],
            });
            (status, Json(body)).into_response()
        }
    }
}

/// A trace id as Jaeger writes it: 16 hex digits when the high half is zero.
fn jaeger_trace_id(trace_id: &proto::TraceId) -> String {
    let text = trace_id.to_string();
    if trace_id.0[..8].iter().all(|b| *b == 0) {
        text[16..].to_string()
    } else {
        text
    }
}

/// A Jaeger tag from stored text, typed when the text is a canonical int, float or bool.
fn tag(key: &str, text: &str) -> Value {
    if let Ok(int) = text.parse::<i64>()
        && int.to_string() == text
    {
        return json!({"key": key, "type": "int64", "value": int});
    }
    if let Ok(float) = text.parse::<f64>()
        && float.is_finite()
        && float.to_string() == text
    {
        return json!({"key": key, "type": "float64", "value": float});
    }
    if text == "true" || text == "false" {
        return json!({"key": key, "type": "bool", "value": text == "true"});
    }
    json!({"key": key, "type": "string", "value": text})
}

fn json_tag(key: &str, value: &Value) -> Value {
    match value {
        Value::Bool(flag) => json!({"key": key, "type": "bool", "value": flag}),
        Value::Number(n) if n.is_i64() => json!({"key": key, "type": "int64", "value": n}),
        Value::Number(n) => json!({"key": key, "type": "float64", "value": n}),
        Value::String(text) => json!({"key": key, "type": "string", "value": text}),
        other => json!({"key": key, "type": "string", "value": other.to_string()}),
    }
}

fn span_tags(span: &SpanRecord) -> Vec<Value> {
    let mut tags: Vec<Value> = span
        .attributes
        .iter()
        .map(|(key, value)| tag(key, value))
        .collect();
    if !matches!(span.kind.as_str(), "unspecified" | "") {
        tags.push(json!({"key": "span.kind", "type": "string", "value": span.kind}));
    }
    if let Some(peer) = &span.peer_service
        && !span.attributes.contains_key("peer.service")
    {
        tags.push(json!({"key": "peer.service", "type": "string", "value": peer}));
    }
    match span.status_code {
        2 => {
            if !span.attributes.contains_key("error") {
                tags.push(json!({"key": "error", "type": "bool", "value": true}));
            }
            tags.push(json!({"key": "otel.status_code", "type": "string", "value": "ERROR"}));
        }
        1 => tags.push(json!({"key": "otel.status_code", "type": "string", "value": "OK"})),
        _ => {}
    }
    if let Some(message) = span.status_message.as_deref().filter(|m| !m.is_empty()) {
        tags.push(json!({"key": "otel.status_description", "type": "string", "value": message}));
    }
    tags
}

fn logs(span: &SpanRecord) -> Vec<Value> {
    let events: Vec<Value> = span
        .events
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    events
        .iter()
        .map(|event| {
            let mut fields = vec![json!({
                "key": "event", "type": "string", "value": event["name"].as_str().unwrap_or(""),
            })];
            if let Some(attributes) = event["attributes"].as_object() {
                fields.extend(attributes.iter().map(|(k, v)| json_tag(k, v)));
            }
            json!({
                "timestamp": event["time_unix_nano"].as_u64().unwrap_or(0) / 1_000,
                "fields": fields,
            })
        })
        .collect()
}

fn references(trace_id: &str, span: &SpanRecord) -> Vec<Value> {
    let mut references = Vec::new();
    if let Some(parent) = span.parent_span_id {
        references.push(
            json!({"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent.to_string()}),
        );
    }
    let links: Vec<Value> = span
        .links
        .as_deref()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    for link in links {
        let (Some(trace), Some(id)) = (link["trace_id"].as_str(), link["span_id"].as_str()) else {
            continue;
        };
        let linked = trace
            .parse::<proto::TraceId>()
            .map(|t| jaeger_trace_id(&t))
            .unwrap_or_else(|_| trace.to_string());
        references.push(json!({"refType": "FOLLOWS_FROM", "traceID": linked, "spanID": id}));
    }
    references
}

/// One trace in the Jaeger UI model.
fn trace_json(trace: &Trace) -> Value {
    let trace_id = jaeger_trace_id(&trace.trace_id);
    let mut processes: BTreeMap<(&str, &Attributes), String> = BTreeMap::new();
    for span in &trace.spans {
        let next = format!("p{}", processes.len() + 1);
        processes
            .entry((span.service.as_str(), &span.resource))
            .or_insert(next);
    }
    let spans: Vec<Value> = trace
        .spans
        .iter()
        .map(|span| {
            json!({
                "traceID": trace_id,
                "spanID": span.span_id.to_string(),
                "operationName": span.name,
                "references": references(&trace_id, span),
                "startTime": span.start_ns / 1_000,
                "duration": span.duration_ns / 1_000,
                "tags": span_tags(span),
                "logs": logs(span),
                "processID": processes[&(span.service.as_str(), &span.resource)],
                "flags": 1,
                "warnings": null,
            })
        })
        .collect();
    let processes: serde_json::Map<String, Value> = processes
        .into_iter()
        .map(|((service, resource), id)| {
            let tags: Vec<Value> = resource
                .iter()
                .filter(|(k, _)| *k != "service.name")
                .map(|(k, v)| tag(k, v))
                .collect();
            (id, json!({"serviceName": service, "tags": tags}))
        })
        .collect();
    json!({"traceID": trace_id, "spans": spans, "processes": processes, "warnings": null})
}

async fn services(State(context): State<QueryContext>, headers: HeaderMap) -> Response {
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            Ok(json!(
                traces::service_names(&context, &tenant, TimeRange::recent()).await?
            ))
        }
        .await,
    )
}

async fn operation_names(
    context: &QueryContext,
    headers: &HeaderMap,
    service: &str,
) -> Result<Vec<traces::Operation>> {
    let tenant = context.tenant(headers)?;
    traces::operations(context, &tenant, TimeRange::recent(), Some(service)).await
}

async fn service_operations(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Response {
    answer(
        async {
            let mut names: Vec<String> = operation_names(&context, &headers, &service)
                .await?
                .into_iter()
                .map(|o| o.name)
                .collect();
            names.dedup();
            Ok(json!(names))
        }
        .await,
    )
}

async fn operations(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let service = params
                .get("service")
                .ok_or_else(|| Error::BadRequest("service is required".into()))?;
            let kind = params.get("spanKind");
            let list: Vec<Value> = operation_names(&context, &headers, service)
                .await?
                .into_iter()
                .filter(|o| kind.is_none_or(|k| k == o.kind))
                .map(|o| json!({"name": o.name, "spanKind": o.kind}))
                .collect();
            Ok(Value::Array(list))
        }
        .await,
    )
}

/// Parses the `tags` parameter (a JSON object) and `tag=key:value` parameters.
fn tag_filters(params: &Params) -> Result<Vec<TagFilter>> {
    let mut filters = Vec::new();
    for text in params.all("tags") {
        let object: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            Error::BadRequest(format!(
                "malformed tags {text:?}: expected a JSON object ({e})"
            ))
        })?;
        for (key, value) in object {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            filters.push(TagFilter::Equals(key, value));
        }
    }
    for text in params.all("tag") {
        let (key, value) = text.split_once(':').ok_or_else(|| {
            Error::BadRequest(format!("malformed tag {text:?}: expected key:value"))
        })?;
        filters.push(TagFilter::Equals(key.to_string(), value.to_string()));
    }
    Ok(filters)
}

/// The search window: `start`/`end` in microseconds, else `lookback` (a Go duration)
/// back from now, else the last hour.
fn search_window(params: &Params) -> Result<TimeRange> {
    let now = traces::now_ns();
    let end_ns = params
        .int("end")?
        .map_or(now, |us| us.saturating_mul(1_000));
    let start_ns = match (params.int("start")?, params.get("lookback")) {
        (Some(us), _) => us.saturating_mul(1_000),
        (None, Some(lookback)) => {
            let lookback = super::tempo::params::parse_go_duration(lookback)
                .ok_or_else(|| Error::BadRequest(format!("invalid lookback {lookback:?}")))?;
            end_ns.saturating_sub(lookback)
        }
        (None, None) => end_ns.saturating_sub(traces::DEFAULT_WINDOW_NS),
    };
    TimeRange { start_ns, end_ns }.validate()
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
            let service = params
                .get("service")
                .ok_or_else(|| Error::BadRequest("parameter 'service' is required".into()))?;
            let search = TraceSearch {
                service: Some(service.to_string()),
                span_name: params
                    .get("operation")
                    .filter(|o| *o != "all")
                    .map(str::to_string),
                tags: tag_filters(&params)?,
                min_duration_ns: params.go_duration("minDuration")?,
                max_duration_ns: params.go_duration("maxDuration")?,
                ..TraceSearch::new(
                    search_window(&params)?,
                    params.limit("limit", DEFAULT_LIMIT)?,
                )
            };
            let found = traces::search(&context, &tenant, &search).await?;
            Ok(Value::Array(found.iter().map(trace_json).collect()))
        }
        .await,
    )
}

async fn trace(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let trace_id = traces::parse_trace_id(&id)?;
            let range = match (params.int("start")?, params.int("end")?) {
                (Some(start), Some(end)) => Some(TimeRange {
                    start_ns: start.saturating_mul(1_000),
                    end_ns: end.saturating_mul(1_000),
                }),
                _ => None,
            };
            match traces::trace_by_id(&context, &tenant, trace_id, range).await? {
                Some(trace) => Ok(json!([trace_json(&trace)])),
                None => Err(Error::NotFound(format!("trace not found: {id}"))),
            }
        }
        .await,
    )
}

async fn dependencies(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let end_ms = params
                .int("endTs")?
                .unwrap_or_else(|| traces::now_ns() / 1_000_000);
            let lookback_ms = params.int("lookback")?.unwrap_or(24 * 3_600_000);
            let range = TimeRange {
                start_ns: end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000),
                end_ns: end_ms.saturating_mul(1_000_000),
            };
            let links = traces::dependencies(&context, &tenant, range).await?;
            Ok(Value::Array(
                links
                    .into_iter()
                    .map(|l| json!({"parent": l.parent, "child": l.child, "callCount": l.call_count}))
                    .collect(),
            ))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_typed() {
        assert_eq!(
            tag("a", "5"),
            json!({"key": "a", "type": "int64", "value": 5})
        );
        assert_eq!(
            tag("a", "0.5"),
            json!({"key": "a", "type": "float64", "value": 0.5})
        );
        assert_eq!(
            tag("a", "true"),
            json!({"key": "a", "type": "bool", "value": true})
        );
        assert_eq!(
            tag("a", "05"),
            json!({"key": "a", "type": "string", "value": "05"})
        );
    }

    #[test]
    fn tag_parameters() {
        let params = Params(vec![
            (
                "tags".into(),
                r#"{"http.status_code":"500","retry":true}"#.into(),
            ),
            ("tag".into(), "db.system:postgres".into()),
        ]);
        assert_eq!(
            tag_filters(&params).unwrap(),
            [
                TagFilter::Equals("http.status_code".into(), "500".into()),
                TagFilter::Equals("retry".into(), "true".into()),
                TagFilter::Equals("db.system".into(), "postgres".into()),
            ]
        );
        assert!(tag_filters(&Params(vec![("tags".into(), "nope".into())])).is_err());
    }
}
