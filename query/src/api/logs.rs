//! The native log API (web UI, failing-hop analysis): full-text search with paging,
//! hit counts per time bucket, and log patterns with a baseline comparison.
//!
//! - `GET /api/v1/logs/search?q=&start=&end=&limit=&cursor=&service=&severity=&trace_id=`
//!   → `{"status":"success","data":{"lines":[…],"next_cursor":"…"|null}}`, newest first.
//! - `GET /api/v1/logs/histogram?q=&start=&end=&step=[&service=&severity=&trace_id=]`
//!   → `{"status":"success","data":{"step_ns":…,"buckets":[[ns,count]…],"total":n}}`.
//! - `GET /api/v1/logs/patterns?service=&start=&end=[&step=][&baseline_start=&baseline_end=]`
//!   → `{"status":"success","data":{"patterns":[…],"changes":[…]}}` (`changes` only with a
//!   baseline).
//!
//! Times: Unix nanoseconds (integers of more than 10 digits), Unix seconds (with an
//! optional fraction) or RFC 3339; default the last hour.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::api::params::parse_duration;
use crate::logql::{self, LogSearch};
use crate::{Error, QueryContext, Result, patterns};

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route("/api/v1/logs/search", get(search))
        .route("/api/v1/logs/histogram", get(histogram))
        .route("/api/v1/logs/patterns", get(patterns_route))
}

/// Decoded `application/x-www-form-urlencoded` pairs (query string or body).
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Params {
    /// Parses `a=1&b=2`.
    pub fn parse(text: &str) -> Params {
        Params(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(name), percent_decode(value))
                })
                .collect(),
        )
    }

    /// Adds the pairs of another source.
    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses a time as Loki does: integers of up to 10 digits are Unix seconds, longer
/// ones Unix nanoseconds; a fraction means seconds; otherwise RFC 3339. Returns ns.
pub fn parse_time_ns(name: &str, value: &str) -> Result<i64> {
    let value = value.trim();
    let invalid = || {
        Error::BadRequest(format!(
            "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp"
        ))
    };
    if let Ok(integer) = value.parse::<i64>() {
        let digits = value.trim_start_matches('-').len();
        return Ok(if digits <= 10 {
            integer.saturating_mul(1_000_000_000)
        } else {
            integer
        });
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > 9.2e9 {
            return Err(invalid());
        }
        return Ok((seconds * 1e9).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(invalid)
}

/// Now, Unix nanoseconds.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `start`/`end` (or `since`) with a default lookback; both inclusive, ns.
pub fn time_range(params: &Params, default_lookback_ns: i64) -> Result<(i64, i64)> {
    let end = match params.get("end") {
        Some(v) => parse_time_ns("end", v)?,
        None => now_ns(),
    };
    let start = match (params.get("start"), params.get("since")) {
        (Some(v), _) => parse_time_ns("start", v)?,
        (None, Some(since)) => {
            end.saturating_sub(parse_duration("since", since)?.saturating_mul(1_000_000))
        }
        (None, None) => end.saturating_sub(default_lookback_ns),
    };
    if start > end {
        return Err(Error::BadRequest(
            "invalid time range: start must not be after end".into(),
        ));
    }
    Ok((start, end))
}

const HOUR_NS: i64 = 3_600_000_000_000;

fn error_json(error: &Error) -> Response {
    let code = error.code();
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error_type = match status.as_u16() {
        400 => "bad_data",
        404 => "not_found",
        413 => "too_large",
        503 => "unavailable",
        504 => "timeout",
        _ => "internal",
    };
    (
        status,
        Json(json!({"status":"error","errorType":error_type,"error":error.to_string()})),
    )
        .into_response()
}

fn success(data: serde_json::Value) -> Response {
    Json(json!({"status":"success","data":data})).into_response()
}

async fn with_timeout<T>(
    context: &QueryContext,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limit = context.config().timeout.get();
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| Error::Timeout(limit))?
}

fn log_search(params: &Params) -> Result<LogSearch> {
    let (start_ns, end_ns) = time_range(params, HOUR_NS)?;
    let limit = match params.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| Error::BadRequest(format!("invalid limit {v:?}")))?,
        None => 100,
    };
    let trace_id = params
        .get("trace_id")
        .map(|hex| {
            hex.parse()
                .map_err(|_| Error::BadRequest(format!("invalid trace id {hex:?}")))
        })
        .transpose()?;
    Ok(LogSearch {
        query: params.get("q").unwrap_or("").to_string(),
        start_ns,
        end_ns,
        limit,
        cursor: params.get("cursor").map(str::to_string),
        services: params
            .all("service")
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        severity: params.get("severity").map(str::to_string),
        trace_id,
    })
}

async fn search(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let run = async {
        let params = Params::parse(query.as_deref().unwrap_or(""));
        let tenant = context.tenant(&headers)?;
        let storage = context.storage()?;
        let request = log_search(&params)?;
        let page = with_timeout(&context, logql::search(storage, &tenant, &request)).await?;
        Ok::<_, Error>(success(
            serde_json::to_value(page).map_err(|e| Error::Internal(e.to_string()))?,
        ))
    };
    run.await.unwrap_or_else(|e| error_json(&e))
}

async fn histogram(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let run = async {
        let params = Params::parse(query.as_deref().unwrap_or(""));
        let tenant = context.tenant(&headers)?;
        let storage = context.storage()?;
        let request = log_search(&params)?;
        let step_ns = match params.get("step") {
            Some(step) => parse_duration("step", step)?.saturating_mul(1_000_000),
            None => (request.end_ns.saturating_sub(request.start_ns) / 100).max(1_000_000_000),
        };
        let histogram = with_timeout(
            &context,
            logql::count_by_bucket(storage, &tenant, &request, step_ns),
        )
        .await?;
        Ok::<_, Error>(success(
            serde_json::to_value(histogram).map_err(|e| Error::Internal(e.to_string()))?,
        ))
    };
    run.await.unwrap_or_else(|e| error_json(&e))
}

async fn patterns_route(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let run = async {
        let params = Params::parse(query.as_deref().unwrap_or(""));
        let tenant = context.tenant(&headers)?;
        let storage = context.storage()?;
        let (start, end) = time_range(&params, HOUR_NS)?;
        let services: Vec<String> = params
            .all("service")
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let step_ns = match params.get("step") {
            Some(step) => parse_duration("step", step)?
                .saturating_mul(1_000_000)
                .max(1),
            None => (end.saturating_sub(start) / 60).max(1_000_000_000),
        };
        if end.saturating_sub(start) / step_ns > 11_000 {
            return Err(Error::BadRequest("too many buckets; raise the step".into()));
        }
        let data = with_timeout(&context, async {
            let incident =
                Arc::new(patterns::lines(storage, &tenant, &services, start, end).await?);
            let mined = patterns::mine_blocking(incident.clone(), step_ns).await?;
            let mut data = json!({"patterns": mined});
            if let (Some(bs), Some(be)) = (params.get("baseline_start"), params.get("baseline_end"))
            {
                let bs = parse_time_ns("baseline_start", bs)?;
                let be = parse_time_ns("baseline_end", be)?;
                if bs > be {
                    return Err(Error::BadRequest(
                        "baseline_start must not be after baseline_end".into(),
                    ));
                }
                let baseline = patterns::lines(storage, &tenant, &services, bs, be).await?;
                let changes = patterns::compare_blocking(
                    baseline,
                    be.saturating_sub(bs),
                    incident,
                    end.saturating_sub(start),
                )
                .await?;
                data["changes"] =
                    serde_json::to_value(changes).map_err(|e| Error::Internal(e.to_string()))?;
            }
            Ok(data)
        })
        .await?;
        Ok::<_, Error>(success(data))
    };
    run.await.unwrap_or_else(|e| error_json(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_times() {
        let p = Params::parse("q=a+b%22c&x=&x=2&match%5B%5D=%7Bjob%3D%22a%22%7D");
        assert_eq!(p.get("q"), Some("a b\"c"));
        assert_eq!(p.get("x"), Some("2"));
        assert_eq!(p.all("match[]"), vec!["{job=\"a\"}"]);
        assert_eq!(
            parse_time_ns("t", "1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time_ns("t", "1700000000000000001").unwrap(),
            1_700_000_000_000_000_001
        );
        assert_eq!(parse_time_ns("t", "1.5").unwrap(), 1_500_000_000);
        assert_eq!(
            parse_time_ns("t", "1970-01-01T00:00:02Z").unwrap(),
            2_000_000_000
        );
        assert!(parse_time_ns("t", "x").is_err());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
