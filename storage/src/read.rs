//! The read API the query crate uses: series selection through the label index, and
//! scans over hot (memtable) plus cold (segment) data with pushdown of time range,
//! series ids, service, trace id and log text.
//!
//! Every scan works on one [`crate::engine::Snapshot`], in which each acknowledged row
//! lives in exactly one place (a memtable generation or a segment), so results have no
//! duplicate and no gap across flushes and compactions.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The first pass of a late-materialised span read: for each source (a memtable batch
/// or a segment), the spans matching a [`SpanScan`], with only the columns a caller
/// asked for. A trace search decides on these (trace id, start, duration, …) which
/// traces it returns, then reads only their spans in full with
/// [`Storage::read_span_rows`].
#[derive(Debug, Default)]
pub struct SpanTimeline {
    /// One entry per source with matching spans.
    pub sources: Vec<SpanSource>,
}

/// The matching spans of one source, projected.
#[derive(Debug, Clone)]
pub struct SpanSource {
    /// Row numbers within the source, ascending.
    pub rows: Vec<u32>,
    /// The asked-for columns of these rows (plus the ones the scan filters on), under
    /// their [`SPANS_SCHEMA`] names, in schema order: row `i` of the concatenated
    /// batches is `rows[i]`.
    pub columns: Vec<RecordBatch>,
    place: SpanPlace,
}

#[derive(Debug, Clone)]
enum SpanPlace {
    Hot(RecordBatch),
    Cold(SegmentMeta),
}

impl SpanTimeline {
    /// Number of spans over every source.
    pub fn len(&self) -> usize {
        self.sources.iter().map(|s| s.rows.len()).sum()
    }

    /// True when no source has a span.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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

/// The first pass of a late-materialised log read: the time of every row that matches
/// (or may match) a [`LogScan`], per source, without reading the other columns. A caller
/// picks the rows it wants by time (newest `limit`, a histogram) and reads only those
/// with [`Storage::read_timeline_rows`].
#[derive(Debug, Default)]
pub struct LogTimeline {
    /// One entry per memtable batch or segment with candidate rows.
    pub sources: Vec<TimelineSource>,
}

/// Candidate rows of one source (a memtable batch or a segment) and their times.
#[derive(Debug, Clone)]
pub struct TimelineSource {
    /// Row numbers within the source, ascending.
    pub rows: Vec<u32>,
    /// Event time of each row (Unix ns), in the order of `rows`; all within the scan's range.
    pub ts: Vec<i64>,
    /// True when every row is known to match the scan; otherwise the rows are candidates
    /// that [`Storage::read_timeline_rows`] confirms.
    pub confirmed: bool,
    place: TimelinePlace,
}

#[derive(Debug, Clone)]
enum TimelinePlace {
    Hot(RecordBatch),
    Cold(SegmentMeta),
}

impl LogTimeline {
    /// Number of candidate rows over every source.
    pub fn len(&self) -> usize {
        self.sources.iter().map(|s| s.rows.len()).sum()
    }

    /// True when no source has a candidate row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The columns of [`LOGS_SCHEMA`] up to and including the trace id: all that
/// [`LogScan::keep`] looks at, at their usual positions.
const LOG_FILTER_COLUMNS: usize = log_col::TRACE_ID + 1;

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
    pub(crate) fn keep(&self, batch: &RecordBatch, row: usize) -> bool {
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

    pub(crate) fn filter(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        filter_rows(batch, |row| self.keep(batch, row))
    }
}

impl SpanScan {
    pub(crate) fn keep(&self, batch: &RecordBatch, row: usize) -> bool {
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

/// Which rows of a projected span batch (see [`Storage::span_timeline`]) satisfy `scan`.
fn projected_span_mask(scan: &SpanScan, batch: &RecordBatch) -> Result<BooleanArray> {
    let corrupt = |name: &str| Error::Corrupt {
        what: "spans segment".into(),
        reason: format!("projected column {name:?} is missing or of an unexpected type"),
    };
    let start = batch
        .column_by_name("start")
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| corrupt("start"))?;
    let trace = match &scan.trace_id {
        Some(_) => Some(
            batch
                .column_by_name("trace_id")
                .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
                .ok_or_else(|| corrupt("trace_id"))?,
        ),
        None => None,
    };
    let service = match &scan.service {
        Some(_) => Some(
            batch
                .column_by_name("service")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| corrupt("service"))?,
        ),
        None => None,
    };
    Ok((0..batch.num_rows())
        .map(|row| {
            let ts = start.value(row);
            let keep = ts >= scan.start_ns
                && ts <= scan.end_ns
                && scan.trace_id.as_ref().is_none_or(|id| {
                    trace.is_some_and(|t| t.is_valid(row) && t.value(row) == id.as_bytes())
                })
                && scan
                    .service
                    .as_deref()
                    .is_none_or(|s| service.is_some_and(|c| c.is_valid(row) && c.value(row) == s));
            Some(keep)
        })
        .collect())
}

/// Which row groups of a spans segment a scan reads: those overlapping its time range
/// and, for a trace lookup, whose trace-id range holds the id.
fn span_row_groups<'a>(
    scan: &'a SpanScan,
    wanted: Option<&'a [u8]>,
) -> impl Fn(&parquet::file::metadata::RowGroupMetaData) -> bool + Copy + 'a {
    move |group| {
        let time_overlaps = i64_range(group, span_col::START)
            .is_none_or(|(lo, hi)| lo <= scan.end_ns && hi >= scan.start_ns);
        let trace_inside = match (wanted, bytes_range(group, span_col::TRACE_ID)) {
            (Some(id), Some((lo, hi))) => lo.as_slice() <= id && id <= hi.as_slice(),
            _ => true,
        };
        time_overlaps && trace_inside
    }
}

pub(crate) fn filter_rows(
    batch: &RecordBatch,
    keep: impl Fn(usize) -> bool,
) -> Result<Option<RecordBatch>> {
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
            .filter_map(|id| index.labels(id).map(|labels| (id, labels)))
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
        let found = self
            .scan_series_samples(tenant, series, start_ms, end_ms, u64::MAX)
            .await?
            .unwrap_or_default();
        let rows: usize = found.iter().map(|s| s.ts.len()).sum();
        let mut ids = Vec::with_capacity(rows);
        let mut ts = Vec::with_capacity(rows);
        let mut values = Vec::with_capacity(rows);
        for s in found {
            ids.extend(std::iter::repeat_n(s.id.0, s.ts.len()));
            ts.extend(s.ts);
            values.extend(s.values);
        }
        samples_batch(ids, ts, values)
    }

    /// Returns the samples of each of `series` in `[start_ms, end_ms]`, one entry per
    /// series that has any, sorted by id; each series' samples are in time order with one
    /// sample per timestamp (the newest write wins).
    ///
    /// Cold segments are read first, then the memtables. In a segment with a run index
    /// only the runs of the wanted series in the row groups (time windows) of the range
    /// are read (`segment::plan_sample_read`); an older segment's row groups are pruned
    /// on their id and time statistics and each series' run cut to the time range. Rows
    /// are appended per series, so no global sort is needed; only a series whose sources
    /// overlap in time is sorted. Returns `None` as soon as more than `limit` samples
    /// have been collected, so a query over its budget stops early.
    pub async fn scan_series_samples(
        &self,
        tenant: &TenantId,
        series: &[SeriesId],
        start_ms: i64,
        end_ms: i64,
        limit: u64,
    ) -> Result<Option<Vec<SeriesSamples>>> {
        let mut wanted: Vec<u64> = series.iter().map(|id| id.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // A label set written through several ingesters has several ids: read them all
        // into the slot of the id the caller knows.
        let aliases = self.series_aliases(tenant, &wanted);
        let mut collector = SampleCollector::new(&wanted, &aliases, limit);
        let wanted: Vec<u64> = collector.ids();
        let (first, last) = (wanted[0], wanted[wanted.len() - 1]);
        let snapshot = self.snapshot();
        let segments = self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Samples,
            start_ms.saturating_mul(NS_PER_MS),
            end_ms.saturating_mul(NS_PER_MS),
        );
        for segment in segments {
            // Segments with a run index: only the wanted series' runs in the row groups
            // of the time range are read, and only their samples in range decoded.
            let plan = segment::plan_sample_read(
                &self.store,
                &segment,
                start_ms,
                end_ms,
                Some(&wanted),
                |id| collector.slot(id).is_some(),
            )
            .await?;
            if let Some(plan) = plan {
                let parts = read_parallelism();
                let complete = if parts > 1 && plan.rows() >= PARALLEL_READ_ROWS {
                    self.read_plan_in_parts(
                        &segment,
                        plan.split(parts),
                        start_ms,
                        end_ms,
                        &mut collector,
                    )
                    .await?
                } else {
                    segment::read_planned_samples(
                        &self.store,
                        &segment,
                        plan,
                        start_ms,
                        end_ms,
                        |id, ts, values| match collector.slot(id) {
                            Some(slot) => collector.extend(slot, ts, values),
                            None => true,
                        },
                    )
                    .await?
                };
                if !complete {
                    return Ok(None);
                }
                continue;
            }
            // Older segments: every row of the row groups that may hold a wanted series.
            let keep = |group: &parquet::file::metadata::RowGroupMetaData| {
                let ids_overlap = i64_range(group, 0)
                    .is_none_or(|(lo, hi)| (lo as u64) <= last && (hi as u64) >= first);
                let time_overlaps =
                    i64_range(group, 1).is_none_or(|(lo, hi)| lo <= end_ms && hi >= start_ms);
                ids_overlap && time_overlaps
            };
            for batch in segment::read(&self.store, &segment, keep, None).await? {
                let (ids, ts, values) = sample_columns(&batch)?;
                let (ids, ts, values) = (ids.values(), ts.values(), values.values());
                let mut row = 0;
                while row < ids.len() {
                    // Rows are sorted by (series, time): handle one series' run at a time.
                    let id = ids[row];
                    let run_end = row + ids[row..].partition_point(|x| *x == id);
                    if let Some(slot) = collector.slot(id) {
                        let run = &ts[row..run_end];
                        let from = row + run.partition_point(|t| *t < start_ms);
                        let to = row + run.partition_point(|t| *t <= end_ms);
                        if !collector.extend(slot, &ts[from..to], &values[from..to]) {
                            return Ok(None);
                        }
                    }
                    row = run_end;
                }
            }
        }
        for generation in &snapshot.generations {
            if let Some(memtable) = generation.get(tenant) {
                let mut within = true;
                memtable.visit_series(&wanted, |id, buffer| {
                    let Some(slot) = collector.slot(id) else {
                        return;
                    };
                    for (t, v) in buffer.points() {
                        if within && *t >= start_ms && *t <= end_ms {
                            within = collector.push(slot, *t, *v);
                        }
                    }
                });
                if !within {
                    return Ok(None);
                }
            }
        }
        // Rows ingesters have not flushed (querier nodes only; nothing otherwise).
        for batch in self
            .remote_samples(&snapshot, tenant, &wanted, start_ms, end_ms)
            .await
        {
            let (ids, ts, values) = sample_columns(&batch)?;
            for row in 0..batch.num_rows() {
                if let Some(slot) = collector.slot(ids.value(row))
                    && !collector.push(slot, ts.value(row), values.value(row))
                {
                    return Ok(None);
                }
            }
        }
        Ok(Some(collector.finish()))
    }
    /// Returns the exemplars of `series` in `[start_ms, end_ms]` ([`crate::model::EXEMPLARS_SCHEMA`]).
    pub async fn scan_exemplars(
        &self,
        tenant: &TenantId,
        series: &[SeriesId],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RecordBatch>> {
        let mut wanted: HashSet<u64> = series.iter().map(|id| id.0).collect();
        let ids: Vec<u64> = wanted.iter().copied().collect();
        let aliases = self.series_aliases(tenant, &ids);
        wanted.extend(aliases.iter().map(|(alias, _)| *alias));
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
        if !aliases.is_empty() {
            out = out
                .iter()
                .map(|batch| rename_series(batch, &aliases))
                .collect::<Result<_>>()?;
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
        hits.hot
            .extend(self.remote_logs(&snapshot, tenant, scan).await?);
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
                trace_id: scan.trace_id.as_ref(),
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
                trace_id: scan.trace_id.as_ref(),
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
        out.extend(self.remote_logs(&snapshot, tenant, scan).await?);
        if out.is_empty() {
            out.push(segment::empty(&LOGS_SCHEMA));
        }
        Ok(out)
    }

    /// The first pass of a late-materialised log read: for each source, the rows that
    /// match `scan` and their times, from the full-text index and the timestamp column
    /// alone where the index answers the scan exactly. Elsewhere the rows are
    /// candidates: with `confirm`, the scan is checked here on the filter columns (time,
    /// service, body, trace id; never attributes); without, [`TimelineSource::confirmed`]
    /// is false and [`Storage::read_timeline_rows`] confirms the rows it reads.
    pub async fn log_timeline(
        &self,
        tenant: &TenantId,
        scan: &LogScan,
        confirm: bool,
    ) -> Result<LogTimeline> {
        let snapshot = self.snapshot();
        let mut timeline = LogTimeline::default();
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
                trace_id: scan.trace_id.as_ref(),
            };
            let index = match &segment.index_path {
                Some(_) => Some(self.log_index(&segment).await?),
                None => None,
            };
            let candidates = match &index {
                Some(index) => index.candidates(&filter)?,
                None => None,
            };
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            let exact = scan.services.len() <= 1
                && match &index {
                    Some(index) => scan.text.as_ref().is_none_or(|t| index.answers_exactly(t)),
                    None => {
                        scan.services.is_empty() && scan.trace_id.is_none() && scan.text.is_none()
                    }
                };
            let keep_group = |group: &parquet::file::metadata::RowGroupMetaData| {
                i64_range(group, log_col::TIMESTAMP)
                    .is_none_or(|(lo, hi)| lo <= scan.end_ns && hi >= scan.start_ns)
            };
            let check_here = !exact && confirm;
            let columns = if check_here { LOG_FILTER_COLUMNS } else { 1 };
            let (batches, numbers) = segment::read_leading_columns(
                &self.store,
                &segment,
                columns,
                keep_group,
                candidates.as_deref(),
            )
            .await?;
            let mut source = TimelineSource {
                rows: Vec::new(),
                ts: Vec::new(),
                confirmed: exact || confirm,
                place: TimelinePlace::Cold(segment.clone()),
            };
            let mut numbers = numbers.iter();
            for batch in &batches {
                let times = batch
                    .column(log_col::TIMESTAMP)
                    .as_any()
                    .downcast_ref::<TimestampNanosecondArray>()
                    .ok_or_else(|| Error::Corrupt {
                        what: segment.path.clone(),
                        reason: "timestamp column has an unexpected type".into(),
                    })?;
                for (row, ts) in times.values().iter().enumerate() {
                    let Some(number) = numbers.next() else {
                        break;
                    };
                    let keep = if check_here {
                        scan.keep(batch, row)
                    } else {
                        *ts >= scan.start_ns && *ts <= scan.end_ns
                    };
                    if keep {
                        source.rows.push(*number);
                        source.ts.push(*ts);
                    }
                }
            }
            if !source.rows.is_empty() {
                timeline.sources.push(source);
            }
        }
        let mut hot: Vec<RecordBatch> = snapshot
            .generations
            .iter()
            .filter_map(|generation| generation.get(tenant))
            .flat_map(|memtable| memtable.logs())
            .collect();
        hot.extend(self.remote_logs(&snapshot, tenant, scan).await?);
        {
            for batch in hot {
                let Some(batch) = scan.filter(&batch)? else {
                    continue;
                };
                let times = batch
                    .column(log_col::TIMESTAMP)
                    .as_any()
                    .downcast_ref::<TimestampNanosecondArray>()
                    .map(|t| t.values().to_vec())
                    .unwrap_or_default();
                timeline.sources.push(TimelineSource {
                    rows: (0..times.len() as u32).collect(),
                    ts: times,
                    confirmed: true,
                    place: TimelinePlace::Hot(batch),
                });
            }
        }
        Ok(timeline)
    }

    /// The second pass of a late-materialised log read: reads the given rows of a
    /// timeline source (a sorted subset of its `rows`) with every column, and keeps
    /// those that match `scan` (the scan the timeline was built with).
    pub async fn read_timeline_rows(
        &self,
        source: &TimelineSource,
        rows: &[u32],
        scan: &LogScan,
    ) -> Result<Vec<RecordBatch>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let batches = match &source.place {
            TimelinePlace::Hot(batch) => {
                let indices = arrow::array::UInt32Array::from(rows.to_vec());
                vec![
                    arrow::compute::take_record_batch(batch, &indices)
                        .map_err(|e| Error::arrow("taking log rows", e))?,
                ]
            }
            TimelinePlace::Cold(segment) => {
                segment::read(&self.store, segment, |_| true, Some(rows)).await?
            }
        };
        if source.confirmed {
            return Ok(batches);
        }
        let mut out = Vec::with_capacity(batches.len());
        for batch in &batches {
            out.extend(scan.filter(batch)?);
        }
        Ok(out)
    }

    /// The rows of `segment` a trace lookup reads: only the pages whose trace-id range
    /// holds the id (spans are sorted by trace id within a segment); `None` reads all.
    async fn trace_rows(
        &self,
        segment: &SegmentMeta,
        keep: impl Fn(&parquet::file::metadata::RowGroupMetaData) -> bool,
        wanted: Option<&[u8]>,
    ) -> Result<Option<Vec<u32>>> {
        match wanted {
            Some(id) => {
                segment::rows_in_pages_with(&self.store, segment, keep, span_col::TRACE_ID, id)
                    .await
            }
            None => Ok(None),
        }
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
            let keep = span_row_groups(scan, wanted.as_deref());
            let rows = self.trace_rows(&segment, keep, wanted.as_deref()).await?;
            if rows.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            for batch in segment::read(&self.store, &segment, keep, rows.as_deref()).await? {
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
        out.extend(self.remote_spans(&snapshot, tenant, scan).await?);
        if out.is_empty() {
            out.push(segment::empty(&SPANS_SCHEMA));
        }
        Ok(out)
    }

    /// The first pass of a late-materialised span read: the spans matching `scan`, per
    /// source, with only the named [`SPANS_SCHEMA`] columns (and those the scan filters
    /// on) read. Unknown names are an error.
    pub async fn span_timeline(
        &self,
        tenant: &TenantId,
        scan: &SpanScan,
        columns: &[&str],
    ) -> Result<SpanTimeline> {
        let mut projection = vec![span_col::START];
        if scan.trace_id.is_some() {
            projection.push(span_col::TRACE_ID);
        }
        if scan.service.is_some() {
            projection.push(span_col::SERVICE);
        }
        for name in columns {
            let index = SPANS_SCHEMA
                .index_of(name)
                .map_err(|_| Error::InvalidQuery(format!("spans have no column {name:?}")))?;
            projection.push(index);
        }
        projection.sort_unstable();
        projection.dedup();
        let snapshot = self.snapshot();
        let mut timeline = SpanTimeline::default();
        let wanted = scan.trace_id.map(|id| id.0.to_vec());
        for segment in self.segments_for(
            &snapshot.manifest,
            tenant,
            Table::Spans,
            scan.start_ns,
            scan.end_ns,
        ) {
            let keep = span_row_groups(scan, wanted.as_deref());
            let rows = self.trace_rows(&segment, keep, wanted.as_deref()).await?;
            if rows.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            let (batches, numbers) =
                segment::read_columns(&self.store, &segment, &projection, keep, rows.as_deref())
                    .await?;
            let mut source = SpanSource {
                rows: Vec::new(),
                columns: Vec::with_capacity(batches.len()),
                place: SpanPlace::Cold(segment.clone()),
            };
            let mut numbers = numbers.iter();
            for batch in &batches {
                let mask = projected_span_mask(scan, batch)?;
                for (keep, number) in mask.iter().zip(numbers.by_ref()) {
                    if keep == Some(true) {
                        source.rows.push(*number);
                    }
                }
                if mask.true_count() == batch.num_rows() {
                    source.columns.push(batch.clone());
                } else if mask.true_count() > 0 {
                    source.columns.push(
                        filter_record_batch(batch, &mask)
                            .map_err(|e| Error::arrow("filtering spans", e))?,
                    );
                }
            }
            if !source.rows.is_empty() {
                timeline.sources.push(source);
            }
        }
        for generation in &snapshot.generations {
            let Some(memtable) = generation.get(tenant) else {
                continue;
            };
            for batch in memtable.spans() {
                let rows: Vec<u32> = (0..batch.num_rows())
                    .filter(|row| scan.keep(&batch, *row))
                    .map(|row| row as u32)
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let indices = arrow::array::UInt32Array::from(rows.clone());
                let projected = batch
                    .project(&projection)
                    .map_err(|e| Error::arrow("projecting spans", e))?;
                let columns = arrow::compute::take_record_batch(&projected, &indices)
                    .map_err(|e| Error::arrow("taking spans", e))?;
                timeline.sources.push(SpanSource {
                    rows,
                    columns: vec![columns],
                    place: SpanPlace::Hot(batch),
                });
            }
        }
        Ok(timeline)
    }

    /// The second pass of a late-materialised span read: every column of the given rows
    /// of a timeline source (a sorted subset of its `rows`), in row order.
    pub async fn read_span_rows(
        &self,
        source: &SpanSource,
        rows: &[u32],
    ) -> Result<Vec<RecordBatch>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        match &source.place {
            SpanPlace::Hot(batch) => {
                let indices = arrow::array::UInt32Array::from(rows.to_vec());
                Ok(vec![
                    arrow::compute::take_record_batch(batch, &indices)
                        .map_err(|e| Error::arrow("taking spans", e))?,
                ])
            }
            SpanPlace::Cold(segment) => {
                segment::read(&self.store, segment, |_| true, Some(rows)).await
            }
        }
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

/// The samples of one series, in time order, one per timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series.
    pub id: SeriesId,
    /// Sample times, Unix milliseconds, strictly increasing.
    pub ts: Vec<i64>,
    /// Sample values, one per time.
    pub values: Vec<f64>,
}

/// Gathers samples per series, in arrival order, for [`Storage::scan_series_samples`].
/// Selected rows from which a planned samples read is split across the cores.
const PARALLEL_READ_ROWS: usize = 64 * 1024;

/// How many parts a large samples read is split into: the cores, up to 8 (looked up
/// once: on Linux the lookup reads the cgroup's CPU quota files).
fn read_parallelism() -> usize {
    static PARTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PARTS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// Tasks aborted when their owner is dropped (a query given up midway).
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The samples one part of a split read decoded, in file order.
#[derive(Default)]
struct DecodedPart {
    /// `(series id, samples)` of each run.
    runs: Vec<(u64, usize)>,
    ts: Vec<i64>,
    values: Vec<f64>,
}

impl Storage {
    /// Reads the parts of a split plan at once, one task each, and hands their samples
    /// to `collector` in file order. All parts together hold no more samples than the
    /// collector may still take (plus one batch each): past that, every part stops and
    /// the read answers false, as the collector would.
    async fn read_plan_in_parts(
        &self,
        segment: &SegmentMeta,
        parts: Vec<segment::SamplePlan>,
        start_ms: i64,
        end_ms: i64,
        collector: &mut SampleCollector,
    ) -> Result<bool> {
        let budget = Arc::new(AtomicU64::new(collector.remaining()));
        let mut tasks = AbortOnDrop(Vec::with_capacity(parts.len()));
        tasks.0 = parts
            .into_iter()
            .map(|plan| {
                let (store, segment, budget) =
                    (self.store.clone(), segment.clone(), budget.clone());
                tokio::spawn(async move {
                    let mut part = DecodedPart::default();
                    let complete = segment::read_planned_samples(
                        &store,
                        &segment,
                        plan,
                        start_ms,
                        end_ms,
                        |id, ts, values| {
                            let n = ts.len() as u64;
                            let left =
                                budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                                    b.checked_sub(n)
                                });
                            if left.is_err() {
                                return false;
                            }
                            part.runs.push((id, ts.len()));
                            part.ts.extend_from_slice(ts);
                            part.values.extend_from_slice(values);
                            true
                        },
                    )
                    .await?;
                    Ok::<_, Error>(complete.then_some(part))
                })
            })
            .collect();
        let mut complete = true;
        // Parts are collected in file order while the later ones are still decoding.
        for task in &mut tasks.0 {
            let part = task
                .await
                .map_err(|e| Error::Task(format!("samples read: {e}")))??;
            let Some(part) = part else {
                complete = false;
                continue;
            };
            if !complete {
                continue;
            }
            let mut at = 0;
            for (id, n) in part.runs {
                let (ts, values) = (&part.ts[at..at + n], &part.values[at..at + n]);
                at += n;
                if let Some(slot) = collector.slot(id)
                    && !collector.extend(slot, ts, values)
                {
                    complete = false;
                    break;
                }
            }
        }
        Ok(complete)
    }
}

struct SampleCollector {
    first: u64,
    /// Slot of each id in `first..` (`u32::MAX`: not wanted) when the ids are close
    /// together (one node's ids); otherwise empty and `sparse` holds the slots.
    slots: Vec<u32>,
    sparse: std::collections::HashMap<u64, u32>,
    series: Vec<SeriesSamples>,
    /// Whether a series received a sample not after its previous one.
    unordered: Vec<bool>,
    collected: u64,
    limit: u64,
}

impl SampleCollector {
    /// `wanted` is sorted, deduplicated and not empty; `aliases` are `(alias, id)` pairs
    /// whose samples go to the slot of a wanted id.
    fn new(wanted: &[u64], aliases: &[(u64, u64)], limit: u64) -> Self {
        let mut all: Vec<(u64, u32)> = wanted
            .iter()
            .enumerate()
            .map(|(slot, id)| (*id, slot as u32))
            .collect();
        for (alias, id) in aliases {
            if let Ok(slot) = wanted.binary_search(id) {
                all.push((*alias, slot as u32));
            }
        }
        all.sort_unstable();
        all.dedup_by_key(|(id, _)| *id);
        let first = all[0].0;
        let span = all[all.len() - 1].0 - first;
        let mut slots = Vec::new();
        let mut sparse = std::collections::HashMap::new();
        // Ids of one node are dense; ids of several nodes are 2^40 apart. A table of up
        // to 1 MiB is cheaper than hashing every id looked up in a wide read.
        if span <= 8 * all.len() as u64 + (1 << 18) {
            slots = vec![u32::MAX; span as usize + 1];
            for (id, slot) in &all {
                slots[(id - first) as usize] = *slot;
            }
        } else {
            sparse = all.iter().copied().collect();
        }
        SampleCollector {
            first,
            slots,
            sparse,
            series: wanted
                .iter()
                .map(|id| SeriesSamples {
                    id: SeriesId(*id),
                    ts: Vec::new(),
                    values: Vec::new(),
                })
                .collect(),
            unordered: vec![false; wanted.len()],
            collected: 0,
            limit,
        }
    }

    /// Every id read (wanted ids and their aliases), sorted.
    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = if self.slots.is_empty() {
            self.sparse.keys().copied().collect()
        } else {
            (0..self.slots.len() as u64)
                .filter(|i| self.slots[*i as usize] != u32::MAX)
                .map(|i| self.first + i)
                .collect()
        };
        ids.sort_unstable();
        ids
    }

    fn slot(&self, id: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return self.sparse.get(&id).map(|slot| *slot as usize);
        }
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.slots
            .get(index)
            .filter(|slot| **slot != u32::MAX)
            .map(|slot| *slot as usize)
    }

    /// Samples the collector may still take.
    fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.collected)
    }

    /// Appends a time-sorted run; false once past the limit.
    fn extend(&mut self, slot: usize, ts: &[i64], values: &[f64]) -> bool {
        let Some(&head) = ts.first() else {
            return true;
        };
        let series = &mut self.series[slot];
        if series.ts.last().is_some_and(|last| *last >= head) {
            self.unordered[slot] = true;
        }
        series.ts.extend_from_slice(ts);
        series.values.extend_from_slice(values);
        self.collected = self.collected.saturating_add(ts.len() as u64);
        self.collected <= self.limit
    }

    /// Appends one sample; false once past the limit.
    fn push(&mut self, slot: usize, t: i64, value: f64) -> bool {
        self.extend(slot, &[t], &[value])
    }

    /// Sorts the series that need it (keeping the last-arrived sample of a timestamp)
    /// and drops the series without samples.
    fn finish(mut self) -> Vec<SeriesSamples> {
        for (series, unordered) in self.series.iter_mut().zip(&self.unordered) {
            if !*unordered {
                continue;
            }
            let mut order: Vec<usize> = (0..series.ts.len()).collect();
            // Stable: samples of one timestamp stay in arrival order.
            order.sort_by_key(|i| series.ts[*i]);
            let mut ts: Vec<i64> = Vec::with_capacity(order.len());
            let mut values: Vec<f64> = Vec::with_capacity(order.len());
            for i in order {
                let (t, v) = (series.ts[i], series.values[i]);
                if ts.last() == Some(&t) {
                    *values.last_mut().expect("pushed with its time") = v;
                } else {
                    ts.push(t);
                    values.push(v);
                }
            }
            series.ts = ts;
            series.values = values;
        }
        self.series.retain(|s| !s.ts.is_empty());
        self.series
    }
}

impl Storage {
    /// `(alias, id)` for every alias of the given series ids (usually none).
    fn series_aliases(&self, tenant: &TenantId, ids: &[u64]) -> Vec<(u64, u64)> {
        let Some(catalog) = self.existing_catalog(tenant) else {
            return Vec::new();
        };
        let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
        if !index.has_aliases() {
            return Vec::new();
        }
        ids.iter()
            .flat_map(|id| {
                index
                    .aliases(SeriesId(*id))
                    .iter()
                    .map(move |alias| (*alias, *id))
            })
            .collect()
    }
}

/// Replaces alias ids by their series' id in column 0 of an exemplars batch.
fn rename_series(batch: &RecordBatch, aliases: &[(u64, u64)]) -> Result<RecordBatch> {
    let Some(ids) = batch.column(0).as_any().downcast_ref::<UInt64Array>() else {
        return Ok(batch.clone());
    };
    let map: std::collections::HashMap<u64, u64> = aliases.iter().copied().collect();
    let renamed: UInt64Array = ids
        .iter()
        .map(|id| id.map(|id| map.get(&id).copied().unwrap_or(id)))
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[0] = Arc::new(renamed);
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| Error::arrow("renaming series", e))
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

#[cfg(test)]
mod sample_read_tests {
    //! The planned read of samples segments (run index, row selection) against the full
    //! decode of the same segments and against the data written.

    use std::collections::BTreeMap;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::metrics::{MetricsWrite, Sample, SeriesWrite};
    use crate::model::SAMPLES_SCHEMA;

    const T0: i64 = 1_790_000_000_000;

    /// Writes `series` random series (4 metrics, irregular steps, 0-3 h, some NaN and
    /// non-decimal values) in three writes, flushing after the first two, so the data is
    /// in two overlapping segments (the second overwriting some samples) and a memtable.
    /// Returns the storage and the latest value of every (series, time) written.
    async fn load(
        dir: &std::path::Path,
        seed: u64,
        series: usize,
    ) -> (Arc<Storage>, BTreeMap<(u64, i64), f64>) {
        let config = crate::Config {
            // Small row groups, so windows span several groups and runs cross them.
            row_group_rows: 1024,
            ..crate::Config::default()
        };
        let storage = Storage::open(config, dir).await.expect("open");
        let tenant = TenantId::default();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut truth = BTreeMap::new();
        for round in 0..3 {
            let mut writes = Vec::new();
            for s in 0..series {
                if rng.random_bool(0.3) {
                    continue;
                }
                let labels = Labels::new(vec![
                    ("__name__".to_string(), format!("metric_{}", s % 4)),
                    ("instance".to_string(), format!("i{s}")),
                ])
                .expect("labels");
                let mut ts = T0 + rng.random_range(0..3 * 3_600_000);
                let mut samples = Vec::new();
                for _ in 0..rng.random_range(1..120) {
                    let value = match rng.random_range(0..10) {
                        0 => f64::NAN,
                        1 => rng.random::<f64>(),
                        _ => rng.random_range(0..1_000_000) as f64 / 100.0,
                    };
                    samples.push(Sample { ts_ms: ts, value });
                    ts += rng.random_range(1..120_000);
                }
                writes.push((labels, samples));
            }
            let write = MetricsWrite {
                series: writes
                    .into_iter()
                    .map(|(labels, samples)| SeriesWrite {
                        labels,
                        samples,
                        exemplars: Vec::new(),
                    })
                    .collect(),
                metadata: Vec::new(),
            };
            storage
                .append_metrics(&tenant, &write)
                .await
                .expect("append");
            for s in &write.series {
                let id = storage
                    .existing_catalog(&tenant)
                    .and_then(|c| c.series.read().ok()?.get(&s.labels))
                    .expect("series registered")
                    .0;
                for sample in &s.samples {
                    truth.insert((id, sample.ts_ms), sample.value);
                }
            }
            if round < 2 {
                storage.flush().await.expect("flush");
            }
        }
        (storage, truth)
    }

    fn bits(samples: &[SeriesSamples]) -> Vec<(u64, Vec<i64>, Vec<u64>)> {
        samples
            .iter()
            .map(|s| {
                (
                    s.id.0,
                    s.ts.clone(),
                    s.values.iter().map(|v| v.to_bits()).collect(),
                )
            })
            .collect()
    }

    /// A random selector (a few ids, a range of ids, or all) and time range.
    fn random_query(rng: &mut SmallRng, series: u64) -> (Vec<SeriesId>, i64, i64) {
        let ids: Vec<SeriesId> = match rng.random_range(0..3) {
            0 => (0..rng.random_range(1..5))
                .map(|_| SeriesId(rng.random_range(0..series)))
                .collect(),
            1 => {
                let from = rng.random_range(0..series);
                (from..series.min(from + rng.random_range(1..50)))
                    .map(SeriesId)
                    .collect()
            }
            _ => (0..series)
                .filter(|_| rng.random_bool(0.5))
                .map(SeriesId)
                .collect(),
        };
        let (start, end) = match rng.random_range(0..3) {
            // An instant query's lookback.
            0 => {
                let end = T0 + rng.random_range(0..4 * 3_600_000);
                (end - 300_000, end)
            }
            1 => {
                let start = T0 + rng.random_range(-3_600_000..4 * 3_600_000);
                (start, start + rng.random_range(0..2 * 3_600_000))
            }
            _ => (i64::MIN, i64::MAX),
        };
        (ids, start, end)
    }

    #[tokio::test]
    async fn planned_reads_return_exactly_the_rows_written() {
        let tenant = TenantId::default();
        for seed in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let (storage, truth) = load(dir.path(), seed, 200).await;
            let series = storage.stats().series;
            let mut rng = SmallRng::seed_from_u64(100 + seed);
            for _ in 0..40 {
                let (ids, start, end) = random_query(&mut rng, series);
                let got = storage
                    .scan_series_samples(&tenant, &ids, start, end, u64::MAX)
                    .await
                    .expect("scan")
                    .expect("no limit");
                let mut want: BTreeMap<u64, SeriesSamples> = BTreeMap::new();
                let distinct: std::collections::BTreeSet<SeriesId> = ids.iter().copied().collect();
                for id in &distinct {
                    for ((_, t), v) in truth.range((id.0, start)..=(id.0, end)) {
                        let entry = want.entry(id.0).or_insert_with(|| SeriesSamples {
                            id: *id,
                            ts: Vec::new(),
                            values: Vec::new(),
                        });
                        entry.ts.push(*t);
                        entry.values.push(*v);
                    }
                }
                let want: Vec<SeriesSamples> = want.into_values().collect();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "seed {seed}, {ids:?} in [{start}, {end}]"
                );
            }
        }
    }

    /// Every samples segment of a tenant.
    fn samples_segments(storage: &Storage, tenant: &TenantId) -> Vec<SegmentMeta> {
        storage.segments_for(
            &storage.snapshot().manifest,
            tenant,
            Table::Samples,
            i64::MIN,
            i64::MAX,
        )
    }

    /// Per segment: the rows the plan reads are exactly those of the full decode that
    /// belong to the wanted series and the time range, in the same order.
    #[tokio::test]
    async fn planned_reads_equal_the_full_decode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, _) = load(dir.path(), 7, 300).await;
        let tenant = TenantId::default();
        let series = storage.stats().series;
        let segments = samples_segments(&storage, &tenant);
        assert_eq!(segments.len(), 2);
        let mut rng = SmallRng::seed_from_u64(9);
        for _ in 0..60 {
            let (ids, start, end) = random_query(&mut rng, series);
            let wanted: HashSet<u64> = ids.iter().map(|id| id.0).collect();
            for segment in &segments {
                let mut full = Vec::new();
                for batch in segment::read(&storage.store, segment, |_| true, None)
                    .await
                    .expect("full read")
                {
                    let (ids, ts, values) = sample_columns(&batch).expect("columns");
                    for row in 0..batch.num_rows() {
                        let (id, t) = (ids.value(row), ts.value(row));
                        if wanted.contains(&id) && t >= start && t <= end {
                            full.push((id, t, values.value(row).to_bits()));
                        }
                    }
                }
                // Planned by walking the runs, and by looking up the wanted series' runs.
                let mut sorted: Vec<u64> = wanted.iter().copied().collect();
                sorted.sort_unstable();
                for by_series in [None, Some(sorted.as_slice())] {
                    let plan = segment::plan_sample_read(
                        &storage.store,
                        segment,
                        start,
                        end,
                        by_series,
                        |id| wanted.contains(&id),
                    )
                    .await
                    .expect("plan")
                    .expect("segments have a run index");
                    let mut planned = Vec::new();
                    let complete = segment::read_planned_samples(
                        &storage.store,
                        segment,
                        plan,
                        start,
                        end,
                        |id, ts, values| {
                            planned
                                .extend(ts.iter().zip(values).map(|(t, v)| (id, *t, v.to_bits())));
                            true
                        },
                    )
                    .await
                    .expect("planned read");
                    assert!(complete);
                    assert_eq!(
                        planned,
                        full,
                        "{ids:?} in [{start}, {end}], by series: {}",
                        by_series.is_some()
                    );
                }
            }
        }
    }

    /// A plan split into parts read at once collects what one read of it collects, and
    /// stops at the same limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn split_reads_equal_one_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, _) = load(dir.path(), 11, 300).await;
        let tenant = TenantId::default();
        let series = storage.stats().series;
        let segments = samples_segments(&storage, &tenant);
        let plan = |segment: &SegmentMeta, wanted: &[u64], start: i64, end: i64| {
            let (storage, segment, wanted) = (storage.clone(), segment.clone(), wanted.to_vec());
            async move {
                segment::plan_sample_read(&storage.store, &segment, start, end, None, |id| {
                    wanted.binary_search(&id).is_ok()
                })
                .await
                .expect("plan")
                .expect("segments have a run index")
            }
        };
        let mut rng = SmallRng::seed_from_u64(12);
        let mut split_groups = 0;
        for _ in 0..40 {
            let (ids, start, end) = random_query(&mut rng, series);
            let mut wanted: Vec<u64> = ids.iter().map(|id| id.0).collect();
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                continue;
            }
            for segment in &segments {
                let mut one = SampleCollector::new(&wanted, &[], u64::MAX);
                let complete = segment::read_planned_samples(
                    &storage.store,
                    segment,
                    plan(segment, &wanted, start, end).await,
                    start,
                    end,
                    |id, ts, values| match one.slot(id) {
                        Some(slot) => one.extend(slot, ts, values),
                        None => true,
                    },
                )
                .await
                .expect("one read");
                assert!(complete);
                let total = one.collected;
                let want = bits(&one.finish());
                for parts in [2, 3, 7] {
                    let split = plan(segment, &wanted, start, end).await.split(parts);
                    split_groups += usize::from(split.len() > 1);
                    let mut collector = SampleCollector::new(&wanted, &[], u64::MAX);
                    let complete = storage
                        .read_plan_in_parts(segment, split, start, end, &mut collector)
                        .await
                        .expect("split read");
                    assert!(complete);
                    assert_eq!(bits(&collector.finish()), want, "{parts} parts");
                }
                // Exactly the limit fits; one sample less does not.
                for (limit, fits) in [(total, true), (total.saturating_sub(1), total == 0)] {
                    let split = plan(segment, &wanted, start, end).await.split(3);
                    let mut collector = SampleCollector::new(&wanted, &[], limit);
                    let complete = storage
                        .read_plan_in_parts(segment, split, start, end, &mut collector)
                        .await
                        .expect("split read");
                    assert_eq!(complete, fits, "limit {limit} of {total}");
                }
            }
        }
        assert!(
            split_groups > 20,
            "reads split into several parts: {split_groups}"
        );
    }

    /// A segment written before the run index (sorted by series and time, no footer
    /// key) is still read, through the full-decode path, with the same answers.
    #[tokio::test]
    async fn segments_without_a_run_index_stay_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, _) = load(dir.path(), 11, 150).await;
        let tenant = TenantId::default();
        let series = storage.stats().series;
        let mut rng = SmallRng::seed_from_u64(12);
        let queries: Vec<_> = (0..30).map(|_| random_query(&mut rng, series)).collect();
        let mut before = Vec::new();
        for (ids, start, end) in &queries {
            before.push(
                storage
                    .scan_series_samples(&tenant, ids, *start, *end, u64::MAX)
                    .await
                    .expect("scan")
                    .expect("no limit"),
            );
        }
        // Rewrite every samples segment the old way, under a new path.
        let manifest = storage.snapshot().manifest.clone();
        let mut replaced = Vec::new();
        let mut added = Vec::new();
        for segment in manifest.segments_of(&tenant, Table::Samples) {
            let batches = segment::read(&storage.store, segment, |_| true, None)
                .await
                .expect("read");
            let sorted = segment::sort_batches(&SAMPLES_SCHEMA, &batches, &[0, 1]).expect("sort");
            let file = crate::sample_codec::to_file(&sorted).expect("to file");
            let properties = parquet::file::properties::WriterProperties::builder()
                .set_max_row_group_row_count(Some(500))
                .build();
            let bytes = segment::encode(
                &crate::sample_codec::SAMPLES_FILE_SCHEMA,
                &[file],
                properties,
            )
            .expect("encode");
            let mut old = segment.clone();
            old.id += 1_000;
            old.path = format!("{}.old.parquet", segment.path);
            old.parquet_bytes = bytes.len() as u64;
            old.bytes = old.parquet_bytes;
            storage
                .store
                .put(&ObjectPath::from(old.path.as_str()), bytes.into())
                .await
                .expect("put");
            replaced.push(segment.id);
            added.push(old);
        }
        {
            let mut state = storage.state.write().expect("state");
            state.manifest = Arc::new(manifest.apply(&replaced, added.clone()));
        }
        for segment in &added {
            assert!(
                segment::plan_sample_read(&storage.store, segment, 0, i64::MAX, None, |_| true)
                    .await
                    .expect("plan")
                    .is_none(),
                "an old segment has no run index"
            );
        }
        for ((ids, start, end), want) in queries.iter().zip(&before) {
            let got = storage
                .scan_series_samples(&tenant, ids, *start, *end, u64::MAX)
                .await
                .expect("scan")
                .expect("no limit");
            assert_eq!(bits(&got), bits(want));
        }
    }
}
