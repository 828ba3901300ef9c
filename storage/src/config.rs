//! The `[storage]` section of the configuration file.

use proto::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

use crate::cache::CacheConfig;
use crate::s3::{S3Config, S3Location};
use crate::{Error, Result};

/// Storage engine settings. Every field has a default, so an empty section is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where segments (Parquet files, log indexes, the manifest) live, as an object store URL.
    /// Unset means `file://<data_dir>/segments`; `s3://bucket/prefix` puts them in an
    /// S3-compatible bucket reached as `[storage.s3]` says.
    pub url: Option<String>,
    /// How long the WAL writer waits to gather more records into one fsync once the first one arrives.
    /// `0s` (the default) means "write whatever is queued, then fsync": the group grows with load by itself.
    pub wal_group_commit: HumanDuration,
    /// Upper bound on the bytes written by one group commit.
    pub wal_max_batch: ByteSize,
    /// A WAL file is closed and a new one started past this size.
    pub wal_segment_size: ByteSize,
    /// Flush every memtable to segments once their total in-memory size passes this.
    pub memtable_flush_size: ByteSize,
    /// Refuse writes (503 + Retry-After) while memtables plus in-flight flushes exceed this.
    pub memory_limit: ByteSize,
    /// Flush memtables at least this often, so the WAL stays short and restarts stay fast.
    pub flush_interval: HumanDuration,
    /// Rows per Parquet row group (samples segments, four narrow columns, take 4×).
    pub row_group_rows: usize,
    /// zstd level of freshly flushed segments.
    pub zstd_level_flush: i32,
    /// zstd level of compacted segments.
    pub zstd_level_compacted: i32,
    /// How often compaction and retention look for work.
    pub compaction_interval: HumanDuration,
    /// Merge the segments of one tenant and signal once this many small ones exist.
    pub compaction_min_segments: usize,
    /// Segments at least this large are left out of compaction.
    pub compaction_target_size: ByteSize,
    /// Keep metric samples this long.
    pub metrics_retention: HumanDuration,
    /// Keep log records this long.
    pub logs_retention: HumanDuration,
    /// Keep spans this long.
    pub spans_retention: HumanDuration,
    /// Memory budget of the tantivy writer that indexes one log segment.
    pub log_index_memory: ByteSize,
    /// Log rows per full-text index document, 1 to 64. Above 1, a document holds each
    /// distinct word of a block of one service's rows once: indexing takes about half
    /// the CPU and a fifth of the space, and every hit is confirmed on the log bodies.
    /// 1 indexes each row with word positions, so whole-word terms and phrases are
    /// answered and counted from the index alone.
    pub log_index_block_rows: usize,
    /// Most metric series one tenant may have; a write that would create more is
    /// refused whole (400). `0` means no limit.
    pub max_series_per_tenant: u64,
    /// Where the list of live segments is kept (`[storage.catalog]`).
    pub catalog: crate::CatalogConfig,
    /// How to reach the bucket of an `s3://` URL.
    pub s3: S3Config,
    /// The local read cache of segments in a remote store.
    pub cache: CacheConfig,
    /// How a querier asks ingesters for rows they have not flushed yet.
    pub fanout: crate::FanoutConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            wal_group_commit: HumanDuration::millis(0),
            wal_max_batch: ByteSize::mib(8),
            wal_segment_size: ByteSize::mib(64),
            memtable_flush_size: ByteSize::mib(512),
            memory_limit: ByteSize::mib(2048),
            flush_interval: HumanDuration::secs(10 * 60),
            row_group_rows: 256 * 1024,
            zstd_level_flush: 1,
            zstd_level_compacted: 3,
            compaction_interval: HumanDuration::secs(60),
            compaction_min_segments: 4,
            compaction_target_size: ByteSize::mib(512),
            metrics_retention: HumanDuration::secs(15 * 86_400),
            logs_retention: HumanDuration::secs(7 * 86_400),
            spans_retention: HumanDuration::secs(7 * 86_400),
            log_index_memory: ByteSize::mib(64),
            log_index_block_rows: 64,
            max_series_per_tenant: 2_000_000,
            catalog: crate::CatalogConfig::default(),
            s3: S3Config::default(),
            cache: CacheConfig::default(),
            fanout: crate::FanoutConfig::default(),
        }
    }
}

impl Config {
    /// Checks the values that serde cannot: ranges and relations between fields.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidConfig(message));
        if let Some(url) = &self.url {
            match S3Location::parse(url) {
                Some(location) => {
                    location?;
                    self.s3.validate()?;
                }
                None if url.starts_with("file://") => {}
                None => {
                    return invalid(format!(
                        "storage.url {url:?}: only file:// and s3:// object stores are supported"
                    ));
                }
            }
        }
        let cache_bytes = self.cache.max_bytes.bytes();
        if cache_bytes != 0 && cache_bytes < ByteSize::mib(16).bytes() {
            return invalid(
                "storage.cache.max_bytes must be 0 (off) or at least 16MiB".to_string(),
            );
        }
        self.catalog.validate()?;
        self.fanout.validate()?;
        if self.memory_limit < self.memtable_flush_size {
            return invalid(format!(
                "storage.memory_limit ({}) must be at least storage.memtable_flush_size ({})",
                self.memory_limit, self.memtable_flush_size
            ));
        }
        if self.row_group_rows < 1024 {
            return invalid("storage.row_group_rows must be at least 1024".to_string());
        }
        for (name, level) in [
            ("zstd_level_flush", self.zstd_level_flush),
            ("zstd_level_compacted", self.zstd_level_compacted),
        ] {
            if !(1..=22).contains(&level) {
                return invalid(format!("storage.{name} must be within 1..=22, got {level}"));
            }
        }
        if self.compaction_min_segments < 2 {
            return invalid("storage.compaction_min_segments must be at least 2".to_string());
        }
        if !(1..=crate::textindex::MAX_BLOCK_ROWS).contains(&self.log_index_block_rows) {
            return invalid(format!(
                "storage.log_index_block_rows must be 1 to {}, not {}",
                crate::textindex::MAX_BLOCK_ROWS,
                self.log_index_block_rows
            ));
        }
        if self.log_index_memory < ByteSize::mib(16) {
            return invalid("storage.log_index_memory must be at least 16MiB".to_string());
        }
        if self.wal_max_batch < ByteSize::mib(1) || self.wal_segment_size < self.wal_max_batch {
            return invalid(
                "storage.wal_max_batch must be at least 1MiB and at most storage.wal_segment_size"
                    .to_string(),
            );
        }
        for (name, value) in [
            ("flush_interval", self.flush_interval),
            ("compaction_interval", self.compaction_interval),
            ("metrics_retention", self.metrics_retention),
            ("logs_retention", self.logs_retention),
            ("spans_retention", self.spans_retention),
        ] {
            if value.get().is_zero() {
                return invalid(format!("storage.{name} must be greater than zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn limits_are_checked() {
        let config = Config {
            memory_limit: ByteSize::mib(1),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("memory_limit")
        );
    }

    #[test]
    fn log_index_block_rows_are_checked() {
        for rows in [0, 65] {
            let config = Config {
                log_index_block_rows: rows,
                ..Config::default()
            };
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("log_index_block_rows"), "{message}");
        }
        for rows in [1, 64] {
            let config = Config {
                log_index_block_rows: rows,
                ..Config::default()
            };
            config.validate().unwrap();
        }
    }
}
