//! The ingest crate's one error type, and how it becomes an HTTP answer.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;

/// Everything that can go wrong while taking a write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The request is malformed; the message names the problem.
    #[error("{0}")]
    BadRequest(String),
    /// The request carries no valid bearer token while tokens are configured.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token does not belong to the tenant the request names.
    #[error("{0}")]
    PermissionDenied(String),
    /// The body (as sent or once decompressed) is over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The server is starting (WAL replay) or shutting down.
    #[error("server is not ready: {0}")]
    NotReady(&'static str),
    /// The storage engine refused or failed the append.
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// The ingest crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Returns the category used to pick the HTTP/gRPC status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidConfig(_) | Error::BadRequest(_) => ErrorCode::InvalidArgument,
            Error::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::NotReady(_) => ErrorCode::Unavailable,
            Error::Storage(e) => e.code(),
        }
    }

    /// The message a client may see: the reason for 4xx, a generic text for 5xx.
    pub fn client_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal error; see the server log".to_string(),
            _ => self.to_string(),
        }
    }

    /// Seconds a client should wait before retrying, for retryable errors.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            Error::Storage(storage::Error::Backpressure { .. }) => Some(1),
            _ if self.code().is_retryable() => Some(5),
            _ => None,
        }
    }

    /// Builds a response with the right status and `Retry-After`, and `body` as its body.
    pub fn respond_with(&self, body: impl IntoResponse) -> Response {
        if self.code() == ErrorCode::Internal {
            tracing::error!(error = ?self, "write failed");
        }
        let status = StatusCode::from_u16(self.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, body).into_response();
        if let Some(seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({ "error": self.client_message() }));
        self.respond_with(body)
    }
}
