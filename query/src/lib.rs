//! Query: every read API Sightline answers, over hot and cold data alike.
//!
//! ```text
//!   storage scan ──► DataFusion tables ──► PromQL / LogQL / SQL ──► read APIs (Prometheus,
//!   (memtables +     metrics, logs,        trace assembly,          Loki, Zipkin, Tempo,
//!    Parquet,        spans                 service graph,           Jaeger, SQL, RCA)
//!    log index)                            failing-hop analysis     as an axum router
//! ```
//!
//! This crate owns the DataFusion session and its `metrics`, `logs` and `spans`
//! tables, the PromQL evaluator, the LogQL subset, trace assembly, the service graph,
//! the failing-hop (RCA) analysis, and the HTTP read APIs. It bounds every query by
//! time, memory and sample count.
//!
//! It must not write data or depend on `ingest`; it reaches data only through the
//! `storage` read API (scan requests with pushdown, full-text search, label index),
//! and DataFusion types stay inside it.
//!
//! So far it holds the `[query]` configuration section, [`Config`]; the engine arrives
//! with the query work.

mod config;

pub use config::Config;

/// Everything that can go wrong in query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// The query crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
