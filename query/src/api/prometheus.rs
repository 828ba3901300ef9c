//! Placeholder until this API lands.

use axum::Router;

use crate::QueryContext;

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
}
