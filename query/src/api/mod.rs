//! The HTTP read APIs, one module per protocol family, composed into one router.
//!
//! Every module exposes `routes()`, a `Router<QueryContext>`; [`router`] merges them
//! for the main port and [`jaeger_router`] serves the Jaeger API on its own listener
//! (its `/api/traces` clashes with Tempo's, PROTOCOLS.md §0.2).

use axum::Router;

use crate::QueryContext;

pub mod jaeger;
pub mod logs;
pub mod loki;
pub mod params;
pub mod prometheus;
pub mod rca;
pub mod sql;
pub mod tempo;
pub mod zipkin;

/// Returns the main port's read routes: Prometheus, Loki, Tempo, Zipkin, SQL, RCA.
pub fn router(context: QueryContext) -> Router {
    Router::new()
        .merge(prometheus::routes())
        .merge(loki::routes())
        .merge(logs::routes())
        .merge(tempo::routes())
        .merge(zipkin::routes())
        .merge(sql::routes())
        .merge(rca::routes())
        .with_state(context)
}

/// Returns the Jaeger query API for its own listener.
pub fn jaeger_router(context: QueryContext) -> Router {
    jaeger::routes().with_state(context)
}
