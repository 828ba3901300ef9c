//! UI: Sightline's own web interface, served at `/` on the main HTTP port.
//!
//! ```text
//!   browser ──► ui router ──► static assets (ui/web, built with npm + vite, embedded)
//!                  │
//!                  └─ the app calls the public read APIs of `query` over HTTP:
//!                     service map, failing-hop suspects, traces, logs, metrics, SQL
//! ```
//!
//! This crate owns the TypeScript app in `ui/web`, its embedding into the binary (the
//! build script runs `npm ci` + `vite build` and includes every output file) and the
//! router that serves it. It holds no business logic and does not touch `storage` or
//! `ingest`: everything the app shows comes from the query APIs, the same ones Grafana uses.
//!
//! Routes: `/` and `/ui/<view>?<state>` answer the app's `index.html` (views route on
//! the client, their state lives in the query string so links can be shared);
//! `/ui/assets/*` answers the hashed bundles with a year-long immutable cache.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Returns the router serving the app; merge it into the main listener's router.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(ui_path))
}

/// Looks up an embedded file by its path under the build output (`index.html`,
/// `assets/index-<hash>.js`, ...).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    assets::ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

async fn index() -> Response {
    match asset("index.html") {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the web UI was not embedded",
        )
            .into_response(),
    }
}

async fn ui_path(Path(path): Path<String>) -> Response {
    if path.starts_with("assets/") {
        return match asset(&path) {
            Some((content_type, bytes)) => (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ],
                bytes,
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, format!("no UI asset {path:?}\n")).into_response(),
        };
    }
    // Every other path under /ui is a client-side view.
    index().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str) -> (StatusCode, String, Vec<u8>) {
        let response = router()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, content_type, body.to_vec())
    }

    #[tokio::test]
    async fn index_and_views_answer_the_app() {
        for uri in ["/", "/ui/", "/ui/traces", "/ui/logs?q=timeout&from=now-1h"] {
            let (status, content_type, body) = get(uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(
                content_type.starts_with("text/html"),
                "{uri}: {content_type}"
            );
            let html = String::from_utf8(body).expect("utf-8");
            assert!(html.contains("<div id=\"app\">"), "{uri}: {html}");
        }
    }

    #[tokio::test]
    async fn every_asset_the_index_names_is_served() {
        let (_, _, body) = get("/").await;
        let html = String::from_utf8(body).expect("utf-8");
        let referenced: Vec<&str> = html
            .split('"')
            .filter(|part| part.starts_with("/ui/assets/"))
            .collect();
        assert!(referenced.iter().any(|p| p.ends_with(".js")), "{html}");
        for path in referenced {
            let (status, content_type, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(!body.is_empty(), "{path}");
            assert!(
                content_type.starts_with("text/javascript") || content_type.starts_with("text/css"),
                "{path}: {content_type}"
            );
        }
        let (status, _, _) = get("/ui/assets/missing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
