//! The on-disk layout of samples: values that are decimals with few digits (counters,
//! integer gauges, Micrometer's nanosecond-based seconds) are stored as an integer
//! mantissa plus a power-of-ten scale, which delta-codes to a few bits per sample;
//! other values (NaN, ±Inf, staleness markers, full-precision floats) stay f64. The
//! mapping is exact: a value takes the decimal path only if it decodes to the same bits.

use std::sync::{Arc, LazyLock};

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
    for row in 0..batch.num_rows() {
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
        values.push(value);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.clone()),
        batch.column(1).clone(),
        Arc::new(Float64Array::from(values)),
    ];
    RecordBatch::try_new(SAMPLES_SCHEMA.clone(), columns)
        .map_err(|e| Error::arrow("decoding samples", e))
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

    proptest! {
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
