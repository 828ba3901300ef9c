//! The HTTP routes the root package owns: lifecycle, self-metrics and admin.
//!
//! [`app`] is the main listener's router; [`lifecycle_router`] (health and readiness
//! only) is what the other HTTP listeners serve until their protocols arrive. Both are
//! plain `Router`s, built apart from serving so that tests can call them in-process.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingest::IngestService;
use proto::ErrorCode;
use query::{QueryContext, TenantResolver};
use serde::Serialize;
use storage::Storage;
use tracing::{error, info, warn};

use crate::Role;
use crate::self_metrics;

/// Shared state of every route: the storage engine once it has opened, and the
/// lifecycle flags. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

struct Inner {
    started: Instant,
    storage: OnceLock<Arc<Storage>>,
    ingest: IngestService,
    query: QueryContext,
    shutting_down: AtomicBool,
    body_limit: usize,
}

impl AppState {
    /// Builds the state of a server that has not opened storage yet.
    /// `body_limit` caps every request body, in bytes; `ingest` configures the receivers
    /// and `query` the read APIs. Reads and writes resolve tenants by the same rule.
    pub fn new(body_limit: usize, ingest: ingest::Config, query: query::Config) -> Self {
        let tenant_rule = ingest.clone();
        let resolver: TenantResolver = Arc::new(move |headers| {
            ingest::body::tenant(headers, &tenant_rule).map_err(|e| (e.code(), e.to_string()))
        });
        AppState {
            inner: Arc::new(Inner {
                started: Instant::now(),
                storage: OnceLock::new(),
                ingest: IngestService::new(ingest),
                query: QueryContext::new(query, resolver),
                shutting_down: AtomicBool::new(false),
                body_limit,
            }),
        }
    }

    /// Hands over the opened storage engine; from now on the server is ready.
    /// Only the first call has an effect.
    pub fn set_storage(&self, storage: Arc<Storage>) {
        self.inner.ingest.set_storage(storage.clone());
        self.inner.query.set_storage(storage.clone());
        if self.inner.storage.set(storage).is_err() {
            warn!("storage was already set; keeping the first engine");
        }
    }

    /// Returns the storage engine once it has opened.
    pub fn storage(&self) -> Option<&Arc<Storage>> {
        self.inner.storage.get()
    }

    /// Returns the service the write protocols go through.
    pub fn ingest(&self) -> &IngestService {
        &self.inner.ingest
    }

    /// Returns the state of the read APIs.
    pub fn query(&self) -> &QueryContext {
        &self.inner.query
    }

    /// Marks the server as shutting down: `/ready` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Returns true once storage has opened, until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    fn not_ready_reason(&self) -> Option<&'static str> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            Some("server is shutting down")
        } else if self.storage().is_none() {
            Some("storage is opening (wal replay in progress)")
        } else {
            None
        }
    }
}

/// Returns the main listener's router: lifecycle, `/metrics`, the admin API, every
/// ingest and query API, and the web UI at `/`.
pub fn app(state: AppState) -> Router {
    app_for_role(state, Role::All)
}

/// Returns the main listener's router of a node with `role`: lifecycle and `/metrics`
/// always; the write protocols and the admin flush when it ingests; the read APIs and
/// the web UI when it queries.
pub fn app_for_role(state: AppState, role: Role) -> Router {
    let body_limit = state.inner.body_limit;
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics));
    if role.ingests() {
        router = router
            .route("/api/v1/admin/flush", post(admin_flush))
            .route("/internal/v1/scan/{kind}", post(internal_scan))
            .route("/internal/v1/series", post(internal_series));
    }
    let mut router = router.with_state(state.clone());
    if role.ingests() {
        router = router.merge(ingest::router(state.ingest().clone()));
    }
    if role.queries() {
        router = router
            .merge(query::router(state.query().clone()))
            .merge(ui::router());
    }
    router.layer(DefaultBodyLimit::max(body_limit))
}

/// Returns the router of the Jaeger listener: the Jaeger query API plus `/health` and
/// `/ready`.
pub fn jaeger_router(state: AppState) -> Router {
    lifecycle_router(state.clone()).merge(query::jaeger_router(state.query().clone()))
}

/// Returns the router of the OTLP/HTTP listener: the OTLP routes plus `/health` and `/ready`.
pub fn otlp_http_router(state: AppState) -> Router {
    let body_limit = state.inner.body_limit;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state.clone())
        .merge(ingest::otlp::router(state.ingest().clone()))
        .layer(DefaultBodyLimit::max(body_limit))
}

/// Returns the router of `--es-listen`: the Elasticsearch API without the `/es` prefix,
/// plus `/health` and `/ready`.
pub fn es_router(state: AppState) -> Router {
    let body_limit = state.inner.body_limit;
    lifecycle_router(state.clone())
        .merge(ingest::es::router(state.ingest().clone()))
        .layer(DefaultBodyLimit::max(body_limit))
}

/// Returns the router of the listeners whose protocols have not arrived yet:
/// `/health` and `/ready` only.
pub fn lifecycle_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .layer(DefaultBodyLimit::max(state.inner.body_limit))
        .with_state(state)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.not_ready_reason() {
        None => "ready\n".into_response(),
        Some(reason) => ApiError::NotReady(reason).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = self_metrics::Snapshot {
        uptime: state.inner.started.elapsed(),
        ready: state.is_ready(),
        storage: state.storage().map(|storage| storage.stats()),
        ingested: state.ingest().stats().snapshot(),
        resident_memory_bytes: self_metrics::resident_memory_bytes(),
    };
    (
        [(header::CONTENT_TYPE, self_metrics::CONTENT_TYPE)],
        self_metrics::render(&snapshot),
    )
        .into_response()
}

#[derive(Debug, Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

#[derive(Debug, Serialize)]
struct FlushData {
    segments: usize,
    rows: u64,
    bytes: u64,
}

async fn admin_flush(State(state): State<AppState>) -> Result<Response, ApiError> {
    let storage = match state.storage() {
        Some(storage) => Arc::clone(storage),
        None => {
            return Err(ApiError::NotReady(
                "storage is opening (wal replay in progress)",
            ));
        }
    };
    let started = Instant::now();
    let report = storage.flush().await.map_err(ApiError::Storage)?;
    info!(
        segments = report.segments,
        rows = report.rows,
        bytes = report.bytes,
        elapsed_ms = started.elapsed().as_millis(),
        "admin flush done"
    );
    let body = Success {
        status: "success",
        data: FlushData {
            segments: report.segments,
            rows: report.rows,
            bytes: report.bytes,
        },
    };
    Ok(Json(body).into_response())
}

fn opened_storage(state: &AppState) -> Result<Arc<Storage>, ApiError> {
    state.storage().cloned().ok_or(ApiError::NotReady(
        "storage is opening (wal replay in progress)",
    ))
}

/// `POST /internal/v1/scan/{samples|logs|spans}` (ingesters): the rows a querier's
/// segments do not hold yet, as length-prefixed Arrow IPC streams; the
/// `x-sightline-complete` header says whether this node still held all of them.
async fn internal_scan(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Json(request): Json<storage::ScanRequest>,
) -> Result<Response, ApiError> {
    let storage = opened_storage(&state)?;
    let kind = storage::ScanKind::parse(&kind).ok_or_else(|| {
        ApiError::Storage(storage::Error::InvalidQuery(format!(
            "unknown scan {kind:?}"
        )))
    })?;
    let (body, complete) = storage
        .serve_scan(kind, &request)
        .await
        .map_err(ApiError::Storage)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apache.arrow.stream"),
            ),
            (
                header::HeaderName::from_static(storage::COMPLETE_HEADER),
                HeaderValue::from_static(if complete { "1" } else { "0" }),
            ),
        ],
        body,
    )
        .into_response())
}

/// `POST /internal/v1/series` (ingesters): label sets created here past a querier's
/// cursors, and metadata not flushed yet.
async fn internal_series(
    State(state): State<AppState>,
    Json(request): Json<storage::SeriesRequest>,
) -> Result<Response, ApiError> {
    let storage = opened_storage(&state)?;
    Ok(Json(storage.serve_series(&request)).into_response())
}

/// An error answered over HTTP. 4xx carry their message; 5xx are logged and answered
/// with a generic message; 429 and 503 carry `Retry-After`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server cannot serve this yet (or any more).
    #[error("{0}")]
    NotReady(&'static str),
    /// The storage engine refused or failed.
    #[error(transparent)]
    Storage(storage::Error),
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: String,
}

impl ApiError {
    /// Returns the category that picks the status.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::NotReady(_) => ErrorCode::Unavailable,
            ApiError::Storage(error) => error.code(),
        }
    }

    /// Returns the message the client sees, logging the detail of server-side failures.
    fn client_message(&self, status: StatusCode) -> String {
        match self {
            ApiError::NotReady(reason) => (*reason).to_string(),
            ApiError::Storage(_) if status.is_client_error() => self.to_string(),
            ApiError::Storage(storage_error) if status == StatusCode::SERVICE_UNAVAILABLE => {
                warn!(error = ?storage_error, "storage unavailable");
                "storage is unavailable, retry later".to_string()
            }
            ApiError::Storage(storage_error) => {
                error!(error = ?storage_error, "storage request failed");
                "internal error".to_string()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            status: "error",
            error_type: error_type(code),
            error: self.client_message(status),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after_seconds(code) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

/// Returns the Prometheus-API-style `errorType` of a category.
fn error_type(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "bad_data",
        ErrorCode::Unauthenticated => "unauthorized",
        ErrorCode::PermissionDenied => "forbidden",
        ErrorCode::NotFound => "not_found",
        ErrorCode::PayloadTooLarge => "too_large",
        ErrorCode::TooManyRequests => "too_many_requests",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Timeout => "timeout",
        ErrorCode::Internal => "internal",
    }
}

/// Returns the `Retry-After` value (seconds) of a retryable category.
fn retry_after_seconds(code: ErrorCode) -> Option<&'static str> {
    match code {
        _ if !code.is_retryable() => None,
        ErrorCode::TooManyRequests => Some("1"),
        _ => Some("5"),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(router: Router, method: &str, uri: &str) -> (StatusCode, Response) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        (response.status(), response)
    }

    async fn body_text(response: Response) -> String {
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn health_is_ok_and_ready_waits_for_storage() {
        let state = AppState::new(1024, ingest::Config::default(), query::Config::default());
        let (status, _) = call(app(state.clone()), "GET", "/health").await;
        assert_eq!(status, StatusCode::OK);

        let (status, response) = call(app(state.clone()), "GET", "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert!(body_text(response).await.contains("wal replay"));

        state.begin_shutdown();
        let (status, response) = call(lifecycle_router(state), "GET", "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body_text(response).await.contains("shutting down"));
    }

    #[tokio::test]
    async fn flush_before_storage_opens_is_503_with_retry_after() {
        let (status, response) = call(
            app(AppState::new(
                1024,
                ingest::Config::default(),
                query::Config::default(),
            )),
            "POST",
            "/api/v1/admin/flush",
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "unavailable");
    }

    #[tokio::test]
    async fn metrics_answer_before_storage_opens() {
        let (status, response) = call(
            app(AppState::new(
                1024,
                ingest::Config::default(),
                query::Config::default(),
            )),
            "GET",
            "/metrics",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            self_metrics::CONTENT_TYPE
        );
        assert!(body_text(response).await.contains("sightline_ready 0\n"));
    }

    #[tokio::test]
    async fn lifecycle_router_serves_only_lifecycle() {
        let (status, _) = call(
            lifecycle_router(AppState::new(
                1024,
                ingest::Config::default(),
                query::Config::default(),
            )),
            "GET",
            "/metrics",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn client_errors_show_their_message() {
        let error = ApiError::Storage(storage::Error::InvalidWrite("negative timestamp".into()));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        assert!(body_text(response).await.contains("negative timestamp"));
    }

    #[tokio::test]
    async fn server_errors_hide_their_detail() {
        let error = ApiError::Storage(storage::Error::Io {
            path: "/secret/wal/000001".into(),
            source: std::io::Error::other("disk on fire"),
        });
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_text(response).await;
        assert!(body.contains("internal error"), "{body}");
        assert!(!body.contains("secret") && !body.contains("fire"), "{body}");
    }

    #[tokio::test]
    async fn backpressure_is_503_with_retry_after() {
        let error = ApiError::Storage(storage::Error::Backpressure { used: 2, limit: 1 });
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }
}
