//! The storage crate's one error type.

use std::path::PathBuf;

use proto::ErrorCode;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A write does not fit the signal's model (wrong schema, bad value).
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// A query names something invalid (bad regex, bad range).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Memtables are over the memory limit; flushes are catching up.
    #[error("memory limit reached ({used} of {limit} bytes buffered); retry shortly")]
    Backpressure { used: u64, limit: u64 },
    /// The engine is closed or failed an fsync and refuses writes.
    #[error("storage is not accepting writes: {0}")]
    Unavailable(&'static str),
    /// Local file I/O failed.
    #[error("i/o error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An object store call failed.
    #[error("object store error on {path}")]
    ObjectStore {
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// Parquet encoding or decoding failed.
    #[error("parquet error in {context}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow kernel failed.
    #[error("arrow error in {context}")]
    Arrow {
        context: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The full-text index failed.
    #[error("log index error in {context}")]
    Index {
        context: String,
        #[source]
        source: tantivy::TantivyError,
    },
    /// Persisted state does not decode.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// A catalog (PostgreSQL) request failed.
    #[error("catalog request failed: {operation}")]
    Catalog {
        operation: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A catalog change lost a race with another node's (nothing was changed).
    #[error("catalog conflict: {0}")]
    Conflict(String),
}

/// The storage crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Returns the category used to pick the HTTP/gRPC status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidConfig(_) | Error::InvalidWrite(_) | Error::InvalidQuery(_) => {
                ErrorCode::InvalidArgument
            }
            // 503 rather than 429: every sender (Prometheus remote_write included) retries it.
            Error::Backpressure { .. } | Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Io { .. }
            | Error::ObjectStore { .. }
            | Error::Parquet { .. }
            | Error::Arrow { .. }
            | Error::Index { .. }
            | Error::Corrupt { .. }
            | Error::Task(_)
            | Error::Conflict(_) => ErrorCode::Internal,
            Error::Catalog { .. } => ErrorCode::Unavailable,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn arrow(context: &'static str, source: arrow::error::ArrowError) -> Self {
        Error::Arrow { context, source }
    }

    pub(crate) fn parquet(
        context: impl Into<String>,
        source: parquet::errors::ParquetError,
    ) -> Self {
        Error::Parquet {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn object_store(path: impl ToString, source: object_store::Error) -> Self {
        Error::ObjectStore {
            path: path.to_string(),
            source,
        }
    }
}
