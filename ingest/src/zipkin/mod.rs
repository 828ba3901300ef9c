//! Zipkin v2 span ingest: `POST /api/v2/spans`, JSON or proto3, optionally gzip
//! (PROTOCOLS.md §4.3). 202 on success, 400 naming the problem.

pub mod decode;
pub mod map;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use storage::model::SpanRecord;
use tracing::{debug, instrument};

use crate::{Error, IngestService, Protocol, Result, body};

/// The HTTP routes of this receiver.
pub(crate) fn routes() -> Router<IngestService> {
    Router::new().route("/api/v2/spans", post(post_spans))
}

/// How far ahead of the server clock a span may start.
pub const MAX_FUTURE_NS: i64 = 3_600 * 1_000_000_000;

/// Decodes a body by its content type (JSON unless it says protobuf) into span rows;
/// `now_ns` bounds start times (at most [`MAX_FUTURE_NS`] ahead).
pub fn decode_spans(content_type: &str, body: &[u8], now_ns: i64) -> Result<Vec<SpanRecord>> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let spans = match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => decode::decode_proto(body),
        "" | "application/json" | "text/json" | "text/plain" => decode::decode_json(body),
        other => {
            return Err(Error::BadRequest(format!(
                "unsupported content-type {other:?} (use application/json or application/x-protobuf)"
            )));
        }
    }
    .map_err(Error::BadRequest)?;
    let latest_us = u64::try_from(now_ns.saturating_add(MAX_FUTURE_NS) / 1_000).unwrap_or(0);
    if let Some(span) = spans
        .iter()
        .find(|span| span.timestamp_us.is_some_and(|t| t > latest_us))
    {
        return Err(Error::BadRequest(format!(
            "span {} starts more than 1h in the future ({} µs)",
            span.id,
            span.timestamp_us.unwrap_or_default()
        )));
    }
    Ok(spans.into_iter().map(map::span_to_record).collect())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[instrument(skip_all, fields(protocol = "zipkin"))]
async fn post_spans(
    State(service): State<IngestService>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match store(&service, &headers, body).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => {
            debug!(error = %error, "rejected zipkin spans");
            error.into_response()
        }
    }
}

async fn store(service: &IngestService, headers: &HeaderMap, body: Bytes) -> Result<()> {
    let tenant = body::tenant(headers, service.config())?;
    let body = body::decode_body(headers, body, service.config())?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let records = decode_spans(content_type, &body, now_ns())?;
    service
        .write_spans(Protocol::Zipkin, &tenant, &records)
        .await
}
