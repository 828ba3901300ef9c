//! Prometheus conventions the OTLP metrics mapping follows: metric and label name
//! sanitising, how bounds print, the staleness marker, exponential bucket bounds and
//! exemplars.

use proto::otlp::{Exemplar as OtlpExemplar, ExponentialHistogramDataPoint, exemplar};
use storage::metrics::Exemplar;
use storage::model::Attributes;

use super::convert::{insert_attributes, nanos, span_id, trace_id};

/// Prometheus' staleness marker, a signalling NaN with this exact bit pattern.
pub(crate) const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Nanoseconds per millisecond (OTLP times are ns, samples ms).
pub(crate) const NS_PER_MS: i64 = 1_000_000;

/// A metric name with every character outside `[a-zA-Z0-9_:]` replaced by `_`.
pub(crate) fn metric_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label name matching `[a-zA-Z_][a-zA-Z0-9_]*` (a leading digit gets `key_`).
pub(crate) fn label_name(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{out}")
    } else {
        out
    }
}

/// A bound as Prometheus prints `le` and `quantile`: shortest form, `+Inf`/`-Inf`.
pub(crate) fn bound_text(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_string()
    } else if bound == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        bound.to_string()
    }
}

/// `(upper bound, count)` of an exponential histogram's buckets, ascending: negative
/// buckets (`-base^i`), the zero bucket (`zero_threshold`), positive buckets (`base^(i+1)`).
pub(crate) fn exponential_bounds(point: &ExponentialHistogramDataPoint) -> Vec<(f64, u64)> {
    let step = (-f64::from(point.scale)).exp2();
    let power = |index: i64| (index as f64 * step).exp2();
    let mut out = Vec::new();
    if let Some(negative) = &point.negative {
        for (k, count) in negative.bucket_counts.iter().enumerate().rev() {
            let index = i64::from(negative.offset) + k as i64;
            out.push((-power(index), *count));
        }
    }
    out.push((point.zero_threshold.max(0.0), point.zero_count));
    if let Some(positive) = &point.positive {
        for (k, count) in positive.bucket_counts.iter().enumerate() {
            let index = i64::from(positive.offset) + k as i64;
            out.push((power(index + 1), *count));
        }
    }
    out
}

pub(crate) fn convert_exemplar(exemplar: &OtlpExemplar) -> Exemplar {
    let value = match exemplar.value {
        Some(exemplar::Value::AsDouble(value)) => value,
        Some(exemplar::Value::AsInt(value)) => value as f64,
        None => 0.0,
    };
    let mut labels = Attributes::new();
    insert_attributes(&mut labels, &exemplar.filtered_attributes);
    Exemplar {
        ts_ms: nanos(exemplar.time_unix_nano).div_euclid(NS_PER_MS),
        value,
        trace_id: trace_id(&exemplar.trace_id).ok().flatten(),
        span_id: span_id(&exemplar.span_id).ok().flatten(),
        labels,
    }
}
