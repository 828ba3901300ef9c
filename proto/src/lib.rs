//! Wire and domain types shared by every Sightline crate.
//!
//! ```text
//!   collectors ──► proto (ids, signal kinds, error codes, config units) ──► storage / ingest / query
//! ```
//!
//! This crate owns the small types that cross crate boundaries: tenant, trace, span,
//! series and segment ids; the [`Signal`] kind; the one [`ErrorCode`] that every
//! crate's error maps to (and that maps to HTTP and gRPC statuses); and the
//! human-readable units used in configuration ([`ByteSize`], [`HumanDuration`]).
//! The prost/tonic wire messages of OTLP, remote_write, Zipkin and Loki join it with
//! the ingest receivers. It holds no logic beyond parsing and formatting these types.

mod error_code;
mod ids;
pub mod loki;
pub mod otlp;
pub mod prometheus;
mod units;
pub mod zipkin;

pub use error_code::ErrorCode;
pub use ids::{ParseIdError, SegmentId, SeriesId, Signal, SpanId, TenantId, TraceId};
pub use units::{ByteSize, HumanDuration, ParseUnitError};
