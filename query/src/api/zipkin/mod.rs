//! The Zipkin v2 query API (PROTOCOLS.md §4.4): services, span names, remote services,
//! trace search, traces by id, dependency links and autocomplete. Ingest serves
//! `POST /api/v2/spans` on the same path; these GET routes merge alongside it.

mod json;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::tempo::params::{Params, text_error};
use crate::traces::{self, AttributeScope, TagFilter, TimeRange, TraceSearch};
use crate::{Error, QueryContext, Result};

pub(crate) use json::span_json;

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/v2/services", get(services))
        .route("/api/v2/spans", get(span_names))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(search))
        .route("/api/v2/trace/{id}", get(trace))
        .route("/api/v2/traceMany", get(trace_many))
        .route("/api/v2/dependencies", get(dependencies))
        .route("/api/v2/autocompleteKeys", get(autocomplete_keys))
        .route("/api/v2/autocompleteValues", get(autocomplete_values))
}

const MS: i64 = 1_000_000;

fn answer(result: Result<Value>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => text_error(error),
    }
}

/// The window of `endTs` (ms, default now) and `lookback` (ms, default `default_lookback_ms`).
fn window(params: &Params, default_lookback_ms: i64) -> Result<TimeRange> {
    let end_ms = params
        .int("endTs")?
        .filter(|t| *t > 0)
        .unwrap_or_else(|| traces::now_ns() / MS);
    let lookback_ms = params.int("lookback")?.unwrap_or(default_lookback_ms);
    if lookback_ms < 0 {
        return Err(Error::BadRequest("lookback must not be negative".into()));
    }
    TimeRange {
        start_ns: end_ms.saturating_sub(lookback_ms).saturating_mul(MS),
        end_ns: end_ms.saturating_mul(MS).saturating_add(MS - 1),
    }
    .validate()
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str> {
    params
        .get(name)
        .ok_or_else(|| Error::BadRequest(format!("{name} is required")))
}

async fn services(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let names = traces::service_names(&context, &tenant, window(&params, HOUR_MS)?).await?;
            Ok(json!(names))
        }
        .await,
    )
}

async fn span_names(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let service = required(&params, "serviceName")?;
            let operations =
                traces::operations(&context, &tenant, window(&params, HOUR_MS)?, Some(service))
                    .await?;
            let mut names: Vec<String> = operations.into_iter().map(|o| o.name).collect();
            names.retain(|n| !n.is_empty());
            names.dedup();
            Ok(json!(names))
        }
        .await,
    )
}

async fn remote_services(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let service = required(&params, "serviceName")?;
            let names =
                traces::remote_services(&context, &tenant, window(&params, HOUR_MS)?, service)
                    .await?;
            Ok(json!(names))
        }
        .await,
    )
}

/// Parses `annotationQuery`: terms joined by ` and `; `k=v` matches a tag, a bare word
/// a tag key or an annotation.
fn annotation_query(text: &str) -> Vec<TagFilter> {
    text.split(" and ")
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .map(|term| match term.split_once('=') {
            Some((key, value)) => TagFilter::Equals(key.trim().into(), value.trim().into()),
            None => TagFilter::Exists(term.to_string()),
        })
        .collect()
}

fn micros(params: &Params, name: &str) -> Result<Option<i64>> {
    Ok(params.int(name)?.map(|us| us.saturating_mul(1_000)))
}

fn trace_json(trace: &traces::Trace) -> Value {
    Value::Array(trace.spans.iter().map(span_json).collect())
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
            let not_all = |name: &str| {
                params
                    .get(name)
                    .filter(|v| !v.eq_ignore_ascii_case("all"))
                    .map(str::to_string)
            };
            let search = TraceSearch {
                service: not_all("serviceName"),
                span_name: not_all("spanName"),
                tags: params
                    .get("annotationQuery")
                    .map(annotation_query)
                    .unwrap_or_default(),
                min_duration_ns: micros(&params, "minDuration")?,
                max_duration_ns: micros(&params, "maxDuration")?,
                ..TraceSearch::new(window(&params, HOUR_MS)?, params.limit("limit", 10)?)
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
) -> Response {
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let trace_id = traces::parse_trace_id(&id)?;
            match traces::trace_by_id(&context, &tenant, trace_id, None).await? {
                Some(trace) => Ok(trace_json(&trace)),
                None => Err(Error::NotFound(format!("trace {id} not found"))),
            }
        }
        .await,
    )
}

async fn trace_many(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let ids: Vec<&str> = required(&params, "traceIds")?
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .collect();
            if ids.len() < 2 {
                return Err(Error::BadRequest(
                    "traceIds needs at least two trace ids; use /api/v2/trace/{id} for one".into(),
                ));
            }
            let mut out = Vec::new();
            for id in ids.iter().take(traces::MAX_LIMIT) {
                let trace_id = traces::parse_trace_id(id)?;
                if let Some(trace) = traces::trace_by_id(&context, &tenant, trace_id, None).await? {
                    out.push(trace_json(&trace));
                }
            }
            Ok(Value::Array(out))
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
            required(&params, "endTs")?;
            let links = traces::dependencies(&context, &tenant, window(&params, DAY_MS)?).await?;
            Ok(Value::Array(
                links
                    .into_iter()
                    .map(|link| {
                        let mut value = json!({
                            "parent": link.parent,
                            "child": link.child,
                            "callCount": link.call_count,
                        });
                        if link.error_count > 0 {
                            value["errorCount"] = json!(link.error_count);
                        }
                        value
                    })
                    .collect(),
            ))
        }
        .await,
    )
}

/// Most keys or values an autocomplete answer lists.
const AUTOCOMPLETE_LIMIT: usize = 1_000;

async fn autocomplete_keys(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let (mut keys, _) = traces::attribute_keys(
                &context,
                &tenant,
                window(&params, HOUR_MS)?,
                AUTOCOMPLETE_LIMIT,
            )
            .await?;
            keys.retain(|k| !k.starts_with("zipkin."));
            Ok(json!(keys))
        }
        .await,
    )
}

async fn autocomplete_values(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(params);
    answer(
        async {
            let tenant = context.tenant(&headers)?;
            let key = required(&params, "key")?;
            let values = traces::attribute_values(
                &context,
                &tenant,
                window(&params, HOUR_MS)?,
                AttributeScope::Span,
                key,
                AUTOCOMPLETE_LIMIT,
            )
            .await?;
            Ok(json!(values))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_queries() {
        assert_eq!(
            annotation_query("http.uri=/foo and retried"),
            [
                TagFilter::Equals("http.uri".into(), "/foo".into()),
                TagFilter::Exists("retried".into())
            ]
        );
        assert!(annotation_query(" ").is_empty());
    }

    #[test]
    fn windows() {
        let params = Params(vec![
            ("endTs".into(), "2000".into()),
            ("lookback".into(), "500".into()),
        ]);
        let range = window(&params, HOUR_MS).unwrap();
        assert_eq!(
            (range.start_ns, range.end_ns),
            (1_500 * MS, 2_000 * MS + MS - 1)
        );
        let bad = Params(vec![("lookback".into(), "-1".into())]);
        assert!(window(&bad, HOUR_MS).is_err());
    }
}
