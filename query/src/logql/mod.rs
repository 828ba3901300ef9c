//! The log read side: stored rows as log lines and Loki streams, native full-text
//! search, and the LogQL subset Grafana uses (parser, line pipeline, metric queries).
//!
//! ```text
//!   storage::search_logs ──► fetch (newest first, limit) ──► rows::LogLine
//!        ▲ text/service/trace pushdown                          │
//!   search (native language) ──────────────────────────────────┤
//!   parser (LogQL) ──► pipeline (filters, parsers, formats) ──► eval (streams, matrix)
//! ```

pub mod ast;
pub mod eval;
pub mod fetch;
pub mod parser;
pub mod pipeline;
pub mod rows;
pub mod search;

pub use fetch::Direction;
pub use rows::{Labels, LogLine};
pub use search::{Histogram, LogPage, LogSearch, count_by_bucket, search};
