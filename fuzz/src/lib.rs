//! Invariants shared by the fuzz targets: what every accepted output must satisfy.

use std::collections::HashSet;

use storage::metrics::MetricsWrite;
use storage::model::{LogRecord, SpanRecord};
use storage::series::METRIC_NAME_LABEL;

/// The server clock every target pretends it is (2026-01-01T00:00:00Z), so runs reproduce.
pub const NOW_NS: i64 = 1_767_225_600_000_000_000;
/// [`NOW_NS`] in milliseconds.
pub const NOW_MS: i64 = NOW_NS / 1_000_000;
/// One hour: how far ahead of the clock every receiver accepts timestamps.
pub const HOUR_NS: i64 = 3_600 * 1_000_000_000;
/// The output cap the `decompress` target configures.
pub const DECOMPRESS_CAP: u64 = 1024;

/// Every stored label set names its metric, is sorted with unique non-empty names and
/// no empty values, and the same label set never appears as two series of one write.
pub fn check_metrics_write(
    write: &MetricsWrite,
    max_labels: Option<usize>,
    max_value: Option<usize>,
) {
    let mut seen = HashSet::new();
    for series in &write.series {
        let labels = &series.labels;
        assert!(
            !labels.metric_name().is_empty(),
            "stored series without {METRIC_NAME_LABEL}: {labels:?}"
        );
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        for window in pairs.windows(2) {
            assert!(
                window[0].0 < window[1].0,
                "labels not sorted/unique: {labels:?}"
            );
        }
        for (name, value) in &pairs {
            assert!(!name.is_empty(), "empty label name: {labels:?}");
            assert!(!value.is_empty(), "empty label value kept: {labels:?}");
            if let Some(max) = max_value {
                assert!(value.len() <= max, "label value over {max} bytes accepted");
            }
        }
        if let Some(max) = max_labels {
            assert!(
                labels.len() <= max,
                "{} labels accepted, limit {max}",
                labels.len()
            );
        }
        assert!(
            !series.samples.is_empty() || !series.exemplars.is_empty(),
            "series stored with nothing in it: {labels:?}"
        );
        assert!(
            seen.insert(labels.clone()),
            "label set stored twice: {labels:?}"
        );
    }
}

/// A kept span has a trace id, a start no later than an hour ahead, a non-negative
/// duration. (A zero span id is checked by the OTLP targets only: Zipkin's decoder
/// does not refuse one.)
pub fn check_span(span: &SpanRecord, now_ns: i64) {
    assert!(!span.trace_id.is_zero(), "span kept with a zero trace id");
    assert!(
        span.start_ns <= now_ns.saturating_add(HOUR_NS),
        "span starting {} ns kept, more than 1h after {now_ns}",
        span.start_ns
    );
    assert!(
        span.duration_ns >= 0,
        "negative duration {}",
        span.duration_ns
    );
}

/// A kept log record is stamped no later than an hour ahead and has no zero ids.
pub fn check_log(record: &LogRecord, now_ns: i64) {
    assert!(
        record.timestamp_ns <= now_ns.saturating_add(HOUR_NS),
        "log record stamped {} ns kept, more than 1h after {now_ns}",
        record.timestamp_ns
    );
    if let Some(trace) = &record.trace_id {
        assert!(!trace.is_zero(), "log record kept with a zero trace id");
    }
}

/// A label name as Prometheus and Loki allow it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
