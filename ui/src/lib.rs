//! UI: Sightline's own web interface, served at `/` on the main HTTP port.
//!
//! ```text
//!   browser ──► ui router ──► static assets (ui/web, built with npm + vite, embedded)
//!                  │
//!                  └─ the app calls the public read APIs of `query` over HTTP:
//!                     service map, failing-hop suspects, traces, logs, metrics
//! ```
//!
//! This crate will own the TypeScript app in `ui/web`, its embedding into the binary
//! and the router that serves it. It must not hold business logic or touch `storage`
//! or `ingest`: everything it shows comes from the query APIs, the same ones Grafana uses.
//!
//! Nothing is here yet: the UI arrives after the query APIs it depends on.
