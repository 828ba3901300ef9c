//! The Prometheus HTTP API (`/api/v1/*` read side), shaped so that Grafana's built-in
//! Prometheus datasource works unchanged (PROTOCOLS.md §1).
//!
//! This module owns the routes, the instant and range query endpoints and the error
//! envelope; [`metadata`] owns series, label, metadata and exemplar lookups, [`status`]
//! the build-info and the empty rules/alerts/targets answers, [`ast`] the syntax tree of
//! `parse_query`, [`request`] parameter parsing and [`encode`] the JSON wire format.
//! PromQL itself is [`crate::promql`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use promql_parser::parser::value::ValueType;
use proto::ErrorCode;

use crate::promql::{Engine, Evaluated, InstantSample, RangeSeries, Value};
use crate::{Error, QueryContext, Result};

mod ast;
pub mod encode;
mod metadata;
pub mod request;
mod status;

use request::Params;

/// Most points per series a range query may ask for, as in Prometheus.
const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// The warning Prometheus adds when `limit` cut a result short.
const TRUNCATED_WARNING: &str = "results truncated due to limit";

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/v1/query", get(instant_query).post(instant_query))
        .route("/api/v1/query_range", get(range_query).post(range_query))
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route("/api/v1/label/{name}/values", get(metadata::label_values))
        .route("/api/v1/metadata", get(metadata::metric_metadata))
        .route(
            "/api/v1/query_exemplars",
            get(metadata::exemplars).post(metadata::exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(status::format_query).post(status::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(ast::parse_query).post(ast::parse_query),
        )
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/rules", get(status::rules))
        .route("/api/v1/alerts", get(status::alerts))
        .route("/api/v1/targets", get(status::targets))
}

/// An error answered in the Prometheus envelope.
#[derive(Debug)]
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

/// Returns the HTTP status and `errorType` Prometheus uses for an error.
fn classify(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_data"),
        // Prometheus answers sample-limit errors as `execution` with 422 as well.
        Error::Execution(_) | Error::TooLarge(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        Error::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        other => match other.code() {
            ErrorCode::InvalidArgument => (StatusCode::BAD_REQUEST, "bad_data"),
            ErrorCode::PayloadTooLarge => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            ErrorCode::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            code @ (ErrorCode::Unauthenticated
            | ErrorCode::PermissionDenied
            | ErrorCode::TooManyRequests) => (
                StatusCode::from_u16(code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "bad_data",
            ),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_type) = classify(&self.0);
        let message = if status.is_server_error() && error_type == "internal" {
            tracing::error!(error = ?self.0, "prometheus api request failed");
            "internal error".to_string()
        } else {
            self.0.to_string()
        };
        json_response(status, encode::error(error_type, &message))
    }
}

/// A JSON response with the given status and body.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A success envelope around already-encoded `data`.
fn success(data: &str, warnings: &[String], infos: &[String]) -> Response {
    json_response(StatusCode::OK, encode::success(data, warnings, infos))
}

/// The current time in Unix milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The time budget of a query: `query.timeout`, shortened by a `timeout` parameter.
fn time_budget(context: &QueryContext, params: &Params) -> Result<Duration> {
    let configured = context.config().timeout.get();
    Ok(match params.duration("timeout")? {
        Some(ms) if ms > 0 => configured.min(Duration::from_millis(ms as u64)),
        Some(_) => {
            return Err(Error::BadRequest(
                "invalid parameter \"timeout\": timeout must be positive".to_string(),
            ));
        }
        None => configured,
    })
}

/// Largest `lookback_delta` a request may ask for: the lookback widens the window every
/// selector loads, so it is bounded like the other per-query costs.
const MAX_LOOKBACK_DELTA_MS: i64 = 7 * 24 * 3_600_000;

/// Builds the engine of one query: `lookback_delta`, when given and positive, replaces
/// `query.lookback_delta` for this query only (zero or negative keep it, as in
/// Prometheus); more than [`MAX_LOOKBACK_DELTA_MS`] is refused.
fn engine_for(context: &QueryContext, params: &Params) -> Result<Engine> {
    let engine = Engine::new(context.clone());
    match params.duration("lookback_delta")? {
        Some(ms) if ms > MAX_LOOKBACK_DELTA_MS => Err(Error::BadRequest(format!(
            "invalid parameter \"lookback_delta\": lookback delta must not exceed {}s",
            MAX_LOOKBACK_DELTA_MS / 1000
        ))),
        Some(ms) if ms > 0 => Ok(engine.with_lookback_delta(Duration::from_millis(ms as u64))),
        _ => Ok(engine),
    }
}

/// Parses `query` up front, so that syntax errors answer `bad_data` with Prometheus'
/// wording whatever the evaluator says; a range query also refuses range vectors and
/// strings, as Prometheus does.
fn check_query(query: &str, is_range: bool) -> Result<()> {
    let expr = crate::promql::parse_checked(query)
        .map_err(|e| Error::BadRequest(format!("invalid parameter \"query\": {e}")))?;
    if is_range {
        let kind = match expr.value_type() {
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
            ValueType::Vector | ValueType::Scalar => return Ok(()),
        };
        return Err(Error::BadRequest(format!(
            "invalid parameter \"query\": invalid expression type \"{kind}\" for range query, must be Scalar or instant Vector"
        )));
    }
    Ok(())
}

/// Runs an evaluation under the time budget; parse errors get Prometheus' prefix.
async fn evaluate(
    budget: Duration,
    evaluation: impl Future<Output = Result<Evaluated>>,
) -> Result<Evaluated> {
    match tokio::time::timeout(budget, evaluation).await {
        Err(_) => Err(Error::Timeout(budget)),
        Ok(Err(Error::BadRequest(message))) if !message.starts_with("invalid parameter") => Err(
            Error::BadRequest(format!("invalid parameter \"query\": {message}")),
        ),
        Ok(result) => result,
    }
}

/// Cuts a vector or matrix to `limit` series (0: no limit), saying so in the warnings.
fn apply_limit(value: &mut Value, limit: usize, warnings: &mut Vec<String>) {
    let truncated = match value {
        Value::Vector(samples) if limit > 0 && samples.len() > limit => {
            samples.truncate(limit);
            true
        }
        Value::Matrix(series) if limit > 0 && series.len() > limit => {
            series.truncate(limit);
            true
        }
        _ => false,
    };
    if truncated {
        warnings.push(TRUNCATED_WARNING.to_string());
    }
}

fn respond(mut evaluated: Evaluated, limit: usize) -> Response {
    apply_limit(&mut evaluated.value, limit, &mut evaluated.warnings);
    let mut data = String::new();
    encode::push_query_data(&mut data, &evaluated.value);
    success(&data, &evaluated.warnings, &evaluated.infos)
}

/// `GET|POST /api/v1/query`: an instant query at `time` (default now).
async fn instant_query(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = context.tenant(&headers)?;
    let limit = params.limit()?;
    let time = params.time_or("time", now_ms())?;
    let budget = time_budget(&context, &params)?;
    let engine = engine_for(&context, &params)?;
    let query = params.value("query").unwrap_or("");
    check_query(query, false)?;
    let evaluated = evaluate(budget, engine.instant(&tenant, query, time)).await?;
    Ok(respond(evaluated, limit))
}

/// Checks a range query's bounds as Prometheus does; returns the step in ms.
fn range_bounds(params: &Params) -> Result<(i64, i64, i64)> {
    let start = params.time("start")?;
    let end = params.time("end")?;
    if end < start {
        return Err(Error::BadRequest(
            "invalid parameter \"end\": end timestamp must not be before start time".to_string(),
        ));
    }
    let step = crate::api::params::parse_duration("step", params.value("step").unwrap_or(""))?;
    if step <= 0 {
        return Err(Error::BadRequest(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".to_string(),
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(Error::BadRequest(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".to_string(),
        ));
    }
    Ok((start, end, step))
}

/// Turns whatever the engine returned for a range query into a sorted matrix.
fn into_matrix(value: Value) -> Result<Value> {
    let mut series = match value {
        Value::Matrix(series) => series,
        Value::Vector(samples) => samples
            .into_iter()
            .map(|InstantSample { labels, t_ms, v }| RangeSeries {
                labels,
                points: vec![(t_ms, v)],
            })
            .collect(),
        Value::Scalar { t_ms, v } => vec![RangeSeries {
            labels: Default::default(),
            points: vec![(t_ms, v)],
        }],
        Value::String { .. } => {
            return Err(Error::BadRequest(
                "invalid parameter \"query\": invalid expression type \"string\" for range query, must be Scalar or instant Vector".to_string(),
            ));
        }
    };
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(series))
}

/// `GET|POST /api/v1/query_range`: a range query, always answered as a matrix.
async fn range_query(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = context.tenant(&headers)?;
    let limit = params.limit()?;
    let (start, end, step) = range_bounds(&params)?;
    let budget = time_budget(&context, &params)?;
    let engine = engine_for(&context, &params)?;
    let query = params.value("query").unwrap_or("");
    check_query(query, true)?;
    let mut evaluated = evaluate(budget, engine.range(&tenant, query, start, end, step)).await?;
    evaluated.value = into_matrix(evaluated.value)?;
    Ok(respond(evaluated, limit))
}

#[cfg(test)]
mod tests;
