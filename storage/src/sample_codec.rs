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
    Array, ArrayRef, Float64Array, Int8Array, Int64Array, RecordBatch, UInt64Array,
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

/// The Parquet schema of samples files.
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

/// Converts a [`SAMPLES_SCHEMA`] batch to the file layout.
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

/// Per-series samples cut into the windows of a samples file, one window at a time
/// (so a flush holds one window's columns beside its input, not a second copy of all).
///
/// Rows are grouped by time window (each window its own row groups, so row-group time
/// statistics prune windows), inside a window by series (by metric rank, then id, so
/// one metric's series are contiguous whatever their ids), each series' rows in time
/// order. A run is the rows of one series in one window.
pub(crate) struct SampleWindows {
    series: Vec<(u64, Vec<i64>, Vec<f64>)>,
    cursors: Vec<usize>,
    width: i64,
    next: i64,
    last: i64,
    /// `(series id, rows)` of each run so far, in file order.
    pub runs: Vec<(u64, u64)>,
    /// Rows, smallest and largest time over all series.
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// The columns of one window: series ids, times, values.
pub(crate) type WindowColumns = (Vec<u64>, Vec<i64>, Vec<f64>);

impl SampleWindows {
    /// `series` are each in strictly increasing time order; `rank` orders series (their
    /// metric's rank), ties by id.
    pub fn new(mut series: Vec<(u64, Vec<i64>, Vec<f64>)>, rank: impl Fn(u64) -> u32) -> Self {
        series.retain(|(_, ts, _)| !ts.is_empty());
        series.sort_by_key(|(id, _, _)| (rank(*id), *id));
        let min_ts = series.iter().map(|(_, ts, _)| ts[0]).min().unwrap_or(0);
        let max_ts = series
            .iter()
            .filter_map(|(_, ts, _)| ts.last().copied())
            .max()
            .unwrap_or(0);
        let width = window_ms(min_ts, max_ts);
        let (next, last) = if series.is_empty() {
            (1, 0)
        } else {
            (min_ts.div_euclid(width), max_ts.div_euclid(width))
        };
        SampleWindows {
            rows: series.iter().map(|(_, ts, _)| ts.len() as u64).sum(),
            cursors: vec![0; series.len()],
            series,
            width,
            next,
            last,
            runs: Vec::new(),
            min_ts,
            max_ts,
        }
    }

    /// The next window with rows, in file order.
    pub fn next_window(&mut self) -> Option<WindowColumns> {
        while self.next <= self.last {
            let bound = self.next.saturating_add(1).saturating_mul(self.width);
            self.next += 1;
            let (mut ids, mut ts, mut values) = (Vec::new(), Vec::new(), Vec::new());
            for ((id, times, points), cursor) in self.series.iter().zip(self.cursors.iter_mut()) {
                let from = *cursor;
                let to = from + times[from..].partition_point(|t| *t < bound);
                if to == from {
                    continue;
                }
                ids.extend(std::iter::repeat_n(*id, to - from));
                ts.extend_from_slice(&times[from..to]);
                values.extend_from_slice(&points[from..to]);
                self.runs.push((*id, (to - from) as u64));
                *cursor = to;
            }
            if !ts.is_empty() {
                return Some((ids, ts, values));
            }
        }
        None
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

/// Encodes runs as footer text: varints (run count, then per run the zigzag delta of
/// its id from the previous run's and its row count), zstd-compressed, hex.
pub(crate) fn encode_runs(runs: &[(u64, u64)]) -> Result<String> {
    let mut raw = Vec::with_capacity(runs.len() * 3 + 10);
    put_varint(&mut raw, runs.len() as u64);
    let mut previous = 0u64;
    for (id, rows) in runs {
        let delta = id.wrapping_sub(previous) as i64;
        put_varint(&mut raw, ((delta << 1) ^ (delta >> 63)) as u64);
        put_varint(&mut raw, *rows);
        previous = *id;
    }
    let mut packed = Vec::with_capacity(raw.len() / 4 + 16);
    put_varint(&mut packed, raw.len() as u64);
    packed.extend(
        zstd::bulk::compress(&raw, 3).map_err(|e| Error::Task(format!("compressing runs: {e}")))?,
    );
    let mut text = String::with_capacity(packed.len() * 2);
    for byte in packed {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Ok(text)
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
        let zigzag = get_varint(&mut input)?;
        let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
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
        let series = vec![
            (0, vec![0, 5 * minute, 12 * minute], vec![1.0, 2.0, 3.0]),
            (1, vec![minute, 11 * minute], vec![4.0, 5.0]),
            (2, vec![15 * minute], vec![6.0]),
        ];
        let mut windows = SampleWindows::new(series, |id| if id == 1 { 0 } else { 1 });
        assert_eq!(
            (windows.rows, windows.min_ts, windows.max_ts),
            (6, 0, 15 * minute)
        );
        assert_eq!(
            windows.next_window(),
            Some((
                vec![1, 0, 0],
                vec![minute, 0, 5 * minute],
                vec![4.0, 1.0, 2.0]
            ))
        );
        assert_eq!(
            windows.next_window(),
            Some((
                vec![1, 0, 2],
                vec![11 * minute, 12 * minute, 15 * minute],
                vec![5.0, 3.0, 6.0]
            ))
        );
        assert_eq!(windows.next_window(), None);
        assert_eq!(windows.runs, vec![(1, 1), (0, 2), (1, 1), (0, 1), (2, 1)]);
        let runs = decode_runs(&encode_runs(&windows.runs).unwrap(), 6).unwrap();
        assert_eq!(runs.ids, vec![1, 0, 1, 0, 2]);
        assert_eq!(runs.starts, vec![0, 1, 3, 4, 5, 6]);
        // Runs by series, in file order; none for a series the file lacks.
        assert_eq!(runs.runs_of(0), &[1, 3]);
        assert_eq!(runs.runs_of(1), &[0, 2]);
        assert_eq!(runs.runs_of(2), &[4]);
        assert!(runs.runs_of(3).is_empty());
        // An index that does not cover the file, or is not ours, is refused.
        assert!(decode_runs(&encode_runs(&windows.runs).unwrap(), 7).is_none());
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
    }
}
