//! The crate's one error type.

/// Everything that can go wrong while planning or running a simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario name is not in the catalogue.
    #[error("unknown scenario {0:?} (list them with `sightline sim --list`)")]
    UnknownScenario(String),
    /// A configuration value is out of range or malformed.
    #[error("invalid sim config: {0}")]
    InvalidConfig(String),
    /// The request could not be sent or its answer not read.
    #[error("request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server refused a batch (a non-retryable status, or per-item `_bulk` errors).
    #[error("{url} answered {status}: {body}")]
    Rejected {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The server stayed overloaded (429/503) through every retry.
    #[error("{url} still overloaded after {attempts} attempts (last answer {status}: {body})")]
    GaveUp {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last answer's HTTP status.
        status: u16,
        /// The start of the last answer's body (the server says why it is busy).
        body: String,
    },
    /// The generator task panicked or was cancelled.
    #[error("the generator stopped unexpectedly: {0}")]
    Generator(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
