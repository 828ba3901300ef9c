//! The query crate's one error type.

use proto::ErrorCode;

/// Everything that can go wrong while answering a read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The request is malformed: a bad parameter, a query that does not parse.
    #[error("{0}")]
    BadRequest(String),
    /// The query parses but cannot be executed as asked (wrong types, bad regex).
    #[error("{0}")]
    Execution(String),
    /// The thing asked for does not exist (a trace id, a label).
    #[error("{0}")]
    NotFound(String),
    /// The tenant could not be established or may not read.
    #[error("{message}")]
    Access { code: ErrorCode, message: String },
    /// The query would exceed a per-query bound (samples, memory, series).
    #[error("{0}")]
    TooLarge(String),
    /// The query ran past `query.timeout`.
    #[error("query timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Storage has not opened yet (WAL replay) or is shutting down.
    #[error("storage is not ready: {0}")]
    NotReady(&'static str),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] storage::Error),
    /// DataFusion failed to plan or run a query.
    #[error("sql: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Returns the category used to pick the HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidConfig(_) | Error::BadRequest(_) | Error::Execution(_) => {
                ErrorCode::InvalidArgument
            }
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Access { code, .. } => *code,
            Error::TooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::NotReady(_) => ErrorCode::Unavailable,
            Error::Storage(e) => e.code(),
            Error::DataFusion(e) => datafusion_code(e),
            Error::Arrow(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

fn datafusion_code(error: &datafusion::error::DataFusionError) -> ErrorCode {
    use datafusion::error::DataFusionError as E;
    match error.find_root() {
        E::SQL(..) | E::Plan(_) | E::SchemaError(..) | E::NotImplemented(_) => {
            ErrorCode::InvalidArgument
        }
        E::ResourcesExhausted(_) => ErrorCode::PayloadTooLarge,
        _ => ErrorCode::Internal,
    }
}

/// The query crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
