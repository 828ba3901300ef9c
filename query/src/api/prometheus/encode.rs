//! JSON encoding of the Prometheus HTTP API: the response envelope, sample values as
//! strings (`"NaN"`, `"+Inf"`, Go's shortest float formatting), timestamps as seconds
//! with millisecond precision, and the four result types (PROTOCOLS.md §1.1, §1.3).
//!
//! Written by hand into a `String` so that numbers come out byte-for-byte as
//! Prometheus writes them (`1435781451.050`, `"1e-07"`), which `serde_json` cannot do.

use std::fmt::Write as _;

use storage::series::Labels;

use crate::promql::{InstantSample, RangeSeries, Value};

/// Appends `value` as a JSON string the way Prometheus formats sample values
/// (Go `strconv.FormatFloat` with `'f'`, or `'e'` when |v| < 1e-6 or ≥ 1e21).
pub fn push_value(out: &mut String, value: f64) {
    out.push('"');
    push_float_text(out, value);
    out.push('"');
}

/// Appends the text of a float as Go's `strconv.FormatFloat(v, f|e, -1, 64)` writes it.
pub fn push_float_text(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        // Rust writes `1.5e-7`; Go writes `1.5e-07` (sign always, two digits at least).
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{value}");
    }
}

/// Appends a Unix-millisecond timestamp as JSON seconds: the integer part, then `.`
/// and exactly three digits only when the milliseconds are not zero.
pub fn push_timestamp(out: &mut String, t_ms: i64) {
    if t_ms < 0 {
        out.push('-');
    }
    let magnitude = t_ms.unsigned_abs();
    let (seconds, millis) = (magnitude / 1000, magnitude % 1000);
    if millis == 0 {
        let _ = write!(out, "{seconds}");
    } else {
        let _ = write!(out, "{seconds}.{millis:03}");
    }
}

/// Appends a JSON string literal (escaped).
pub fn push_str(out: &mut String, text: &str) {
    // serde_json escaping of a &str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string()));
}

/// Appends a label set as a JSON object.
pub fn push_labels(out: &mut String, labels: &Labels) {
    push_pairs(out, labels.iter());
}

/// Appends name/value pairs as a JSON object.
pub fn push_pairs<'a>(out: &mut String, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (index, (name, value)) in pairs.enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_str(out, name);
        out.push(':');
        push_str(out, value);
    }
    out.push('}');
}

/// Appends a list of strings as a JSON array.
pub fn push_string_list<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_str(out, item.as_ref());
    }
    out.push(']');
}

/// Appends `[ts, "value"]`.
fn push_point(out: &mut String, t_ms: i64, value: f64) {
    out.push('[');
    push_timestamp(out, t_ms);
    out.push(',');
    push_value(out, value);
    out.push(']');
}

fn push_instant_sample(out: &mut String, sample: &InstantSample) {
    out.push_str("{\"metric\":");
    push_labels(out, &sample.labels);
    out.push_str(",\"value\":");
    push_point(out, sample.t_ms, sample.v);
    out.push('}');
}

fn push_range_series(out: &mut String, series: &RangeSeries) {
    out.push_str("{\"metric\":");
    push_labels(out, &series.labels);
    out.push_str(",\"values\":[");
    for (index, (t_ms, value)) in series.points.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_point(out, *t_ms, *value);
    }
    out.push_str("]}");
}

/// Appends `{"resultType":…,"result":…}` for a query result.
pub fn push_query_data(out: &mut String, value: &Value) {
    match value {
        Value::Scalar { t_ms, v } => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            push_point(out, *t_ms, *v);
        }
        Value::String { t_ms, v } => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            push_timestamp(out, *t_ms);
            out.push(',');
            push_str(out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (index, sample) in samples.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_instant_sample(out, sample);
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (index, one) in series.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_range_series(out, one);
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// Builds a success envelope around already-encoded `data`; empty annotation lists
/// are left out.
pub fn success(data: &str, warnings: &[String], infos: &[String]) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("{\"status\":\"success\",\"data\":");
    out.push_str(data);
    if !warnings.is_empty() {
        out.push_str(",\"warnings\":");
        push_string_list(&mut out, warnings);
    }
    if !infos.is_empty() {
        out.push_str(",\"infos\":");
        push_string_list(&mut out, infos);
    }
    out.push('}');
    out
}

/// Builds an error envelope.
pub fn error(error_type: &str, message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 64);
    out.push_str("{\"status\":\"error\",\"errorType\":");
    push_str(&mut out, error_type);
    out.push_str(",\"error\":");
    push_str(&mut out, message);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_text(value: f64) -> String {
        let mut out = String::new();
        push_value(&mut out, value);
        out
    }

    fn timestamp_text(t_ms: i64) -> String {
        let mut out = String::new();
        push_timestamp(&mut out, t_ms);
        out
    }

    #[test]
    fn values_as_prometheus_writes_them() {
        assert_eq!(value_text(1.0), "\"1\"");
        assert_eq!(value_text(3.25), "\"3.25\"");
        assert_eq!(value_text(0.1 + 0.2), "\"0.30000000000000004\"");
        assert_eq!(value_text(-0.0), "\"-0\"");
        assert_eq!(value_text(f64::NAN), "\"NaN\"");
        assert_eq!(value_text(f64::INFINITY), "\"+Inf\"");
        assert_eq!(value_text(f64::NEG_INFINITY), "\"-Inf\"");
        assert_eq!(value_text(1e-7), "\"1e-07\"");
        assert_eq!(value_text(-1.5e-7), "\"-1.5e-07\"");
        assert_eq!(value_text(0.000001), "\"0.000001\"");
        assert_eq!(value_text(1e20), "\"100000000000000000000\"");
        assert_eq!(value_text(1e21), "\"1e+21\"");
        assert_eq!(value_text(1.2345e300), "\"1.2345e+300\"");
        assert_eq!(value_text(5e-324), "\"5e-324\"");
    }

    #[test]
    fn timestamps_as_prometheus_writes_them() {
        assert_eq!(timestamp_text(1_435_781_451_781), "1435781451.781");
        assert_eq!(timestamp_text(1_435_781_451_050), "1435781451.050");
        assert_eq!(timestamp_text(1_435_781_451_000), "1435781451");
        assert_eq!(timestamp_text(4_000), "4");
        assert_eq!(timestamp_text(0), "0");
        assert_eq!(timestamp_text(-500), "-0.500");
        assert_eq!(timestamp_text(-1_500), "-1.500");
        assert_eq!(timestamp_text(-2_000), "-2");
    }

    #[test]
    fn envelopes_and_results() {
        let mut data = String::new();
        push_query_data(&mut data, &Value::Scalar { t_ms: 4000, v: 2.0 });
        assert_eq!(data, r#"{"resultType":"scalar","result":[4,"2"]}"#);
        let labels = Labels::new(vec![
            ("job".into(), "a\"pi".into()),
            ("__name__".into(), "up".into()),
        ])
        .unwrap();
        let mut data = String::new();
        push_query_data(
            &mut data,
            &Value::Matrix(vec![RangeSeries {
                labels: labels.clone(),
                points: vec![(1000, 1.0), (16_500, f64::NAN)],
            }]),
        );
        assert_eq!(
            data,
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a\"pi"},"values":[[1,"1"],[16.500,"NaN"]]}]}"#
        );
        let mut data = String::new();
        push_query_data(&mut data, &Value::Vector(Vec::new()));
        assert_eq!(data, r#"{"resultType":"vector","result":[]}"#);
        let body = success("[]", &["w".into()], &[]);
        assert_eq!(body, r#"{"status":"success","data":[],"warnings":["w"]}"#);
        let parsed: serde_json::Value =
            serde_json::from_str(&error("bad_data", "parse \"error\"")).unwrap();
        assert_eq!(parsed["errorType"], "bad_data");
        assert_eq!(parsed["error"], "parse \"error\"");
        assert_eq!(parsed["status"], "error");
    }
}
