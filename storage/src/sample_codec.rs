//! The on-disk layout of samples: values that are decimals with few digits (counters,
//! integer gauges, Micrometer's nanosecond-based seconds) are stored as an integer
//! mantissa plus a power-of-ten scale, which delta-codes to a few bits per sample;
//! other values (NaN, ±Inf, staleness markers, full-precision floats) stay f64. The
//! mapping is exact: a value takes the decimal path only if it decodes to the same bits.
//!
//! Row order: by time window ([`window_ms`], a few per file), then by metric, then by
//! series, each series' rows in time order ([`SampleWindows`]). The footer keeps a run
//! index (series and row count of each run, [`RUNS_KEY`]), so a query reads only the
//! runs of its series in the windows of its time range. Files written before the index
//! (sorted by series and time, no footer key) are read whole, as before.

use std::sync::{Arc, LazyLock, OnceLock};

use arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, Int8Array, Int8Builder, Int64Array,
    Int64Builder, RecordBatch, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::model::SAMPLES_SCHEMA;
use crate::{Error, Result};

const MAX_SCALE: usize = 12;
const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
/// Mantissas beyond 2^53 are not exact in f64.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;

/// The Parquet schema of samples files written before delta coding: absolute times and
/// mantissas. Still read; only tests write it.
#[cfg(test)]
pub(crate) static SAMPLES_FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt64, false),
        Field::new("ts_ms", DataType::Int64, false),
        Field::new("mantissa", DataType::Int64, true),
        Field::new("scale", DataType::Int8, true),
        Field::new("value", DataType::Float64, true),
    ]))
});

fn decode(mantissa: i64, scale: i8) -> f64 {
    mantissa as f64 / POW10[scale as usize]
}

/// Returns `(mantissa, scale)` when `value` is exactly `mantissa / 10^scale`.
pub(crate) fn to_decimal(value: f64) -> Option<(i64, i8)> {
    if !value.is_finite() {
        return None;
    }
    for (scale, pow) in POW10.iter().enumerate() {
        let scaled = (value * pow).round();
        if scaled.abs() >= MAX_MANTISSA {
            return None;
        }
        let mantissa = scaled as i64;
        if decode(mantissa, scale as i8).to_bits() == value.to_bits() {
            return Some((mantissa, scale as i8));
        }
    }
    None
}

fn corrupt(reason: &str) -> Error {
    Error::Corrupt {
        what: "samples segment".to_string(),
        reason: reason.to_string(),
    }
}

/// Name of the time column of delta-coded samples files: how a reader tells the two
/// layouts apart.
pub(crate) const TS_DELTA_COLUMN: &str = "ts_delta_ms";

/// The Parquet schema of delta-coded samples files (the layout written today).
///
/// Rows are cut into stretches: a stretch is the rows of one run (one series in one
/// time window) inside one row group. In a stretch, `ts_delta_ms` holds the first
/// row's time and then each row's distance from the previous one; `mantissa_delta`
/// holds the zigzag-coded difference from the previous decimal row of the stretch (the
/// first: from zero); `scale` is one scale for every decimal row of the stretch (the
/// largest its values need), so consecutive mantissas are comparable. A regular scrape
/// interval becomes one repeated delta, and a counter's mantissas become its small
/// increments: both compress to a fraction of their absolute form. A reader starts
/// decoding at a stretch start: a run start or a row-group start. There is no series
/// column: the run index in the footer says whose each run is.
pub(crate) static DELTA_FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(TS_DELTA_COLUMN, DataType::Int64, false),
        Field::new("mantissa_delta", DataType::Int64, true),
        Field::new("scale", DataType::Int8, true),
        Field::new("value", DataType::Float64, true),
    ]))
});

/// Whether a samples file is delta-coded (its first column is the time deltas).
pub(crate) fn is_delta_coded(schema: &Schema) -> bool {
    schema
        .fields()
        .first()
        .is_some_and(|f| f.name() == TS_DELTA_COLUMN)
}

fn zigzag(value: i64) -> i64 {
    (value << 1) ^ (value >> 63)
}

fn unzigzag(value: i64) -> i64 {
    ((value as u64 >> 1) as i64) ^ -(value & 1)
}

/// Encodes stretches (each a run's `(time, value)` points, or the part of it in one row
/// group) in the [`DELTA_FILE_SCHEMA`] layout.
pub(crate) fn to_delta_file(stretches: &[&[(i64, f64)]]) -> Result<RecordBatch> {
    let rows: usize = stretches.iter().map(|s| s.len()).sum();
    let mut ts_deltas = Vec::with_capacity(rows);
    let mut mantissas = Int64Builder::with_capacity(rows);
    let mut scales = Int8Builder::with_capacity(rows);
    let mut floats = Float64Builder::with_capacity(rows);
    let mut decimals: Vec<Option<(i64, i8)>> = Vec::new();
    for points in stretches {
        decimals.clear();
        decimals.extend(points.iter().map(|(_, v)| to_decimal(*v)));
        let scale = decimals
            .iter()
            .flatten()
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        let mut previous_ts = 0i64;
        let mut previous_mantissa = 0i64;
        for ((time, point), decimal) in points.iter().zip(&decimals) {
            ts_deltas.push(time.wrapping_sub(previous_ts));
            previous_ts = *time;
            // The decimal path at the stretch's scale, when the value survives it exactly.
            let rescaled = decimal.and_then(|(mantissa, own)| {
                let factor = POW10[(scale - own) as usize];
                let wide = mantissa as f64 * factor;
                (wide.abs() < MAX_MANTISSA).then_some(())?;
                let mantissa = mantissa.checked_mul(factor as i64)?;
                (decode(mantissa, scale).to_bits() == point.to_bits()).then_some(mantissa)
            });
            match rescaled {
                Some(mantissa) => {
                    mantissas.append_value(zigzag(mantissa.wrapping_sub(previous_mantissa)));
                    previous_mantissa = mantissa;
                    scales.append_value(scale);
                    floats.append_null();
                }
                None => {
                    mantissas.append_null();
                    scales.append_null();
                    floats.append_value(*point);
                }
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts_deltas)),
        Arc::new(mantissas.finish()),
        Arc::new(scales.finish()),
        Arc::new(floats.finish()),
    ];
    RecordBatch::try_new(DELTA_FILE_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("encoding samples", e))
}

/// Where delta decoding stands inside a stretch: the previous row's time and the
/// previous decimal row's mantissa.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DeltaState {
    ts: i64,
    mantissa: i64,
}

/// The columns of a delta-coded batch: time deltas, mantissa deltas, scales, floats.
pub(crate) struct DeltaColumns<'a> {
    pub ts: &'a Int64Array,
    pub mantissas: &'a Int64Array,
    pub scales: &'a Int8Array,
    pub floats: &'a Float64Array,
}

impl<'a> DeltaColumns<'a> {
    /// The columns of a [`DELTA_FILE_SCHEMA`] batch.
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<Self> {
        let column = |i: usize| batch.columns().get(i).map(|c| c.as_any());
        match (
            column(0).and_then(|c| c.downcast_ref::<Int64Array>()),
            column(1).and_then(|c| c.downcast_ref::<Int64Array>()),
            column(2).and_then(|c| c.downcast_ref::<Int8Array>()),
            column(3).and_then(|c| c.downcast_ref::<Float64Array>()),
        ) {
            (Some(ts), Some(mantissas), Some(scales), Some(floats)) => Ok(DeltaColumns {
                ts,
                mantissas,
                scales,
                floats,
            }),
            _ => Err(corrupt("unexpected column types")),
        }
    }

    /// Decodes rows `rows` (continuing from `state`, which the caller resets at a
    /// stretch start) into times and values.
    pub(crate) fn decode(
        &self,
        rows: std::ops::Range<usize>,
        state: &mut DeltaState,
        times: &mut Vec<i64>,
        values: &mut Vec<f64>,
    ) -> Result<()> {
        if rows.end > self.ts.len() {
            return Err(corrupt("rows beyond the batch"));
        }
        times.reserve(rows.len());
        values.reserve(rows.len());
        let deltas = self.ts.values();
        for row in rows {
            state.ts = state.ts.wrapping_add(deltas[row]);
            times.push(state.ts);
            let value = if self.mantissas.is_valid(row) && self.scales.is_valid(row) {
                let scale = self.scales.value(row);
                if !(0..=MAX_SCALE as i8).contains(&scale) {
                    return Err(corrupt("scale out of range"));
                }
                state.mantissa = state
                    .mantissa
                    .wrapping_add(unzigzag(self.mantissas.value(row)));
                decode(state.mantissa, scale)
            } else if self.floats.is_valid(row) {
                self.floats.value(row)
            } else {
                return Err(corrupt("sample without a value"));
            };
            values.push(value);
        }
        Ok(())
    }
}

/// Decodes delta-coded batches read in order (whole row groups, no rows skipped) back to
/// [`SAMPLES_SCHEMA`]; `stretches` are where each stretch starts (counted from the first
/// row read, ascending, the first at 0) and whose series it is.
pub(crate) fn from_delta_file(
    batches: &[RecordBatch],
    stretches: &[(u64, u64)],
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    let mut state = DeltaState::default();
    let mut position = 0u64;
    let mut next = stretches.iter().copied().peekable();
    let mut series = None;
    let (mut ids, mut times, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for batch in batches {
        let columns = DeltaColumns::of(batch)?;
        let rows = batch.num_rows();
        let end = position + rows as u64;
        ids.clear();
        times.clear();
        values.clear();
        let mut row = 0usize;
        while row < rows {
            let at = position + row as u64;
            if let Some((_, id)) = next.next_if(|(start, _)| *start <= at) {
                if next.peek().is_some_and(|(start, _)| *start <= at) {
                    return Err(corrupt("stretches out of order"));
                }
                state = DeltaState::default();
                series = Some(id);
            }
            let id = series.ok_or_else(|| corrupt("rows before the first stretch"))?;
            let until = next.peek().map_or(end, |(start, _)| (*start).min(end));
            let until = (until - position) as usize;
            columns.decode(row..until, &mut state, &mut times, &mut values)?;
            ids.resize(until, id);
            row = until;
        }
        position = end;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut ids))),
            Arc::new(Int64Array::from(std::mem::take(&mut times))),
            Arc::new(Float64Array::from(std::mem::take(&mut values))),
        ];
        out.push(
            RecordBatch::try_new(SAMPLES_SCHEMA.clone(), columns)
                .map_err(|e| Error::arrow("decoding samples", e))?,
        );
    }
    Ok(out)
}

/// Footer key of a delta-coded samples file's row-group time ranges (its time column's
/// statistics are of deltas): `min:max` per row group, `;`-separated.
pub(crate) const GROUP_TIMES_KEY: &str = "sightline.sample_group_times.v1";

/// Encodes row-group time ranges as footer text.
pub(crate) fn encode_group_times(ranges: &[(i64, i64)]) -> String {
    let parts: Vec<String> = ranges.iter().map(|(lo, hi)| format!("{lo}:{hi}")).collect();
    parts.join(";")
}

/// Decodes [`encode_group_times`] text of a file with `groups` row groups; `None` when
/// malformed or of another length.
pub(crate) fn decode_group_times(text: &str, groups: usize) -> Option<Vec<(i64, i64)>> {
    if groups == 0 {
        return text.is_empty().then(Vec::new);
    }
    let ranges = text
        .split(';')
        .map(|part| {
            let (lo, hi) = part.split_once(':')?;
            Some((lo.parse().ok()?, hi.parse().ok()?))
        })
        .collect::<Option<Vec<(i64, i64)>>>()?;
    (ranges.len() == groups).then_some(ranges)
}

/// Converts a [`SAMPLES_SCHEMA`] batch to the absolute layout of files written before
/// delta coding ([`SAMPLES_FILE_SCHEMA`]); tests write such files to check they still read.
#[cfg(test)]
pub(crate) fn to_file(batch: &RecordBatch) -> Result<RecordBatch> {
    let values = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| corrupt("value column is not f64"))?;
    let mut mantissas = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len());
    let mut floats = Vec::with_capacity(values.len());
    for value in values.values() {
        match to_decimal(*value) {
            Some((mantissa, scale)) => {
                mantissas.push(Some(mantissa));
                scales.push(Some(scale));
                floats.push(None);
            }
            None => {
                mantissas.push(None);
                scales.push(None);
                floats.push(Some(*value));
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        batch.column(0).clone(),
        batch.column(1).clone(),
        Arc::new(Int64Array::from(mantissas)),
        Arc::new(Int8Array::from(scales)),
        Arc::new(Float64Array::from(floats)),
    ];
    RecordBatch::try_new(SAMPLES_FILE_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("encoding samples", e))
}

/// Converts a file-layout batch back to [`SAMPLES_SCHEMA`].
pub(crate) fn from_file(batch: &RecordBatch) -> Result<RecordBatch> {
    let ids = batch.column(0).as_any().downcast_ref::<UInt64Array>();
    let mantissas = batch.column(2).as_any().downcast_ref::<Int64Array>();
    let scales = batch.column(3).as_any().downcast_ref::<Int8Array>();
    let floats = batch.column(4).as_any().downcast_ref::<Float64Array>();
    let (Some(ids), Some(mantissas), Some(scales), Some(floats)) = (ids, mantissas, scales, floats)
    else {
        return Err(corrupt("unexpected column types"));
    };
    let mut values = Vec::with_capacity(batch.num_rows());
    decode_values(mantissas, scales, floats, 0..batch.num_rows(), &mut values)?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.clone()),
        batch.column(1).clone(),
        Arc::new(Float64Array::from(values)),
    ];
    RecordBatch::try_new(SAMPLES_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("decoding samples", e))
}

/// Decodes the values of rows `rows` of the file-layout value columns into `out`.
pub(crate) fn decode_values(
    mantissas: &Int64Array,
    scales: &Int8Array,
    floats: &Float64Array,
    rows: std::ops::Range<usize>,
    out: &mut Vec<f64>,
) -> Result<()> {
    out.reserve(rows.len());
    for row in rows {
        let value = if mantissas.is_valid(row) && scales.is_valid(row) {
            let scale = scales.value(row);
            if !(0..=MAX_SCALE as i8).contains(&scale) {
                return Err(corrupt("scale out of range"));
            }
            decode(mantissas.value(row), scale)
        } else if floats.is_valid(row) {
            floats.value(row)
        } else {
            return Err(corrupt("sample without a value"));
        };
        out.push(value);
    }
    Ok(())
}

/// Footer key (Parquet key-value metadata) of a samples file's run index. Files
/// without it (written before the run index existed) are read by the full-decode path.
pub(crate) const RUNS_KEY: &str = "sightline.sample_runs.v1";

/// Window widths a samples file's rows may be grouped by, narrowest first.
const WINDOWS_MS: [i64; 9] = [
    10 * 60_000,
    15 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    24 * 3_600_000,
];
/// At most this many window boundaries inside one file (so at most this + 1 windows):
/// the run index holds one entry per series and window.
const MAX_WINDOW_CUTS: i64 = 7;

/// The width of the time windows of a file whose samples span `[min_ts, max_ts]`: the
/// narrowest of [`WINDOWS_MS`] that cuts the span at most [`MAX_WINDOW_CUTS`] times.
pub(crate) fn window_ms(min_ts: i64, max_ts: i64) -> i64 {
    let cuts = |width: i64| max_ts.div_euclid(width) - min_ts.div_euclid(width);
    WINDOWS_MS
        .iter()
        .copied()
        .find(|width| cuts(*width) <= MAX_WINDOW_CUTS)
        .unwrap_or_else(|| {
            let span = max_ts.saturating_sub(min_ts).saturating_add(1);
            (span / MAX_WINDOW_CUTS).saturating_add(1)
        })
}

/// Per-series samples cut into the windows of a samples file, and each window into
/// chunks of bounded rows (one row group each), borrowed from the caller: a flush holds
/// no copy of the samples beside the memtable, only the chunk being encoded.
///
/// Rows are grouped by time window (each window its own row groups, so row-group time
/// ranges prune windows), inside a window by series (by metric rank, then id, so one
/// metric's series are contiguous whatever their ids), each series' rows in time order.
/// A run is the rows of one series in one window; a chunk may end inside a run.
pub(crate) struct SampleWindows<'a> {
    series: Vec<(u64, &'a [(i64, f64)])>,
    /// Positions in `series`, in file order (by rank, then id).
    order: Vec<u32>,
    cursors: Vec<usize>,
    width: i64,
    /// The window being cut, and the last one.
    window: i64,
    last: i64,
    /// The next entry of `order` to take rows from in the current window, and whether
    /// its run was already indexed (a chunk ended inside it).
    next_series: usize,
    run_open: bool,
    /// The runs so far, in file order.
    pub runs: RunIndexBuilder,
    /// Rows, smallest and largest time over all series.
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl<'a> SampleWindows<'a> {
    /// `series` are `(id, (time, value) points)`, each in strictly increasing time
    /// order; `ranks` (one per series, in the same order) order them (their metric's
    /// rank), ties by id. Only a permutation is sorted: the list is not copied.
    pub fn new(series: Vec<(u64, &'a [(i64, f64)])>, ranks: &[u32]) -> Self {
        let rank = |i: usize| ranks.get(i).copied().unwrap_or(u32::MAX);
        let mut order: Vec<u32> = (0..series.len() as u32)
            .filter(|i| !series[*i as usize].1.is_empty())
            .collect();
        order.sort_unstable_by_key(|i| (rank(*i as usize), series[*i as usize].0));
        let points = || order.iter().map(|i| series[*i as usize].1);
        let min_ts = points().map(|p| p[0].0).min().unwrap_or(0);
        let max_ts = points()
            .filter_map(|p| p.last().map(|(t, _)| *t))
            .max()
            .unwrap_or(0);
        let rows = points().map(|p| p.len() as u64).sum();
        let width = window_ms(min_ts, max_ts);
        let (window, last) = if order.is_empty() {
            (1, 0)
        } else {
            (min_ts.div_euclid(width), max_ts.div_euclid(width))
        };
        SampleWindows {
            rows,
            cursors: vec![0; series.len()],
            series,
            order,
            width,
            window,
            last,
            next_series: 0,
            run_open: false,
            runs: RunIndexBuilder::default(),
            min_ts,
            max_ts,
        }
    }

    /// Puts the next chunk's stretches (pieces of runs, in file order) in `chunk`: at
    /// most `max_rows` rows, never from two windows. False when no rows are left.
    pub fn next_chunk(&mut self, max_rows: usize, chunk: &mut Vec<&'a [(i64, f64)]>) -> bool {
        chunk.clear();
        let max_rows = max_rows.max(1);
        let mut rows = 0;
        while self.window <= self.last {
            let bound = self.window.saturating_add(1).saturating_mul(self.width);
            while let Some(&position) = self.order.get(self.next_series) {
                if rows == max_rows {
                    return true;
                }
                let (id, points) = self.series[position as usize];
                let cursor = &mut self.cursors[position as usize];
                let from = *cursor;
                let to = from + points[from..].partition_point(|(t, _)| *t < bound);
                if to > from && !self.run_open {
                    self.runs.push(id, (to - from) as u64);
                }
                let take = (to - from).min(max_rows - rows);
                if take > 0 {
                    chunk.push(&points[from..from + take]);
                    rows += take;
                    *cursor = from + take;
                }
                self.run_open = from + take < to;
                if !self.run_open {
                    self.next_series += 1;
                }
            }
            self.window += 1;
            self.next_series = 0;
            if rows > 0 {
                return true;
            }
        }
        false
    }
}

/// Where each series' rows are in a samples file: the runs of the footer's index with
/// their first row.
#[derive(Debug)]
pub(crate) struct SampleRuns {
    /// Series of each run, in file order.
    pub ids: Vec<u64>,
    /// First row of each run, plus the file's row count at the end (`ids.len() + 1`
    /// entries, ascending).
    pub starts: Vec<u64>,
    /// The runs grouped by series, built on the first lookup by series: a read of a few
    /// series finds their runs without walking every run of the file.
    by_series: OnceLock<RunsBySeries>,
}

/// Run numbers grouped by series: the distinct series sorted (searched contiguously),
/// and for each its runs in file order.
#[derive(Debug)]
struct RunsBySeries {
    series: Vec<u64>,
    /// Where each series' runs start in `runs` (`series.len() + 1` entries).
    offsets: Vec<u32>,
    runs: Vec<u32>,
}

impl PartialEq for SampleRuns {
    fn eq(&self, other: &Self) -> bool {
        self.ids == other.ids && self.starts == other.starts
    }
}

impl SampleRuns {
    /// Runs given by series and first row (`starts` has one more entry than `ids`: the
    /// file's row count). At most `u32::MAX` runs.
    pub fn new(ids: Vec<u64>, starts: Vec<u64>) -> Self {
        debug_assert_eq!(ids.len() + 1, starts.len());
        SampleRuns {
            ids,
            starts,
            by_series: OnceLock::new(),
        }
    }

    /// The run numbers of series `id`, ascending (empty when the file has none of it).
    pub fn runs_of(&self, id: u64) -> &[u32] {
        let grouped = self.by_series.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
            order.sort_unstable_by_key(|run| (self.ids[*run as usize], *run));
            let mut series = Vec::new();
            let mut offsets = Vec::new();
            for (at, run) in order.iter().enumerate() {
                let id = self.ids[*run as usize];
                if series.last() != Some(&id) {
                    series.push(id);
                    offsets.push(at as u32);
                }
            }
            offsets.push(order.len() as u32);
            RunsBySeries {
                series,
                offsets,
                runs: order,
            }
        });
        match grouped.series.binary_search(&id) {
            Ok(at) => &grouped.runs[grouped.offsets[at] as usize..grouped.offsets[at + 1] as usize],
            Err(_) => &[],
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The run index of a file being written, kept encoded as it grows (a few bytes per run
/// rather than a 16-byte entry).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RunIndexBuilder {
    raw: Vec<u8>,
    count: u64,
    previous: u64,
}

impl RunIndexBuilder {
    /// Adds the next run, in file order.
    pub(crate) fn push(&mut self, id: u64, rows: u64) {
        let delta = id.wrapping_sub(self.previous) as i64;
        put_varint(&mut self.raw, zigzag(delta) as u64);
        put_varint(&mut self.raw, rows);
        self.previous = id;
        self.count += 1;
    }

    /// The footer text of the runs so far: varints (run count, then per run the zigzag
    /// delta of its id from the previous run's and its row count), zstd-compressed, hex.
    pub(crate) fn finish(&self) -> Result<String> {
        let mut raw = Vec::with_capacity(self.raw.len() + 10);
        put_varint(&mut raw, self.count);
        raw.extend_from_slice(&self.raw);
        let mut packed = Vec::with_capacity(raw.len() / 4 + 16);
        put_varint(&mut packed, raw.len() as u64);
        packed.extend(
            zstd::bulk::compress(&raw, 3)
                .map_err(|e| Error::Task(format!("compressing runs: {e}")))?,
        );
        let mut text = String::with_capacity(packed.len() * 2);
        for byte in packed {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Ok(text)
    }
}

/// Encodes `(series id, rows)` runs as footer text ([`RunIndexBuilder::finish`]).
#[cfg(test)]
pub(crate) fn encode_runs(runs: &[(u64, u64)]) -> Result<String> {
    let mut builder = RunIndexBuilder::default();
    for (id, rows) in runs {
        builder.push(*id, *rows);
    }
    builder.finish()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Decodes [`encode_runs`] text of a file of `file_rows` rows; `None` when it is malformed
/// or does not cover the file exactly (the caller then reads the file without it).
pub(crate) fn decode_runs(text: &str, file_rows: u64) -> Option<SampleRuns> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let packed = text
        .as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some((nibble(*high)? << 4) | nibble(*low)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()?;
    let mut input = packed.as_slice();
    let raw_len = get_varint(&mut input)?;
    // A run takes at least 2 bytes, and a file has at most one run per row.
    let bound = file_rows.saturating_mul(21).saturating_add(10);
    if raw_len > bound {
        return None;
    }
    let raw = zstd::bulk::decompress(input, raw_len as usize).ok()?;
    let mut input = raw.as_slice();
    let count = get_varint(&mut input)?;
    if count > file_rows || count > u64::from(u32::MAX) {
        return None;
    }
    let mut ids = Vec::with_capacity(count as usize);
    let mut starts = Vec::with_capacity(count as usize + 1);
    let (mut id, mut row) = (0u64, 0u64);
    for _ in 0..count {
        let coded = get_varint(&mut input)?;
        let delta = unzigzag(coded as i64);
        id = id.wrapping_add(delta as u64);
        let rows = get_varint(&mut input)?;
        ids.push(id);
        starts.push(row);
        row = row.checked_add(rows)?;
    }
    starts.push(row);
    (row == file_rows && input.is_empty()).then(|| SampleRuns::new(ids, starts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_take_the_integer_path() {
        assert_eq!(to_decimal(12345.0), Some((12345, 0)));
        assert_eq!(to_decimal(0.1), Some((1, 1)));
        assert_eq!(to_decimal(1.234567891), Some((1234567891, 9)));
        assert_eq!(to_decimal(f64::NAN), None);
        assert_eq!(to_decimal(-0.0), None);
        assert_eq!(to_decimal(std::f64::consts::PI), None);
    }

    #[test]
    fn windows_cut_a_span_a_few_times() {
        let hour = 3_600_000;
        assert_eq!(window_ms(0, hour - 1), 10 * 60_000);
        assert_eq!(window_ms(5 * 60_000, 75 * 60_000), 10 * 60_000);
        assert_eq!(window_ms(0, 3 * hour), 30 * 60_000);
        assert_eq!(window_ms(0, 24 * hour - 1), 3 * hour);
        let width = window_ms(0, 30 * 24 * hour);
        assert!((30 * 24 * hour) / width <= MAX_WINDOW_CUTS);
    }

    #[test]
    fn windows_group_by_time_then_metric_and_index_runs() {
        let minute = 60_000;
        // Ids 0 and 2 are metric rank 1, id 1 is rank 0.
        let (s0, s1, s2) = (
            [(0, 1.0), (5 * minute, 2.0), (12 * minute, 3.0)],
            [(minute, 4.0), (11 * minute, 5.0)],
            [(15 * minute, 6.0)],
        );
        let series: Vec<(u64, &[(i64, f64)])> = vec![(0, &s0), (1, &s1), (2, &s2)];
        let ranks = [1, 0, 1];
        let mut windows = SampleWindows::new(series.clone(), &ranks);
        assert_eq!(
            (windows.rows, windows.min_ts, windows.max_ts),
            (6, 0, 15 * minute)
        );
        let mut chunk = Vec::new();
        assert!(windows.next_chunk(100, &mut chunk));
        assert_eq!(chunk, vec![&s1[..1], &s0[..2]]);
        assert!(windows.next_chunk(100, &mut chunk));
        assert_eq!(chunk, vec![&s1[1..], &s0[2..], &s2[..]]);
        assert!(!windows.next_chunk(100, &mut chunk));
        assert!(chunk.is_empty());
        // Chunks of 2 rows end inside a run; the run is indexed once, whole.
        let mut small = SampleWindows::new(series, &ranks);
        let mut chunks = Vec::new();
        while small.next_chunk(2, &mut chunk) {
            chunks.push(chunk.clone());
        }
        assert_eq!(
            chunks,
            vec![
                vec![&s1[..1], &s0[..1]],
                vec![&s0[1..2]],
                vec![&s1[1..], &s0[2..]],
                vec![&s2[..]],
            ]
        );
        assert_eq!(small.runs, windows.runs);
        let text = windows.runs.finish().unwrap();
        assert_eq!(
            text,
            encode_runs(&[(1, 1), (0, 2), (1, 1), (0, 1), (2, 1)]).unwrap()
        );
        let runs = decode_runs(&text, 6).unwrap();
        assert_eq!(runs.ids, vec![1, 0, 1, 0, 2]);
        assert_eq!(runs.starts, vec![0, 1, 3, 4, 5, 6]);
        // Runs by series, in file order; none for a series the file lacks.
        assert_eq!(runs.runs_of(0), &[1, 3]);
        assert_eq!(runs.runs_of(1), &[0, 2]);
        assert_eq!(runs.runs_of(2), &[4]);
        assert!(runs.runs_of(3).is_empty());
        // An index that does not cover the file, or is not ours, is refused.
        assert!(decode_runs(&text, 7).is_none());
        assert!(decode_runs("zz", 6).is_none());
        assert!(decode_runs("", 0).is_none());
    }

    proptest! {
        #[test]
        fn runs_survive_encoding(runs in prop::collection::vec((any::<u64>(), 1u64..5000), 0..300)) {
            let rows: u64 = runs.iter().map(|(_, r)| r).sum();
            let decoded = decode_runs(&encode_runs(&runs).unwrap(), rows).unwrap();
            prop_assert_eq!(decoded.ids, runs.iter().map(|(id, _)| *id).collect::<Vec<_>>());
            let mut start = 0;
            for (i, (_, r)) in runs.iter().enumerate() {
                prop_assert_eq!(decoded.starts[i], start);
                start += r;
            }
            prop_assert_eq!(decoded.starts[runs.len()], rows);
        }

        #[test]
        fn values_survive_bit_exact(values in prop::collection::vec(prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
            (0i64..10_000_000_000).prop_map(|ns| ns as f64 / 1e9),
            Just(f64::from_bits(0x7ff0_0000_0000_0002)),
        ], 1..50)) {
            let n = values.len();
            let batch = crate::model::samples_batch(vec![1; n], (0..n as i64).collect(), values.clone()).unwrap();
            let back = from_file(&to_file(&batch).unwrap()).unwrap();
            let got = back.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
            let bits: Vec<u64> = got.values().iter().map(|v| v.to_bits()).collect();
            let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(bits, want);
        }

        /// Delta-coded stretches decode bit-exact, whether read from the first row on or
        /// from any stretch start alone.
        #[test]
        fn delta_stretches_survive_bit_exact(
            stretches in prop::collection::vec(
                (1usize..40, prop_oneof![
                    Just(0u8), Just(1u8), Just(2u8), Just(3u8)
                ], any::<u64>()),
                1..12,
            ),
        ) {
            let (mut ids, mut ts, mut values, mut lens) = (vec![], vec![], vec![], vec![]);
            for (at, (len, kind, seed)) in stretches.iter().enumerate() {
                let mut state = *seed;
                let mut next = || {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    state >> 11
                };
                let mut counter = (next() % 1_000_000) as f64;
                for i in 0..*len {
                    ids.push(at as u64);
                    ts.push(1_700_000_000_000 + (i as i64) * 15_000 + (next() % 3) as i64 - at as i64 * 7);
                    values.push(match kind {
                        0 => { counter += (next() % 100) as f64; counter }
                        1 => (next() % 10_000_000_000) as f64 / 1e9,
                        2 => f64::from_bits((next() << 11) | (next() % 2048)),
                        _ => [f64::NAN, f64::INFINITY, -0.0, 0.1, 1e300, 12.5][(next() % 6) as usize],
                    });
                }
                lens.push(*len);
            }
            let points: Vec<(i64, f64)> = ts.iter().copied().zip(values.iter().copied()).collect();
            let mut pieces: Vec<&[(i64, f64)]> = Vec::new();
            let mut at = 0;
            for len in &lens {
                pieces.push(&points[at..at + len]);
                at += len;
            }
            let batch = to_delta_file(&pieces).unwrap();
            let mut starts = vec![0u64];
            for len in &lens {
                starts.push(starts.last().unwrap() + *len as u64);
            }
            let stretches: Vec<(u64, u64)> = starts[..lens.len()]
                .iter()
                .enumerate()
                .map(|(at, start)| (*start, at as u64))
                .collect();
            // Decoded whole, and in batches cut anywhere.
            let cut = (starts[lens.len()] as usize / 3).max(1);
            let pieces = vec![batch.slice(0, cut), batch.slice(cut, batch.num_rows() - cut)];
            let whole = from_delta_file(&pieces, &stretches).unwrap();
            let whole = arrow::compute::concat_batches(&SAMPLES_SCHEMA, &whole).unwrap();
            let got_ids = whole.column(0).as_any().downcast_ref::<UInt64Array>().unwrap();
            let got_ts = whole.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            let got = whole.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
            prop_assert_eq!(got_ids.values().to_vec(), ids.clone());
            prop_assert_eq!(got_ts.values().to_vec(), ts.clone());
            let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(got.values()), bits(&values));
            // Each stretch alone, as a planned read starts it.
            let columns = DeltaColumns::of(&batch).unwrap();
            for window in starts.windows(2) {
                let (from, to) = (window[0] as usize, window[1] as usize);
                let (mut times, mut decoded) = (vec![], vec![]);
                columns.decode(from..to, &mut DeltaState::default(), &mut times, &mut decoded).unwrap();
                prop_assert_eq!(&times[..], &ts[from..to]);
                prop_assert_eq!(bits(&decoded), bits(&values[from..to]));
            }
        }
    }

    #[test]
    fn group_times_round_trip() {
        let ranges = vec![(-5, 10), (i64::MIN, i64::MAX), (7, 7)];
        assert_eq!(
            decode_group_times(&encode_group_times(&ranges), 3),
            Some(ranges.clone())
        );
        assert_eq!(decode_group_times(&encode_group_times(&ranges), 2), None);
        assert_eq!(decode_group_times("1:x", 1), None);
        assert_eq!(decode_group_times("", 0), Some(vec![]));
    }
}
