//! OTLP receiver: OTLP/HTTP (protobuf and JSON, any `Content-Encoding` that
//! [`crate::body`] understands) and OTLP/gRPC ([`grpc`]), both through the same
//! conversion onto the storage models.
//!
//! ```text
//!   POST /v1/{traces,metrics,logs} ─┐                     ┌─ traces::convert ─► write_spans
//!   gRPC */Export ──────────────────┴─► decode (prost/serde) ─┼─ logs::convert ───► write_logs
//!                                                         └─ metrics::convert ► write_metrics
//! ```
//!
//! Individually invalid records (bad ids, stamped more than 1h in the future, data
//! points without a value…) are dropped and counted in `partial_success`; when every
//! record of a request is invalid the whole request is a 400 (`INVALID_ARGUMENT`).

mod convert;
pub(crate) mod decode;
pub(crate) mod delta;
pub mod grpc;
pub(crate) mod logs;
pub(crate) mod metrics;
mod points;
mod prom;
pub(crate) mod traces;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use proto::otlp::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};

use self::decode::{Format, decode, respond, respond_error};
use crate::{IngestService, Protocol, body};

/// The HTTP routes of this receiver: `/v1/{traces,metrics,logs}` and the Prometheus
/// (`/api/v1/otlp/v1/metrics`) and Loki (`/otlp/v1/logs`) aliases.
pub(crate) fn routes() -> Router<IngestService> {
    Router::new()
        .route("/v1/traces", post(export_traces))
        .route("/v1/metrics", post(export_metrics))
        .route("/api/v1/otlp/v1/metrics", post(export_metrics))
        .route("/v1/logs", post(export_logs))
        .route("/otlp/v1/logs", post(export_logs))
}

/// The OTLP/HTTP routes alone, for the dedicated OTLP/HTTP listener.
pub fn router(service: IngestService) -> Router {
    routes().with_state(service)
}

async fn export_traces(
    State(service): State<IngestService>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle::<ExportTraceServiceRequest, _, _, _>(
        service,
        headers,
        body,
        |service, tenant, request| async move {
            traces::export(&service, Protocol::OtlpHttp, &tenant, request).await
        },
    )
    .await
}

async fn export_metrics(
    State(service): State<IngestService>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle::<ExportMetricsServiceRequest, _, _, _>(
        service,
        headers,
        body,
        |service, tenant, request| async move {
            metrics::export(&service, Protocol::OtlpHttp, &tenant, request).await
        },
    )
    .await
}

async fn export_logs(
    State(service): State<IngestService>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle::<ExportLogsServiceRequest, _, _, _>(
        service,
        headers,
        body,
        |service, tenant, request| async move {
            logs::export(&service, Protocol::OtlpHttp, &tenant, request).await
        },
    )
    .await
}

/// The shape every OTLP/HTTP export shares: content type, tenant, capped body, decode,
/// export, and an answer in the request's own encoding.
async fn handle<Req, Resp, F, Fut>(
    service: IngestService,
    headers: HeaderMap,
    body: Bytes,
    export: F,
) -> Response
where
    Req: prost::Message + Default + serde::de::DeserializeOwned,
    Resp: prost::Message + serde::Serialize + Default + PartialEq,
    F: FnOnce(IngestService, proto::TenantId, Req) -> Fut,
    Fut: Future<Output = crate::Result<Resp>>,
{
    let format = match Format::from_headers(&headers) {
        Ok(format) => format,
        Err(refused) => return refused.into_response(),
    };
    let result = async {
        let tenant = body::tenant(&headers, service.config())?;
        let bytes = body::decode_body(&headers, body, service.config())?;
        let request: Req = decode(format, &bytes)?;
        export(service.clone(), tenant, request).await
    }
    .await;
    match result {
        Ok(response) => respond(format, &response),
        Err(error) => respond_error(format, &error),
    }
}
