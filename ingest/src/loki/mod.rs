//! Loki push: `POST /loki/api/v1/push`, JSON (optionally gzip) or snappy protobuf
//! (PROTOCOLS.md §6.1). 204 on success; 400 with a plain-text reason otherwise.

pub mod decode;
pub mod labels;
pub mod map;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use storage::model::LogRecord;
use tracing::{debug, instrument};

use crate::body::{self, Encoding};
use crate::{Error, IngestService, Protocol, Result};

/// The HTTP routes of this receiver.
pub(crate) fn routes() -> Router<IngestService> {
    Router::new().route("/loki/api/v1/push", post(push))
}

/// How far ahead of the server clock an entry may be.
pub const MAX_FUTURE_NS: i64 = 3_600 * 1_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Decodes a push body (already size-checked) by content type into log rows.
/// Protobuf bodies are snappy-compressed unless `Content-Encoding` already said otherwise.
pub fn decode_push(
    headers: &HeaderMap,
    body: Bytes,
    config: &crate::Config,
) -> Result<Vec<LogRecord>> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let streams = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => {
            let body = if headers.contains_key(CONTENT_ENCODING) {
                body::decode_body(headers, body, config)?
            } else {
                let limit = config.max_decompressed_size.bytes();
                body::decode_body(headers, body, config)
                    .and_then(|raw| body::decompress(Encoding::Snappy, raw, limit))?
            };
            decode::decode_proto(&body)
        }
        "" | "application/json" => decode::decode_json(&body::decode_body(headers, body, config)?),
        other => {
            return Err(Error::BadRequest(format!(
                "unsupported content-type {other:?} (use application/json or application/x-protobuf)"
            )));
        }
    }
    .map_err(Error::BadRequest)?;
    for stream in &streams {
        if stream.labels.len() > config.max_labels_per_series {
            return Err(Error::BadRequest(format!(
                "stream has {} labels, over the limit of {}",
                stream.labels.len(),
                config.max_labels_per_series
            )));
        }
        if let Some((name, _)) = stream
            .labels
            .iter()
            .find(|(_, value)| value.len() > config.max_label_value_length)
        {
            return Err(Error::BadRequest(format!(
                "value of label {name:?} is longer than {} bytes",
                config.max_label_value_length
            )));
        }
    }
    let now = now_ns();
    let latest = now.saturating_add(MAX_FUTURE_NS);
    for stream in &streams {
        if let Some(entry) = stream
            .entries
            .iter()
            .find(|entry| entry.timestamp_ns > latest)
        {
            return Err(Error::BadRequest(format!(
                "entry timestamp {} ns is more than 1h in the future",
                entry.timestamp_ns
            )));
        }
    }
    let mut records = Vec::with_capacity(streams.iter().map(|s| s.entries.len()).sum());
    for stream in streams {
        map::stream_to_records(stream, now, &mut records);
    }
    Ok(records)
}

#[instrument(skip_all, fields(protocol = "loki"))]
async fn push(State(service): State<IngestService>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let tenant = body::tenant(&headers, service.config())?;
        let records = decode_push(&headers, body, service.config())?;
        service.write_logs(Protocol::Loki, &tenant, &records).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            debug!(error = %error, "rejected loki push");
            let message = error.client_message();
            error.respond_with(message)
        }
    }
}
