//! Sightline: one observability server for metrics, logs and traces.
//!
//! This root package wires the workspace together: the configuration (one struct,
//! one TOML file), the listeners and their routers, graceful shutdown and the
//! server's own metrics. Signal logic lives in the member crates.
//!
//! ```text
//!   main.rs (CLI, logging, signals)
//!      │  Config::load ─► CLI overrides ─► run(config, shutdown)
//!      ▼
//!   run ─► bind :7700 (app: health, ready, metrics, admin)   :4317 (held for OTLP/gRPC)
//!      │        :4318, :16686, es (health, ready until their protocols arrive)
//!      └─► storage::Storage::open (WAL replay) ─► ready ─► … ─► drain ─► storage.close()
//! ```
//!
//! It must not hold signal logic (decoding, storing, querying): that belongs to
//! `ingest`, `storage` and `query`. Nothing in the workspace depends on it.

mod config;
mod http;
pub mod rca_loop;
pub mod self_metrics;
mod server;

pub use config::{
    Config, ConfigError, Listen, ParseListenError, ParseRoleError, Role, ServerConfig,
    TelemetryConfig,
};
pub use http::{
    ApiError, AppState, app, app_for_role, es_router, lifecycle_router, otlp_http_router,
};
pub use server::{Running, run};
