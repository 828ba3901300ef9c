//! Log rows as the log read side sees them, read from storage batches, and the Loki
//! view of a row: its stream labels and its structured metadata.
//!
//! Whatever protocol carried a line, its stream gets `service_name` and, when the
//! severity is known, `detected_level`. A Loki stream's own labels come back as they
//! were pushed; OTLP resource attributes Loki would index (`service.name`,
//! `k8s.pod.name`…) become labels with dots turned into underscores; every other
//! attribute is structured metadata, usable in label filters but not a stream label.

use std::collections::BTreeMap;

use arrow::array::{
    Array, FixedSizeBinaryArray, Int32Array, MapArray, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use serde::Serialize;

use crate::{Error, Result};

/// A label set, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One stored log record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// Event time, Unix nanoseconds.
    pub ts_ns: i64,
    /// Emitting service.
    pub service: String,
    /// Emitting replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Severity as written by the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// OTLP severity number (0 when unknown).
    pub severity_number: i32,
    /// The log line.
    pub body: String,
    /// Trace id, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Span id, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Record attributes.
    pub attributes: Labels,
    /// Resource attributes (a Loki stream's labels).
    pub resource: Labels,
}

/// OTLP resource attributes Loki turns into stream labels by default.
const INDEXED_RESOURCE: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Turns an attribute key into a valid Loki label name (`service.name` → `service_name`).
pub fn label_name(key: &str) -> String {
    let mut out: String = key
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
        out.insert(0, '_');
    }
    out
}

/// Loki's `detected_level` name for a severity: from the number, else from the text.
pub fn level_of(severity_number: i32, severity: Option<&str>) -> Option<&'static str> {
    let from_number = match severity_number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=20 => Some("error"),
        21..=24 => Some("fatal"),
        _ => None,
    };
    from_number.or_else(|| {
        Some(match severity?.trim().to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" | "dbug" => "debug",
            "info" | "information" | "notice" => "info",
            "warn" | "warning" | "wrn" => "warn",
            "error" | "err" | "eror" | "severe" => "error",
            "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => "fatal",
            _ => return None,
        })
    })
}

impl LogLine {
    /// The canonical level (`error`, `warn`…) when known.
    pub fn level(&self) -> Option<&'static str> {
        level_of(self.severity_number, self.severity.as_deref())
    }

    /// The Loki stream labels of this line.
    pub fn stream_labels(&self) -> Labels {
        let mut labels = Labels::new();
        for (key, value) in &self.resource {
            if !key.contains('.') || INDEXED_RESOURCE.contains(&key.as_str()) {
                labels.insert(label_name(key), value.clone());
            }
        }
        labels
            .entry("service_name".into())
            .or_insert_with(|| self.service.clone());
        if let Some(level) = self.level()
            && !labels.contains_key("level")
        {
            labels.insert("detected_level".into(), level.into());
        }
        labels
    }

    /// The structured metadata of this line: attributes, resource attributes that are
    /// not stream labels, trace and span ids.
    pub fn metadata(&self) -> Labels {
        let mut out = Labels::new();
        for (key, value) in &self.resource {
            if key.contains('.') && !INDEXED_RESOURCE.contains(&key.as_str()) {
                out.insert(label_name(key), value.clone());
            }
        }
        for (key, value) in &self.attributes {
            out.insert(label_name(key), value.clone());
        }
        if let Some(trace) = &self.trace_id {
            out.insert("trace_id".into(), trace.clone());
        }
        if let Some(span) = &self.span_id {
            out.insert("span_id".into(), span.clone());
        }
        out
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Internal(format!("logs batch column {name} has an unexpected type")))
}

fn string(array: &StringArray, row: usize) -> Option<String> {
    array.is_valid(row).then(|| array.value(row).to_string())
}

fn hex(array: &FixedSizeBinaryArray, row: usize) -> Option<String> {
    if !array.is_valid(row) {
        return None;
    }
    let bytes = array.value(row);
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
    }
    Some(out)
}

fn map(array: &MapArray, row: usize) -> Labels {
    let mut out = Labels::new();
    if !array.is_valid(row) {
        return out;
    }
    let entries = array.value(row);
    let keys = entries.column(0).as_any().downcast_ref::<StringArray>();
    let values = entries.column(1).as_any().downcast_ref::<StringArray>();
    if let (Some(keys), Some(values)) = (keys, values) {
        for i in 0..keys.len() {
            out.insert(
                keys.value(i).to_string(),
                if values.is_valid(i) {
                    values.value(i).to_string()
                } else {
                    String::new()
                },
            );
        }
    }
    out
}

/// Reads the rows of a logs batch that `keep` accepts (called with time and body first,
/// to skip building rows that are dropped anyway).
pub fn read_batch(
    batch: &RecordBatch,
    mut keep: impl FnMut(i64, &str) -> bool,
    out: &mut Vec<LogLine>,
) -> Result<()> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let ts = column::<TimestampNanosecondArray>(batch, "timestamp")?;
    let service = column::<StringArray>(batch, "service")?;
    let instance = column::<StringArray>(batch, "instance")?;
    let severity = column::<StringArray>(batch, "severity_text")?;
    let severity_number = column::<Int32Array>(batch, "severity_number")?;
    let body = column::<StringArray>(batch, "body")?;
    let trace = column::<FixedSizeBinaryArray>(batch, "trace_id")?;
    let span = column::<FixedSizeBinaryArray>(batch, "span_id")?;
    let attributes = column::<MapArray>(batch, "attributes")?;
    let resource = column::<MapArray>(batch, "resource")?;
    for row in 0..batch.num_rows() {
        let time = ts.value(row);
        if !keep(time, body.value(row)) {
            continue;
        }
        out.push(LogLine {
            ts_ns: time,
            service: service.value(row).to_string(),
            instance: string(instance, row),
            severity: string(severity, row),
            severity_number: severity_number.value(row),
            body: body.value(row).to_string(),
            trace_id: hex(trace, row),
            span_id: hex(span, row),
            attributes: map(attributes, row),
            resource: map(resource, row),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(resource: &[(&str, &str)], severity: Option<&str>, number: i32) -> LogLine {
        LogLine {
            ts_ns: 1,
            service: "api".into(),
            instance: None,
            severity: severity.map(str::to_string),
            severity_number: number,
            body: "x".into(),
            trace_id: Some("ab".into()),
            span_id: None,
            attributes: [("http.status".to_string(), "500".to_string())].into(),
            resource: resource
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn loki_labels_come_back_and_otlp_resources_are_mapped() {
        let loki = line(&[("job", "ns/api"), ("level", "warn")], Some("warn"), 13);
        let labels = loki.stream_labels();
        assert_eq!(labels["job"], "ns/api");
        assert_eq!(labels["level"], "warn");
        assert_eq!(labels["service_name"], "api");
        assert!(!labels.contains_key("detected_level"));
        let otlp = line(&[("service.name", "api"), ("process.pid", "7")], None, 17);
        let labels = otlp.stream_labels();
        assert_eq!(labels.len(), 2, "{labels:?}");
        assert_eq!(labels["detected_level"], "error");
        let metadata = otlp.metadata();
        assert_eq!(metadata["process_pid"], "7");
        assert_eq!(metadata["http_status"], "500");
        assert_eq!(metadata["trace_id"], "ab");
        assert_eq!(line(&[], Some("ERR"), 0).level(), Some("error"));
    }
}
