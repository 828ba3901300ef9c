//! Flush: memtables → sorted Parquet segments (+ log indexes) → manifest → WAL trim.
//!
//! ```text
//!  gate (exclusive): rotate WAL, freeze the active generation
//!  encode every frozen memtable (blocking pool) ─► put segments durably
//!  put manifest ─► swap the manifest and drop the frozen generations in one step
//!  remove the WAL files older than the rotation
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryBuilder, Float64Array, Int64Array, MapBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampNanosecondArray, UInt64Array,
};
use arrow::compute::{max, min};
use object_store::path::Path as ObjectPath;
use proto::TenantId;
use tracing::info;

use crate::engine::{Storage, TenantCatalog, merge_reports};
use crate::manifest::{SegmentMeta, Table, segment_path};
use crate::memtable::{Generation, TenantMemtable};
use crate::metrics::{Exemplar, MetricMetadata, MetricType};
use crate::model::{
    EXEMPLARS_SCHEMA, LOGS_SCHEMA, METADATA_SCHEMA, SPANS_SCHEMA, log_col, span_col,
};
use crate::sample_codec;
use crate::series_segment::encode_index_series;
use crate::{Error, FlushReport, Result, segment, textindex};

/// An encoded segment waiting to be uploaded.
pub(crate) struct EncodedSegment {
    pub table: Table,
    pub parquet: Vec<u8>,
    pub index: Option<Vec<u8>>,
    pub rows: u64,
    pub min_time_ns: i64,
    pub max_time_ns: i64,
}

impl Storage {
    /// Flushes every memtable to segments and returns once they are in the manifest.
    pub async fn flush(&self) -> Result<FlushReport> {
        let _manifest_guard = self.manifest_lock.lock().await;
        let wal_seq = {
            let _gate = self.gate.write().await;
            let has_rows = self
                .state
                .read()
                .map(|s| s.active.rows() > 0)
                .unwrap_or(true);
            if has_rows {
                let seq = self.wal.rotate().await?;
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                let frozen = std::mem::replace(&mut state.active, Arc::new(Generation::default()));
                frozen.set_wal_end(seq);
                state.frozen.push(frozen);
                Some(seq)
            } else {
                None
            }
        };
        let (frozen, base) = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            (state.frozen.clone(), state.manifest.clone())
        };
        let manifest = (*base).clone();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for generation in &frozen {
            for (tenant, memtable) in generation.tenants() {
                let catalog = self.existing_catalog(&tenant);
                for encoded in self.encode_memtable(&memtable, catalog).await? {
                    added.push(self.upload(&tenant, encoded, 0).await?);
                }
            }
        }
        let mut persisted = Vec::new();
        let catalogs: Vec<_> = self
            .catalogs
            .read()
            .map(|c| c.iter().map(|(t, c)| (t.clone(), c.clone())).collect())
            .unwrap_or_default();
        for (tenant, catalog) in catalogs {
            // Only the ids are copied here: the labels are encoded from the index a
            // chunk at a time, so a flush of many new series holds no second copy of them.
            let ids = catalog
                .series
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .unpersisted_ids();
            let count = ids.len();
            if !ids.is_empty() {
                let source = catalog.clone();
                let encoded = self
                    .blocking(move |storage_config| {
                        encode_index_series(&source, &ids, storage_config)
                    })
                    .await?;
                added.push(self.upload(&tenant, encoded, 0).await?);
            }
            persisted.push((catalog.clone(), count));
            if catalog.metadata_dirty.swap(false, Ordering::AcqRel) {
                let entries: Vec<MetricMetadata> = catalog
                    .metadata
                    .read()
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                let encoded = self
                    .blocking(move |config| encode_metadata(&entries, config))
                    .await?;
                removed.extend(manifest.segments_of(&tenant, Table::Metadata).map(|s| s.id));
                added.push(self.upload(&tenant, encoded, 0).await?);
            }
        }
        let mut report = FlushReport::default();
        for segment in &added {
            merge_reports(&mut report, segment);
        }
        if added.is_empty() && frozen.is_empty() {
            return Ok(report);
        }
        let replaced: Vec<ObjectPath> = manifest
            .segments
            .iter()
            .filter(|s| removed.contains(&s.id))
            .flat_map(SegmentMeta::object_paths)
            .collect();
        let mut next = manifest.apply(&removed, added.clone());
        if let Some(seq) = wal_seq {
            next.wal_checkpoint = next.wal_checkpoint.max(seq);
        }
        self.catalog
            .commit(crate::catalog::CatalogChange {
                added,
                removed,
                removed_must_exist: false,
                wal_checkpoint: wal_seq,
            })
            .await?;
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.manifest = Arc::new(next);
            state
                .frozen
                .retain(|g| !frozen.iter().any(|f| Arc::ptr_eq(f, g)));
            // Queriers whose segment list predates this flush still read these
            // generations through the fan-out for a while.
            self.keep_flushed(&mut state, &frozen);
        }
        for (catalog, count) in persisted {
            catalog
                .series
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .mark_persisted(count);
        }
        self.schedule_delete(replaced);
        if let Some(seq) = wal_seq {
            self.wal.remove_before(seq).await?;
        }
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        info!(
            segments = report.segments,
            rows = report.rows,
            bytes = report.bytes,
            "flushed memtables"
        );
        Ok(report)
    }

    /// Runs CPU-heavy encoding on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&crate::Config) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || work(&config))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    async fn encode_memtable(
        &self,
        memtable: &Arc<TenantMemtable>,
        catalog: Option<Arc<TenantCatalog>>,
    ) -> Result<Vec<EncodedSegment>> {
        let memtable = memtable.clone();
        self.blocking(move |config| {
            let level = config.zstd_level_flush;
            let mut out = Vec::new();
            if let Some(samples) = memtable.with_sorted_series(|series| {
                if series.is_empty() {
                    return Ok(None);
                }
                let ranks = metric_ranks(catalog.as_deref(), series.iter().map(|(id, _)| *id));
                encode_samples(series, &ranks, level, config.row_group_rows).map(Some)
            })? {
                out.push(samples);
            }
            let exemplars = memtable.exemplars();
            if !exemplars.is_empty() {
                out.push(encode_exemplars(exemplars, level, config.row_group_rows)?);
            }
            let logs = memtable.logs();
            if !logs.is_empty() {
                out.push(encode_logs(&logs, level, config)?);
            }
            let spans = memtable.spans();
            if !spans.is_empty() {
                out.push(encode_spans(&spans, level, config.row_group_rows)?);
            }
            Ok(out)
        })
        .await
    }

    /// Writes an encoded segment (and its index) durably and returns its manifest entry.
    pub(crate) async fn upload(
        &self,
        tenant: &TenantId,
        encoded: EncodedSegment,
        level: u32,
    ) -> Result<SegmentMeta> {
        let id = self.catalog.allocate_segment_id().await?;
        let path = segment_path(tenant, encoded.table, id, "parquet");
        let parquet_bytes = encoded.parquet.len() as u64;
        let mut bytes = parquet_bytes;
        self.store
            .put(&ObjectPath::from(path.as_str()), encoded.parquet.into())
            .await?;
        let index_path = match encoded.index {
            Some(index) => {
                let index_path = segment_path(tenant, encoded.table, id, "idx");
                bytes += index.len() as u64;
                self.store
                    .put(&ObjectPath::from(index_path.as_str()), index.into())
                    .await?;
                Some(index_path)
            }
            None => None,
        };
        Ok(SegmentMeta {
            id,
            tenant: tenant.as_str().to_string(),
            table: encoded.table,
            path,
            index_path,
            min_time_ns: encoded.min_time_ns,
            max_time_ns: encoded.max_time_ns,
            rows: encoded.rows,
            parquet_bytes,
            bytes,
            level,
        })
    }
}

const NS_PER_MS: i64 = 1_000_000;

/// Series of a flush or compaction per read-lock acquisition of the series index.
const RANKS_PER_LOCK: usize = 8192;

/// The rank of each series' metric name (series `ids`, canonical or alias) among the
/// metric names of those series, for [`encode_samples`]: samples files keep one
/// metric's series together. Series the index lacks rank last. Computed for the series
/// written only, a chunk at a time under the index's read lock, so it costs four bytes
/// per series written and never blocks new series for long.
pub(crate) fn metric_ranks(
    catalog: Option<&TenantCatalog>,
    ids: impl ExactSizeIterator<Item = u64>,
) -> Vec<u32> {
    let Some(catalog) = catalog else {
        return vec![u32::MAX; ids.len()];
    };
    let mut names: Vec<String> = Vec::new();
    let mut numbers: HashMap<String, u32> = HashMap::new();
    let mut first_seen = Vec::with_capacity(ids.len());
    let mut ids = ids.peekable();
    while ids.peek().is_some() {
        let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
        for id in ids.by_ref().take(RANKS_PER_LOCK) {
            let Some(labels) = index.view(proto::SeriesId(id)) else {
                first_seen.push(u32::MAX);
                continue;
            };
            let name = labels.metric_name();
            let number = match numbers.get(name) {
                Some(number) => *number,
                None => {
                    let number = names.len() as u32;
                    numbers.insert(name.to_string(), number);
                    names.push(name.to_string());
                    number
                }
            };
            first_seen.push(number);
        }
    }
    // First-seen numbers to ranks in name order.
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_unstable_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
    let mut rank_of = vec![0u32; names.len()];
    for (rank, number) in order.iter().enumerate() {
        rank_of[*number as usize] = rank as u32;
    }
    for rank in &mut first_seen {
        if let Some(r) = rank_of.get(*rank as usize) {
            *rank = *r;
        }
    }
    first_seen
}

/// Encodes samples given per series (each in strictly increasing time order) in the
/// layout of [`sample_codec::SampleWindows`], with the run index in the footer; `ranks`
/// are [`metric_ranks`] of the series, in their order.
pub(crate) fn encode_samples(
    series: Vec<(u64, &[(i64, f64)])>,
    ranks: &[u32],
    level: i32,
    row_group_rows: usize,
) -> Result<EncodedSegment> {
    let windows = sample_codec::SampleWindows::new(series, ranks);
    let (rows, min_ts, max_ts) = (windows.rows, windows.min_ts, windows.max_ts);
    let properties = segment::writer_properties(Table::Samples, level, row_group_rows, 0)?;
    Ok(EncodedSegment {
        table: Table::Samples,
        parquet: segment::encode_samples(windows, properties)?,
        index: None,
        rows,
        min_time_ns: min_ts.saturating_mul(NS_PER_MS),
        max_time_ns: max_ts.saturating_mul(NS_PER_MS),
    })
}

fn attributes_column<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> Result<ArrayRef> {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for map in maps {
        for (key, value) in map {
            builder.keys().append_value(key);
            builder.values().append_value(value);
        }
        builder
            .append(true)
            .map_err(|e| Error::arrow("building labels", e))?;
    }
    Ok(Arc::new(builder.finish()))
}

pub(crate) fn exemplars_batch(mut exemplars: Vec<(u64, Exemplar)>) -> Result<RecordBatch> {
    exemplars.sort_by_key(|(id, e)| (*id, e.ts_ms));
    let mut trace = FixedSizeBinaryBuilder::with_capacity(exemplars.len(), 16);
    let mut span = FixedSizeBinaryBuilder::with_capacity(exemplars.len(), 8);
    for (_, e) in &exemplars {
        match e.trace_id {
            Some(id) => trace
                .append_value(id.0)
                .map_err(|e| Error::arrow("exemplar trace id", e))?,
            None => trace.append_null(),
        }
        match e.span_id {
            Some(id) => span
                .append_value(id.0)
                .map_err(|e| Error::arrow("exemplar span id", e))?,
            None => span.append_null(),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(
            exemplars.iter().map(|(id, _)| *id),
        )),
        Arc::new(Int64Array::from_iter_values(
            exemplars.iter().map(|(_, e)| e.ts_ms),
        )),
        Arc::new(Float64Array::from_iter_values(
            exemplars.iter().map(|(_, e)| e.value),
        )),
        Arc::new(trace.finish()),
        Arc::new(span.finish()),
        attributes_column(exemplars.iter().map(|(_, e)| &e.labels))?,
    ];
    RecordBatch::try_new(EXEMPLARS_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("building exemplars", e))
}

fn encode_exemplars(
    exemplars: Vec<(u64, Exemplar)>,
    level: i32,
    row_group_rows: usize,
) -> Result<EncodedSegment> {
    let min_ts = exemplars.iter().map(|(_, e)| e.ts_ms).min().unwrap_or(0);
    let max_ts = exemplars.iter().map(|(_, e)| e.ts_ms).max().unwrap_or(0);
    let batch = exemplars_batch(exemplars)?;
    encode_exemplar_batch(batch, level, row_group_rows, min_ts, max_ts)
}

pub(crate) fn encode_exemplar_batch(
    batch: RecordBatch,
    level: i32,
    row_group_rows: usize,
    min_ts: i64,
    max_ts: i64,
) -> Result<EncodedSegment> {
    let properties = segment::writer_properties(Table::Exemplars, level, row_group_rows, 0)?;
    Ok(EncodedSegment {
        table: Table::Exemplars,
        rows: batch.num_rows() as u64,
        parquet: segment::encode(&EXEMPLARS_SCHEMA, &[batch], properties)?,
        index: None,
        min_time_ns: min_ts.saturating_mul(NS_PER_MS),
        max_time_ns: max_ts.saturating_mul(NS_PER_MS),
    })
}

fn time_bounds(batch: &RecordBatch, column: usize) -> (i64, i64) {
    let times = batch
        .column(column)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>();
    match times {
        Some(times) => (min(times).unwrap_or(0), max(times).unwrap_or(0)),
        None => (0, 0),
    }
}

/// Rows gathered into sorted order at a time when a flush encodes logs or spans.
///
/// Small enough that a chunk's buffers (a few MiB) come back from the allocator still
/// mapped for the next chunk: with 64 Ki rows each chunk was fresh memory, and the
/// kernel zeroing its pages was a tenth of a logs flush.
const SORTED_CHUNK_ROWS: usize = 8 * 1024;

/// Sorts logs by (service, time), encodes them, and builds their full-text index, a
/// chunk of sorted rows at a time.
///
/// The index is built on a thread of its own, fed the sorted chunks as Parquet takes
/// them: its term table then stays in one core's cache instead of being evicted by every
/// chunk's gather and compression (in one thread, tantivy's indexing cost half as much
/// again), and a flush takes less time.
pub(crate) fn encode_logs(
    batches: &[RecordBatch],
    level: i32,
    config: &crate::Config,
) -> Result<EncodedSegment> {
    let order = segment::sort_order(batches, &[log_col::SERVICE, log_col::TIMESTAMP])?;
    let properties = segment::writer_properties(Table::Logs, level, config.row_group_rows, 0)?;
    let mut index = textindex::IndexBuilder::new(
        config.log_index_memory.bytes() as usize,
        config.log_index_block_rows,
    )?;
    index.reserve(order.rows.len());
    let mut bounds = TimeBounds::default();
    let (parquet, index) = std::thread::scope(|scope| {
        let (chunks, received) = std::sync::mpsc::sync_channel::<RecordBatch>(INDEX_QUEUE_CHUNKS);
        let indexer = std::thread::Builder::new()
            .name("log-index".into())
            .spawn_scoped(scope, move || {
                for chunk in received {
                    index.add(&chunk)?;
                }
                index.finish()
            })
            .map_err(|e| Error::Task(format!("starting the log index thread: {e}")))?;
        let parquet = segment::encode_in_order(
            &LOGS_SCHEMA,
            batches,
            &order.rows,
            properties,
            SORTED_CHUNK_ROWS,
            |chunk| {
                bounds.add(chunk, log_col::TIMESTAMP);
                // A send fails only when the index thread stopped on an error, which
                // its join reports.
                let _ = chunks.send(chunk.clone());
                Ok(())
            },
        );
        drop(chunks);
        let index = indexer
            .join()
            .map_err(|_| Error::Task("the log index thread panicked".into()))?;
        Ok::<_, Error>((parquet?, index?))
    })?;
    Ok(EncodedSegment {
        table: Table::Logs,
        rows: order.rows.len() as u64,
        parquet,
        index: Some(index),
        min_time_ns: bounds.min(),
        max_time_ns: bounds.max(),
    })
}

/// Sorted chunks waiting for the log index thread at most.
const INDEX_QUEUE_CHUNKS: usize = 2;

/// Sorts spans by (trace id, start) and encodes them, a chunk of sorted rows at a time.
pub(crate) fn encode_spans(
    batches: &[RecordBatch],
    level: i32,
    row_group_rows: usize,
) -> Result<EncodedSegment> {
    let order = segment::sort_order(batches, &[span_col::TRACE_ID, span_col::START])?;
    let properties =
        segment::writer_properties(Table::Spans, level, row_group_rows, order.distinct_leading)?;
    let mut bounds = TimeBounds::default();
    let parquet = segment::encode_in_order(
        &SPANS_SCHEMA,
        batches,
        &order.rows,
        properties,
        SORTED_CHUNK_ROWS,
        |chunk| {
            bounds.add(chunk, span_col::START);
            Ok(())
        },
    )?;
    Ok(EncodedSegment {
        table: Table::Spans,
        rows: order.rows.len() as u64,
        parquet,
        index: None,
        min_time_ns: bounds.min(),
        max_time_ns: bounds.max(),
    })
}

/// The earliest and latest time of the rows seen so far.
#[derive(Default)]
struct TimeBounds(Option<(i64, i64)>);

impl TimeBounds {
    fn add(&mut self, batch: &RecordBatch, column: usize) {
        let (low, high) = time_bounds(batch, column);
        if batch.num_rows() > 0 {
            self.0 = Some(match self.0 {
                Some((min, max)) => (min.min(low), max.max(high)),
                None => (low, high),
            });
        }
    }

    fn min(&self) -> i64 {
        self.0.map_or(0, |(low, _)| low)
    }

    fn max(&self) -> i64 {
        self.0.map_or(0, |(_, high)| high)
    }
}

fn encode_metadata(entries: &[MetricMetadata], config: &crate::Config) -> Result<EncodedSegment> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            entries.iter().map(|e| &e.metric),
        )),
        Arc::new(StringArray::from_iter_values(
            entries.iter().map(|e| e.kind.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            entries.iter().map(|e| &e.help),
        )),
        Arc::new(StringArray::from_iter_values(
            entries.iter().map(|e| &e.unit),
        )),
    ];
    let batch = RecordBatch::try_new(METADATA_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("building metadata", e))?;
    let properties = segment::writer_properties(
        Table::Metadata,
        config.zstd_level_compacted,
        config.row_group_rows,
        0,
    )?;
    Ok(EncodedSegment {
        table: Table::Metadata,
        rows: batch.num_rows() as u64,
        parquet: segment::encode(&METADATA_SCHEMA, &[batch], properties)?,
        index: None,
        min_time_ns: 0,
        max_time_ns: 0,
    })
}

fn corrupt(what: &str, reason: &str) -> Error {
    Error::Corrupt {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, index: usize, what: &str) -> Result<&'a T> {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| corrupt(what, &format!("unexpected type of column {index}")))
}

/// Reads metadata entries back from a metadata segment.
pub(crate) fn metadata_from_batches(batches: &[RecordBatch]) -> Result<Vec<MetricMetadata>> {
    let mut out = Vec::new();
    for batch in batches {
        let metric: &StringArray = column(batch, 0, "metadata segment")?;
        let kind: &StringArray = column(batch, 1, "metadata segment")?;
        let help: &StringArray = column(batch, 2, "metadata segment")?;
        let unit: &StringArray = column(batch, 3, "metadata segment")?;
        for row in 0..batch.num_rows() {
            out.push(MetricMetadata {
                metric: metric.value(row).to_string(),
                kind: MetricType::parse(kind.value(row)),
                help: help.value(row).to_string(),
                unit: unit.value(row).to_string(),
            });
        }
    }
    Ok(out)
}
