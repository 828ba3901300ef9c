//! The Tempo API (PROTOCOLS.md §5.1–5.6).

pub(crate) mod params;

use axum::Router;

use crate::QueryContext;

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
}
