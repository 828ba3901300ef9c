//! Ingest: every write protocol Sightline speaks, turned into storage appends.
//!
//! ```text
//!   OTLP gRPC/HTTP ─┐
//!   remote_write ───┤   decode ──► validate ──► normalise ──► IngestService ──► storage append ──► ack
//!   Zipkin, Loki ───┤   (capped     (limits,      (signal        (counts, span       (WAL fsync,
//!   ES _bulk ───────┘    inflate)    tenant)       models)         metrics)            then 2xx)
//! ```
//!
//! This crate owns one module per protocol (decode, normalise, router or tonic
//! service), request limits ([`body`]), tenant checks, and the [`IngestService`] they
//! all write through. A write is acknowledged only once `storage` has fsynced it.
//!
//! It must not answer queries (that is `query`), hold data of its own beyond one
//! request, or let wire types (prost/OTLP messages) travel past it: storage receives
//! our signal models, never protocol structs.

pub mod body;
mod config;
mod error;
pub mod es;
#[doc(hidden)]
pub mod fuzzing;
pub mod loki;
pub mod normalize;
pub mod otlp;
pub mod remote_write;
pub mod scrape;
mod service;
pub mod spanmetrics;
pub mod zipkin;

pub use config::{Config, TenantToken};
pub use error::{Error, Result};
pub use service::{IngestService, IngestStats, Protocol, SPAN_METRICS_INTERVAL};

use axum::Router;

/// The HTTP routes of every write protocol, for the main listener.
pub fn router(service: IngestService) -> Router {
    Router::new()
        .merge(otlp::routes())
        .merge(remote_write::routes())
        .merge(zipkin::routes())
        .merge(loki::routes())
        .nest("/es", es::routes())
        .merge(es::prefix_root_routes())
        .with_state(service)
}
