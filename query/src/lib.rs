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

pub mod api;
mod config;
mod context;
mod error;
pub mod logql;
pub mod patterns;
pub mod promql;
pub mod rca;
pub mod sql;
pub mod traces;

pub use api::{jaeger_router, router};
pub use config::Config;
pub use context::{QueryContext, TenantResolver};
pub use error::{Error, Result};
