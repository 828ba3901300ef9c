//! The read API the query crate uses: series selection through the label index, and
//! scans over hot (memtable) plus cold (segment) data with pushdown of time range,
//! series ids, service, trace id and log text.
//!
//! Every scan works on one [`crate::engine::Snapshot`], in which each acknowledged row
//! lives in exactly one place (a memtable generation or a segment), so results have no
//! duplicate and no gap across flushes and compactions.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, FixedSizeBinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::compute::filter_record_batch;
use object_store::path::Path as ObjectPath;
use proto::{SegmentId, SeriesId, TenantId, TraceId};

use crate::engine::Storage;
use crate::flush::exemplars_batch;
use crate::manifest::{SegmentMeta, Table};
use crate::metrics::MetricMetadata;
use crate::model::{EXEMPLARS_SCHEMA, LOGS_SCHEMA, SPANS_SCHEMA, log_col, samples_batch, span_col};
use crate::segment::{self, bytes_range, i64_range};
use crate::series::{Labels, Matcher};
use crate::textindex::{IndexFilter, LogIndex, TextQuery};
use crate::{Error, Result};

const NS_PER_MS: i64 = 1_000_000;

/// A log scan: time range plus optional filters, all pushed down.
#[derive(Debug, Clone, Default)]
pub struct LogScan {
    /// Inclusive start, Unix nanoseconds.
    pub start_ns: i64,
    /// Inclusive end, Unix nanoseconds.
    pub end_ns: i64,
    /// Keep only these services (empty: all).
    pub services: Vec<String>,
    /// Keep only records of this trace.
    pub trace_id: Option<TraceId>,
    /// Keep only records whose body satisfies this.
    pub text: Option<TextQuery>,
}

/// A span scan: time range (on span start) plus optional filters.
#[derive(Debug, Clone, Default)]
pub struct SpanScan {
    /// Inclusive start, Unix nanoseconds.
    pub start_ns: i64,
    /// Inclusive end, Unix nanoseconds.
    pub end_ns: i64,
    /// Keep only spans of this trace.
    pub trace_id: Option<TraceId>,
    /// Keep only spans of this service.
    pub service: Option<String>,
}

/// The result of a full-text log search: matching rows still in memory, and row
/// references into segments.
#[derive(Debug, Default)]
pub struct LogHits {
    /// Matching rows not yet flushed.
    pub hot: Vec<RecordBatch>,
    /// Matching rows of each segment (sorted row numbers).
    pub cold: Vec<LogRowRefs>,
}

/// Matching rows of one log segment.
#[derive(Debug, Clone)]
pub struct LogRowRefs {
    /// The segment.
    pub segment: SegmentId,
    /// Row numbers in the segment's Parquet file, ascending.
    pub rows: Vec<u32>,
    segment_meta: SegmentMeta,
}

impl LogRowRefs {
    /// The time range of the segment these rows are in, Unix nanoseconds (inclusive).
    pub fn time_range(&self) -> (i64, i64) {
        (self.segment_meta.min_time_ns, self.segment_meta.max_time_ns)
    }
}

fn string_at(array: &dyn Array, row: usize) -> Option<&str> {
    let strings = array.as_any().downcast_ref::<StringArray>()?;
    strings.is_valid(row).then(|| strings.value(row))
}

fn fixed_at(array: &dyn Array, row: usize) -> Option<&[u8]> {
    let ids = array.as_any().downcast_ref::<FixedSizeBinaryArray>()?;
    ids.is_valid(row).then(|| ids.value(row))
}

fn time_at(array: &dyn Array, row: usize) -> i64 {
    array
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .map(|t| t.value(row))
        .unwrap_or(i64::MIN)
}

impl LogScan {
    fn keep(&self, batch: &RecordBatch, row: usize) -> bool {
        let ts = time_at(batch.column(log_col::TIMESTAMP).as_ref(), row);
        if ts < self.start_ns || ts > self.end_ns {
            return false;
        }
        if !self.services.is_empty() {
            let service = string_at(batch.column(log_col::SERVICE).as_ref(), row).unwrap_or("");
            if !self.services.iter().any(|s| s == service) {
                return false;
            }
        }
        if let Some(trace_id) = &self.trace_id
            && fixed_at(batch.column(log_col::TRACE_ID).as_ref(), row)
                != Some(trace_id.as_bytes().as_slice())
        {
            return false;
        }
        if let Some(text) = &self.text {
            let body = string_at(batch.column(log_col::BODY).as_ref(), row).unwrap_or("");
            return text.matches(body);
        }
        true
    }

    fn filter(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        filter_rows(batch, |row| self.keep(batch, row))
    }
}

impl SpanScan {
    fn keep(&self, batch: &RecordBatch, row: usize) -> bool {
        let start = time_at(batch.column(span_col::START).as_ref(), row);
        if start < self.start_ns || start > self.end_ns {
            return false;
        }
        if let Some(trace_id) = &self.trace_id
            && fixed_at(batch.column(span_col::TRACE_ID).as_ref(), row)
                != Some(trace_id.as_bytes().as_slice())
        {
            return false;
        }
        if let Some(service) = &self.service
            && string_at(batch.column(span_col::SERVICE).as_ref(), row) != Some(service.as_str())
        {
            return false;
        }
        true
    }
}

fn filter_rows(batch: &RecordBatch, keep: impl Fn(usize) -> bool) -> Result<Option<RecordBatch>> {
    let mask: BooleanArray = (0..batch.num_rows()).map(|row| Some(keep(row))).collect();
    if mask.true_count() == 0 {
        return Ok(None);
    }
    if mask.true_count() == batch.num_rows() {
        return Ok(Some(batch.clone()));
    }
    filter_record_batch(batch, &mask)
        .map(Some)
        .map_err(|e| Error::arrow("filtering rows", e))
}

impl Storage {
    /// Returns the series matching every matcher that may have samples in `[start_ms, end_ms]`,
    /// sorted by id.
    pub fn select_series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<(SeriesId, Labels)> {
        let Some(catalog) = self.existing_catalog(tenant) else {
            return Vec::new();
        };
        let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
        index
            .select(matchers)
            .into_iter()
            .filter(|id| index.overlaps(*id, start_ms, end_ms))
            .filter_map(|id| index.labels(id).map(|labels| (id, labels.clone())))
            .collect()
    }

    /// Returns the label names of the series matching `matchers` (all series when empty), sorted.
    pub fn label_names(&self, tenant: &TenantId, matchers: &[Matcher]) -> Vec<String> {
        let Some(catalog) = self.existing_catalog(tenant) else {
            return Vec::new();
        };
        let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
        if matchers.is_empty() {
            return index.label_names(None);
        }
        let ids = index.select(matchers);
        index.label_names(Some(&ids))
    }

    /// Returns the values of label `name` over the series matching `matchers` (all when empty), sorted.
    pub fn label_values(&self, tenant: &TenantId, name: &str, matchers: &[Matcher]) -> Vec<String> {
        let Some(catalog) = self.existing_catalog(tenant) else {
            return Vec::new();
        };
        let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
        if matchers.is_empty() {
            return index.label_values(name, None);
        }
        let ids = index.select(matchers);
        index.label_values(name, Some(&ids))
    }

    /// Returns the metadata of every metric of the tenant, by name.
    pub fn metric_metadata(&self, tenant: &TenantId) -> Vec<MetricMetadata> {
        self.existing_catalog(tenant)
            .map(|c| {
                c.metadata
                    .read()
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Returns the samples of `series` in `[start_ms, end_ms]` as one batch of
    /// [`crate::model::SAMPLES_SCHEMA`], sorted by (series, time), one row per timestamp.
    pub async fn scan_samples(
        &self,
        tenant: &TenantId,
        series: &[SeriesId],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<RecordBatch> {
        let mut wanted: Vec<u64> = series.iter().map(|id| id.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let snapshot = self.snapshot();
        // Rows tagged with their source and arrival order so the newest copy of a timestamp wins.
        let mut rows: Vec<(u64, i64, u32, usize, f64)> = Vec::new();
        let mut source = 0u32;
        let segments = self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Samples,
            start_ms.saturating_mul(NS_PER_MS),
            end_ms.saturating_mul(NS_PER_MS),
        );
        let (first, last) = (
            wanted.first().copied().unwrap_or(0),
            wanted.last().copied().unwrap_or(0),
        );
        let wanted_set: HashSet<u64> = wanted.iter().copied().collect();
        for segment in segments {
            source += 1;
            let keep = |group: &parquet::file::metadata::RowGroupMetaData| {
                let ids_overlap = i64_range(group, 0)
                    .is_none_or(|(lo, hi)| (lo as u64) <= last && (hi as u64) >= first);
                let time_overlaps =
                    i64_range(group, 1).is_none_or(|(lo, hi)| lo <= end_ms && hi >= start_ms);
                ids_overlap && time_overlaps
            };
            for batch in segment::read(&self.store, &segment, keep, None).await? {
                let (ids, ts, values) = sample_columns(&batch)?;
                for row in 0..batch.num_rows() {
                    let (id, t) = (ids.value(row), ts.value(row));
                    if t >= start_ms && t <= end_ms && wanted_set.contains(&id) {
                        rows.push((id, t, source, rows.len(), values.value(row)));
                    }
                }
            }
        }
        for generation in &snapshot.generations {
            source += 1;
            if let Some(memtable) = generation.get(tenant) {
                memtable.visit_series(&wanted, |id, buffer| {
                    for (t, v) in buffer.ts.iter().zip(&buffer.values) {
                        if *t >= start_ms && *t <= end_ms {
                            rows.push((id, *t, source, rows.len(), *v));
                        }
                    }
                });
            }
        }
        rows.sort_unstable_by_key(|(id, t, source, order, _)| (*id, *t, *source, *order));
        let mut out_ids = Vec::with_capacity(rows.len());
        let mut out_ts = Vec::with_capacity(rows.len());
        let mut out_values: Vec<f64> = Vec::with_capacity(rows.len());
        for (id, t, _, _, v) in rows {
            if out_ids.last() == Some(&id) && out_ts.last() == Some(&t) {
                *out_values.last_mut().expect("pushed with id") = v;
                continue;
            }
            out_ids.push(id);
            out_ts.push(t);
            out_values.push(v);
        }
        samples_batch(out_ids, out_ts, out_values)
    }

    /// Returns the exemplars of `series` in `[start_ms, end_ms]` ([`crate::model::EXEMPLARS_SCHEMA`]).
    pub async fn scan_exemplars(
        &self,
        tenant: &TenantId,
        series: &[SeriesId],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RecordBatch>> {
        let wanted: HashSet<u64> = series.iter().map(|id| id.0).collect();
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        for segment in self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Exemplars,
            start_ms.saturating_mul(NS_PER_MS),
            end_ms.saturating_mul(NS_PER_MS),
        ) {
            for batch in segment::read(&self.store, &segment, |_| true, None).await? {
                let ids = batch.column(0).as_any().downcast_ref::<UInt64Array>();
                let ts = batch.column(1).as_any().downcast_ref::<Int64Array>();
                let (Some(ids), Some(ts)) = (ids, ts) else {
                    return Err(Error::Corrupt {
                        what: segment.path.clone(),
                        reason: "exemplar columns have unexpected types".into(),
                    });
                };
                let keep = |row: usize| {
                    wanted.contains(&ids.value(row))
                        && ts.value(row) >= start_ms
                        && ts.value(row) <= end_ms
                };
                out.extend(filter_rows(&batch, keep)?);
            }
        }
        for generation in &snapshot.generations {
            if let Some(memtable) = generation.get(tenant) {
                let hot: Vec<_> = memtable
                    .exemplars()
                    .into_iter()
                    .filter(|(id, e)| {
                        wanted.contains(id) && e.ts_ms >= start_ms && e.ts_ms <= end_ms
                    })
                    .collect();
                if !hot.is_empty() {
                    out.push(exemplars_batch(hot)?);
                }
            }
        }
        if out.is_empty() {
            out.push(segment::empty(&EXEMPLARS_SCHEMA));
        }
        Ok(out)
    }

    /// Finds the log records matching `scan`: hot rows as batches, cold rows as
    /// references into segments (candidates from the full-text index, confirmed on the
    /// Parquet rows).
    pub async fn search_logs(&self, tenant: &TenantId, scan: &LogScan) -> Result<LogHits> {
        let snapshot = self.snapshot();
        let mut hits = LogHits::default();
        for generation in &snapshot.generations {
            if let Some(memtable) = generation.get(tenant) {
                for batch in memtable.logs() {
                    hits.hot.extend(scan.filter(&batch)?);
                }
            }
        }
        let trace_hex = scan.trace_id.map(|id| id.to_string());
        for segment in self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Logs,
            scan.start_ns,
            scan.end_ns,
        ) {
            let filter = IndexFilter {
                text: scan.text.as_ref(),
                service: (scan.services.len() == 1).then(|| scan.services[0].as_str()),
                trace_id_hex: trace_hex.as_deref(),
            };
            let candidates = match &segment.index_path {
                Some(_) => self.log_index(&segment).await?.candidates(&filter)?,
                None => None,
            };
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            let rows = self
                .confirm_log_rows(&segment, scan, candidates.as_deref())
                .await?;
            if !rows.is_empty() {
                hits.cold.push(LogRowRefs {
                    segment: segment.segment_id(),
                    rows,
                    segment_meta: segment.clone(),
                });
            }
        }
        Ok(hits)
    }

    /// Reads the referenced rows of a log segment.
    pub async fn fetch_log_rows(&self, refs: &LogRowRefs) -> Result<Vec<RecordBatch>> {
        segment::read(&self.store, &refs.segment_meta, |_| true, Some(&refs.rows)).await
    }

    /// Returns every log record matching `scan` ([`crate::model::LOGS_SCHEMA`] batches).
    ///
    /// Unlike [`Storage::search_logs`] followed by [`Storage::fetch_log_rows`], each
    /// segment's candidate rows are read once and filtered in place.
    pub async fn scan_logs(&self, tenant: &TenantId, scan: &LogScan) -> Result<Vec<RecordBatch>> {
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        let trace_hex = scan.trace_id.map(|id| id.to_string());
        for segment in self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Logs,
            scan.start_ns,
            scan.end_ns,
        ) {
            let filter = IndexFilter {
                text: scan.text.as_ref(),
                service: (scan.services.len() == 1).then(|| scan.services[0].as_str()),
                trace_id_hex: trace_hex.as_deref(),
            };
            let candidates = match &segment.index_path {
                Some(_) => self.log_index(&segment).await?.candidates(&filter)?,
                None => None,
            };
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            let keep_group = |group: &parquet::file::metadata::RowGroupMetaData| {
                i64_range(group, log_col::TIMESTAMP)
                    .is_none_or(|(lo, hi)| lo <= scan.end_ns && hi >= scan.start_ns)
            };
            for batch in
                segment::read(&self.store, &segment, keep_group, candidates.as_deref()).await?
            {
                out.extend(scan.filter(&batch)?);
            }
        }
        for generation in &snapshot.generations {
            if let Some(memtable) = generation.get(tenant) {
                for batch in memtable.logs() {
                    out.extend(scan.filter(&batch)?);
                }
            }
        }
        if out.is_empty() {
            out.push(segment::empty(&LOGS_SCHEMA));
        }
        Ok(out)
    }

    /// Returns every span matching `scan` ([`crate::model::SPANS_SCHEMA`] batches).
    pub async fn scan_spans(&self, tenant: &TenantId, scan: &SpanScan) -> Result<Vec<RecordBatch>> {
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        let wanted = scan.trace_id.map(|id| id.0.to_vec());
        for segment in self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Spans,
            scan.start_ns,
            scan.end_ns,
        ) {
            let keep = |group: &parquet::file::metadata::RowGroupMetaData| {
                let time_overlaps = i64_range(group, span_col::START)
                    .is_none_or(|(lo, hi)| lo <= scan.end_ns && hi >= scan.start_ns);
                let trace_inside = match (&wanted, bytes_range(group, span_col::TRACE_ID)) {
                    (Some(id), Some((lo, hi))) => {
                        lo.as_slice() <= id.as_slice() && id.as_slice() <= hi.as_slice()
                    }
                    _ => true,
                };
                time_overlaps && trace_inside
            };
            for batch in segment::read(&self.store, &segment, keep, None).await? {
                out.extend(filter_rows(&batch, |row| scan.keep(&batch, row))?);
            }
        }
        for generation in &snapshot.generations {
            let Some(memtable) = generation.get(tenant) else {
                continue;
            };
            match &scan.trace_id {
                Some(trace_id) => {
                    let (batches, rows) = memtable.trace_rows(trace_id);
                    for (batch_index, batch) in batches.iter().enumerate() {
                        let in_batch: HashSet<usize> = rows
                            .iter()
                            .filter(|(b, _)| *b as usize == batch_index)
                            .map(|(_, r)| *r as usize)
                            .collect();
                        if !in_batch.is_empty() {
                            out.extend(filter_rows(batch, |row| {
                                in_batch.contains(&row) && scan.keep(batch, row)
                            })?);
                        }
                    }
                }
                None => {
                    for batch in memtable.spans() {
                        out.extend(filter_rows(&batch, |row| scan.keep(&batch, row))?);
                    }
                }
            }
        }
        if out.is_empty() {
            out.push(segment::empty(&SPANS_SCHEMA));
        }
        Ok(out)
    }

    fn segments_for(
        &self,
        manifest: &crate::Manifest,
        tenant: &TenantId,
        table: Table,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<SegmentMeta> {
        let mut segments: Vec<SegmentMeta> = manifest
            .segments_of(tenant, table)
            .filter(|s| s.overlaps(start_ns, end_ns))
            .cloned()
            .collect();
        segments.sort_by_key(|s| s.id);
        segments
    }

    async fn log_index(&self, segment: &SegmentMeta) -> Result<Arc<LogIndex>> {
        if let Some(index) = self
            .index_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&segment.id).cloned())
        {
            return Ok(index);
        }
        let path = segment.index_path.as_deref().unwrap_or_default();
        let blob = self.store.get_immutable(&ObjectPath::from(path)).await?;
        let index = self
            .blocking(move |_| LogIndex::open(&blob).map(Arc::new))
            .await?;
        self.cache_index(segment.id, index.clone());
        Ok(index)
    }

    /// Reads the candidate rows (or all rows in range) and keeps those that match.
    async fn confirm_log_rows(
        &self,
        segment: &SegmentMeta,
        scan: &LogScan,
        candidates: Option<&[u32]>,
    ) -> Result<Vec<u32>> {
        let keep_group = |group: &parquet::file::metadata::RowGroupMetaData| {
            i64_range(group, log_col::TIMESTAMP)
                .is_none_or(|(lo, hi)| lo <= scan.end_ns && hi >= scan.start_ns)
        };
        // Read row numbers alongside rows: with an explicit selection the i-th row read is
        // the i-th candidate; without one we number the rows of the kept groups.
        let all_rows: Vec<u32>;
        let rows: &[u32] = match candidates {
            Some(rows) => rows,
            None => {
                all_rows = (0..segment.rows as u32).collect();
                &all_rows
            }
        };
        let mut confirmed = Vec::new();
        let (batches, read_rows) =
            segment::read_rows(&self.store, segment, keep_group, rows).await?;
        let mut numbers = read_rows.iter();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let Some(row_number) = numbers.next() else {
                    break;
                };
                if scan.keep(batch, row) {
                    confirmed.push(*row_number);
                }
            }
        }
        Ok(confirmed)
    }
}

fn sample_columns(batch: &RecordBatch) -> Result<(&UInt64Array, &Int64Array, &Float64Array)> {
    let ids = batch.column(0).as_any().downcast_ref::<UInt64Array>();
    let ts = batch.column(1).as_any().downcast_ref::<Int64Array>();
    let values = batch.column(2).as_any().downcast_ref::<Float64Array>();
    match (ids, ts, values) {
        (Some(ids), Some(ts), Some(values)) => Ok((ids, ts, values)),
        _ => Err(Error::Corrupt {
            what: "samples segment".into(),
            reason: "unexpected column types".into(),
        }),
    }
}
