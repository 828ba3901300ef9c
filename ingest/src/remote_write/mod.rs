//! Prometheus remote_write 1.0 and 2.0 receiver: `POST /api/v1/write`.
//!
//! ```text
//!   Content-Type ──► version ─┐
//!   snappy body ──► size caps ┴► decompress into a reused buffer ──► zero-copy decode
//!       (1.0: `wire`; 2.0: prost per series) ──► convert + validate ──► IngestService ──► 204
//! ```
//!
//! The wire contract is `PROTOCOLS.md` §2. A 4xx makes Prometheus drop the batch, so a
//! request is validated whole and rejected whole (nothing stored); native histograms,
//! which storage cannot hold yet, are skipped and counted instead of failing the batch.

mod cache;
pub(crate) mod convert;
mod decode;
#[cfg(test)]
mod tests;
mod wire;
#[cfg(test)]
mod wire_tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use tracing::{debug, warn};

use crate::{Error, IngestService, Protocol, body};
use cache::LabelCache;
use convert::{Converted, Limits};
use decode::Version;

/// 2.0 response header: float samples written.
const SAMPLES_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-samples-written");
/// 2.0 response header: native histogram samples written.
const HISTOGRAMS_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-histograms-written");
/// 2.0 response header: exemplars written.
const EXEMPLARS_WRITTEN: HeaderName =
    HeaderName::from_static("x-prometheus-remote-write-exemplars-written");

/// Set once the first skipped native histogram has been logged at `warn`.
static HISTOGRAMS_WARNED: AtomicBool = AtomicBool::new(false);

/// The HTTP routes of this receiver.
pub(crate) fn routes() -> Router<IngestService> {
    Router::new()
        .route("/api/v1/write", post(write))
        .layer(Extension(Arc::new(LabelCache::default())))
}

/// Why a request was refused: a 415 that only this protocol has, or an ingest error.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// Unknown `Content-Type`, `proto=` or `Content-Encoding`.
    UnsupportedMediaType(String),
    /// Everything else (400, 413, 429, 503…).
    Ingest(Error),
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Rejection::Ingest(error)
    }
}

impl IntoResponse for Rejection {
    /// Plain-text bodies, as Prometheus logs them verbatim.
    fn into_response(self) -> Response {
        match self {
            Rejection::UnsupportedMediaType(message) => {
                debug!(reason = %message, "rejected remote write");
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response()
            }
            Rejection::Ingest(error) => {
                debug!(error = %error, "rejected remote write");
                error.respond_with(error.client_message())
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn write(
    State(service): State<IngestService>,
    Extension(cache): Extension<Arc<LabelCache>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    match accept(&service, &cache, &headers, raw).await {
        Ok(response) => response,
        Err(rejection) => rejection.into_response(),
    }
}

async fn accept(
    service: &IngestService,
    cache: &LabelCache,
    headers: &HeaderMap,
    raw: Bytes,
) -> Result<Response, Rejection> {
    let config = service.config();
    let version = decode::version(headers)?;
    let tenant = body::tenant(headers, config)?;
    let limits = Limits::new(config, now_ms());
    let mut converted = decode::with_body(headers, &raw, config, |bytes| match version {
        Version::V1 => convert::convert_v1_cached(bytes, limits, Some(cache)),
        Version::V2 => convert::convert_v2(bytes, limits),
    })?;
    drop(raw);
    log_skipped_histograms(&converted);
    let written = service
        .write_metrics(Protocol::RemoteWrite, &tenant, &converted.write)
        .await;
    convert::give_back(cache, &mut converted);
    written?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if version == Version::V2 {
        let headers = response.headers_mut();
        headers.insert(SAMPLES_WRITTEN, HeaderValue::from(converted.samples));
        headers.insert(HISTOGRAMS_WRITTEN, HeaderValue::from(0u32));
        headers.insert(EXEMPLARS_WRITTEN, HeaderValue::from(converted.exemplars));
    }
    Ok(response)
}

fn log_skipped_histograms(converted: &Converted) {
    let skipped = converted.skipped_histograms;
    if skipped == 0 {
        return;
    }
    if HISTOGRAMS_WARNED.swap(true, Ordering::Relaxed) {
        debug!(skipped, "skipped native histogram samples in remote write");
    } else {
        warn!(
            skipped,
            "native histograms are not supported yet; skipping them and storing the rest (logged once)"
        );
    }
}
