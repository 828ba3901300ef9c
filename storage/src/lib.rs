//! The storage engine: durable, columnar, per tenant and per signal.
//!
//! ```text
//!  append ─► WAL (group commit, fsync) ─► memtable (Arrow / column vectors) ──┐ queryable at once
//!                                              │ flush (size, age, admin)     │
//!                                              ▼                              │
//!                     Parquet segments (zstd) + tantivy log index ──► manifest│
//!                           via object_store          │ compaction, retention │
//!  query crate ◄── select_series / scan_* / search_logs over memtables + segments
//! ```
//!
//! This crate owns the signal models ([`model`]), the WAL, memtables, segment
//! encoding, the full-text log index, the manifest, compaction and retention, and
//! the read API the query crate builds on. It knows nothing of protocols, HTTP or
//! DataFusion: callers hand it [`metrics::MetricsWrite`]s and Arrow batches in the
//! [`model`] schemas, and get batches back.
//!
//! Durability: an append resolves only after its WAL record is fsynced, and the data
//! is in a memtable by then. A flush writes segments durably, then the manifest, and
//! only then trims the WAL. After a crash, replay rebuilds the memtables; a torn tail
//! is truncated with a warning.

mod block_words;
mod cache;
mod catalog;
mod catalog_config;
mod catalog_postgres;
mod codec;
mod compaction;
mod config;
mod engine;
mod error;
mod fanout;
mod flush;
mod idmap;
mod manifest;
mod memtable;
pub mod metrics;
pub mod model;
mod read;
mod s3;
mod sample_codec;
mod segment;
pub mod series;
mod series_index;
mod series_segment;
mod store;
mod symbols;
mod textindex;
mod trace_rows;
mod wal;

pub use cache::{CacheConfig, ReadCacheStats};
pub use catalog::{Catalog, CatalogChange, Duties, EmbeddedCatalog, NodeInfo};
pub use catalog_config::CatalogConfig;
pub use catalog_postgres::PostgresCatalog;
pub use config::Config;
pub use engine::Storage;
pub use error::{Error, Result};
pub use fanout::{
    COMPLETE_HEADER, Coverage, FanoutConfig, FanoutStats, ScanKind, ScanRequest, SeriesRequest,
    SeriesResponse,
};
pub use manifest::{Manifest, SegmentMeta, Table};
pub use read::{
    LogHits, LogRowRefs, LogScan, LogTimeline, SeriesSamples, SpanScan, SpanSource, SpanTimeline,
    TimelineSource,
};
pub use s3::{S3Addressing, S3Config};
pub use textindex::TextQuery;

/// What one flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Segments written (one per tenant and table that had data).
    pub segments: usize,
    /// Rows written across those segments.
    pub rows: u64,
    /// Bytes written to the object store.
    pub bytes: u64,
}

/// Counters and gauges for the self-metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct StorageStats {
    /// Bytes appended to the WAL since start.
    pub wal_bytes_written: u64,
    /// fsync calls made by the WAL writer since start.
    pub wal_fsyncs: u64,
    /// Records appended to the WAL since start.
    pub wal_records: u64,
    /// Bytes currently held in memtables (active and being flushed).
    pub memtable_bytes: u64,
    /// Metric series known, over all tenants.
    pub series: u64,
    /// Segments in the manifest.
    pub segments: u64,
    /// Bytes of the segments in the manifest.
    pub segment_bytes: u64,
    /// Flushes completed since start.
    pub flushes: u64,
    /// Compactions completed since start.
    pub compactions: u64,
    /// Segments deleted by retention since start.
    pub retention_deleted_segments: u64,
    /// Writes refused because of the memory limit since start.
    pub backpressure_rejections: u64,
    /// Rows appended per signal since start: metrics samples, log records, spans.
    pub appended_rows: [u64; 3],
    /// Querier fan-out: ingesters asked, requests made, reads answered partially.
    pub fanout: FanoutStats,
}

/// Current time in Unix nanoseconds.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
