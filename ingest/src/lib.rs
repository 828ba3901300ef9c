//! Ingest: every write protocol Sightline speaks, turned into storage appends.
//!
//! ```text
//!   OTLP gRPC/HTTP ─┐
//!   remote_write ───┤   decode ──► validate ──► normalise ──► storage append ──► ack
//!   Zipkin, Loki ───┤   (capped     (limits,      (signal        (WAL fsync,
//!   ES _bulk ───────┘    inflate)    tenant)       models)         then 2xx)
//! ```
//!
//! This crate owns one module per protocol (decode, validate, normalise, router or
//! tonic service), the Prometheus scraper, request limits, backpressure and the
//! tenant and auth checks. A write is acknowledged only once `storage` has fsynced it.
//!
//! It must not answer queries (that is `query`), hold data of its own beyond one
//! request, or let wire types (prost/OTLP messages) travel past it: storage receives
//! our signal models, never protocol structs.
//!
//! So far it holds the `[ingest]` configuration section, [`Config`]; the receivers
//! arrive with the ingest work.

mod config;

pub use config::Config;

/// Everything that can go wrong in ingest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// The ingest crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
