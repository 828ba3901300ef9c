//! `GET /api/v1/rca`: the failing-hop analysis over a window, as ranked suspects with
//! evidence (ARCHITECTURE.md public contract).

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::api::params::parse_time;
use crate::rca::{self, Request};
use crate::{Error, QueryContext, Result};

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new().route("/api/v1/rca", get(handle))
}

/// Builds the analysis request from query parameters: `start`, `end` (required),
/// `baseline_start`, `baseline_end`, `service`, `operation`, `signals` (comma-separated
/// subset of `traces,logs,metrics` to read).
pub fn request(params: &HashMap<String, String>) -> Result<Request> {
    let required = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Error::BadRequest(format!("missing parameter \"{name}\"")))
    };
    let start = parse_time("start", required("start")?)?;
    let end = parse_time("end", required("end")?)?;
    if end <= start {
        return Err(Error::BadRequest(
            "invalid parameter \"end\": end timestamp must be after start".into(),
        ));
    }
    let mut request = Request::new(start, end);
    let baseline_start = params.get("baseline_start").filter(|v| !v.is_empty());
    let baseline_end = params.get("baseline_end").filter(|v| !v.is_empty());
    if baseline_start.is_some() || baseline_end.is_some() {
        let b_end = match baseline_end {
            Some(v) => parse_time("baseline_end", v)?,
            None => start - 1,
        };
        let b_start = match baseline_start {
            Some(v) => parse_time("baseline_start", v)?,
            None => b_end - 3 * (end - start),
        };
        if b_end <= b_start {
            return Err(Error::BadRequest(
                "invalid parameter \"baseline_end\": must be after baseline_start".into(),
            ));
        }
        request.baseline = (b_start, b_end);
    }
    if let Some(list) = params.get("signals").filter(|v| !v.is_empty()) {
        let mut signals = Vec::new();
        for name in list.split(',').map(str::trim) {
            let known = rca::SIGNALS.iter().find(|s| **s == name).ok_or_else(|| {
                Error::BadRequest(format!(
                    "invalid parameter \"signals\": unknown signal {name:?} (traces, logs, metrics)"
                ))
            })?;
            signals.push(*known);
        }
        request.signals = signals;
    }
    request.service = params.get("service").filter(|v| !v.is_empty()).cloned();
    request.operation = params.get("operation").filter(|v| !v.is_empty()).cloned();
    if request.operation.is_some() && request.service.is_none() {
        return Err(Error::BadRequest(
            "parameter \"operation\" needs \"service\"".into(),
        ));
    }
    Ok(request)
}

async fn handle(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match answer(&context, &headers, &params).await {
        Ok(body) => Json(body).into_response(),
        Err(error) => {
            let status = StatusCode::from_u16(error.code().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let error_type = match status {
                StatusCode::BAD_REQUEST => "bad_data",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => "timeout",
                _ => "internal",
            };
            (
                status,
                Json(
                    json!({"status": "error", "errorType": error_type, "error": error.to_string()}),
                ),
            )
                .into_response()
        }
    }
}

async fn answer(
    context: &QueryContext,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value> {
    let request = request(params)?;
    let tenant = context.tenant(headers)?;
    let storage = context.storage()?;
    let timeout = context.config().timeout.get();
    let report = tokio::time::timeout(timeout, rca::analyze(storage, &tenant, &request, timeout))
        .await
        .map_err(|_| Error::Timeout(timeout))??;
    Ok(json!({"status": "success", "data": report}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_are_checked() {
        let r = request(&params(&[("start", "100"), ("end", "160")])).unwrap();
        assert_eq!((r.start_ms, r.end_ms), (100_000, 160_000));
        assert_eq!(r.baseline, (100_000 - 180_000, 99_999));
        let r = request(&params(&[
            ("start", "2026-11-24T10:00:00Z"),
            ("end", "2026-11-24T10:05:00Z"),
            ("baseline_start", "2026-11-24T09:00:00Z"),
            ("baseline_end", "2026-11-24T09:30:00Z"),
            ("service", "api"),
        ]))
        .unwrap();
        assert_eq!(r.baseline.1 - r.baseline.0, 1_800_000);
        assert_eq!(r.service.as_deref(), Some("api"));
        for bad in [
            params(&[("end", "1")]),
            params(&[("start", "x"), ("end", "1")]),
            params(&[("start", "10"), ("end", "5")]),
            params(&[("start", "1"), ("end", "5"), ("operation", "GET")]),
            params(&[("start", "1"), ("end", "5"), ("signals", "traces,profiles")]),
            params(&[
                ("start", "1"),
                ("end", "5"),
                ("baseline_start", "9"),
                ("baseline_end", "2"),
            ]),
        ] {
            assert!(
                matches!(request(&bad), Err(Error::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
