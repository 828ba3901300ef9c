//! Build info, PromQL formatting, and the status/rules/alerts/targets endpoints that
//! Grafana may call: Sightline evaluates no rules and scrapes through `ingest`, so those
//! answer well-formed empty lists.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;

use super::request::Params;
use super::{ApiError, encode, success};
use crate::Error;

/// The Prometheus version we report: new enough (≥ 2.24) for Grafana to use the
/// labels API with `match[]`. No `features` field, so Grafana sees plain Prometheus.
pub(super) const REPORTED_VERSION: &str = "2.53.0";

/// When this process started (RFC 3339), for `runtimeinfo`.
static STARTED: LazyLock<String> = LazyLock::new(|| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    chrono::DateTime::from_timestamp_millis(now)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
});

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    let mut data = String::from("{\"version\":");
    encode::push_str(&mut data, REPORTED_VERSION);
    data.push_str(",\"revision\":");
    encode::push_str(
        &mut data,
        &format!("sightline-{}", env!("CARGO_PKG_VERSION")),
    );
    data.push_str(
        ",\"branch\":\"main\",\"buildUser\":\"sightline\",\"buildDate\":\"n/a\",\"goVersion\":\"n/a\"}",
    );
    success(&data, &[], &[])
}

/// `GET /api/v1/status/runtimeinfo`: the fields Prometheus reports that mean something here.
pub async fn runtimeinfo() -> Response {
    let mut data = String::from("{\"startTime\":");
    encode::push_str(&mut data, &STARTED);
    data.push_str(",\"CWD\":\"\",\"reloadConfigSuccess\":true,\"lastConfigTime\":");
    encode::push_str(&mut data, &STARTED);
    data.push_str(",\"corruptionCount\":0,\"goroutineCount\":0,\"GOMAXPROCS\":");
    data.push_str(
        &std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string(),
    );
    data.push_str(",\"GOMEMLIMIT\":0,\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":\"\"}");
    success(&data, &[], &[])
}

/// `GET /api/v1/status/flags`: no Prometheus flags apply.
pub async fn flags() -> Response {
    success("{}", &[], &[])
}

/// `GET /api/v1/status/config`: there is no Prometheus configuration file.
pub async fn config() -> Response {
    success("{\"yaml\":\"\"}", &[], &[])
}

/// `GET /api/v1/rules`: no recording or alerting rules.
pub async fn rules() -> Response {
    success("{\"groups\":[]}", &[], &[])
}

/// `GET /api/v1/alerts`: no alerts.
pub async fn alerts() -> Response {
    success("{\"alerts\":[]}", &[], &[])
}

/// `GET /api/v1/targets`: scrape targets are not listed through this API.
pub async fn targets() -> Response {
    success(
        "{\"activeTargets\":[],\"droppedTargets\":[],\"droppedTargetCounts\":{}}",
        &[],
        &[],
    )
}

/// `GET|POST /api/v1/format_query`: the query, pretty-printed.
pub async fn format_query(params: Params) -> Result<Response, ApiError> {
    let query = params.value("query").unwrap_or("");
    let expr = crate::promql::parse_checked(query)
        .map_err(|e| Error::BadRequest(format!("invalid parameter \"query\": {e}")))?;
    let mut data = String::new();
    encode::push_str(&mut data, &expr.prettify());
    Ok(success(&data, &[], &[]))
}
