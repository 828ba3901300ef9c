//! A Loki stream's entries → our [`LogRecord`]s.
//!
//! Service from the `service_name`/`service`/`app`/`job`/`container` label, instance
//! from `pod`/`instance`/`host`, severity from `level`/`detected_level` (label, then
//! structured metadata, then the line), trace id from structured metadata or the
//! logback text (`severity`/`lvl` also name the level, as python-logging-loki and
//! logfmt write it). Stream labels go to `resource`, structured metadata to `attributes`.

use proto::TraceId;
use storage::model::{Attributes, LogRecord};

use super::decode::Stream;
use crate::normalize;

/// The service name used when a stream has none of the service labels.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
const SERVICE_LABELS: [&str; 5] = ["service_name", "service", "app", "job", "container"];
const INSTANCE_LABELS: [&str; 3] = ["pod", "instance", "host"];
const LEVEL_KEYS: [&str; 4] = ["level", "detected_level", "severity", "lvl"];

fn first_of(map: &Attributes, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| map.get(*key))
        .filter(|v| !v.is_empty())
        .cloned()
}

/// Maps every entry of `stream`; `now_ns` is the observed time.
pub fn stream_to_records(stream: Stream, now_ns: i64, out: &mut Vec<LogRecord>) {
    let resource: Attributes = stream.labels.into_iter().collect();
    let service =
        first_of(&resource, &SERVICE_LABELS).unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    let instance = first_of(&resource, &INSTANCE_LABELS);
    let stream_level = first_of(&resource, &LEVEL_KEYS);
    for entry in stream.entries {
        let attributes: Attributes = entry.metadata.into_iter().collect();
        let severity_text = stream_level
            .clone()
            .or_else(|| first_of(&attributes, &LEVEL_KEYS))
            .or_else(|| normalize::severity_in_text(&entry.line).map(str::to_string));
        let severity_number = severity_text
            .as_deref()
            .map_or(0, normalize::severity_number);
        let context = normalize::trace_context_in_attributes(&attributes)
            .or_else(|| {
                attributes
                    .get("traceID")
                    .and_then(|text| TraceId::parse_lenient(text.trim()).ok())
                    .filter(|trace| !trace.is_zero())
                    .map(|trace| (trace, None))
            })
            .or_else(|| normalize::trace_context_in_text(&entry.line));
        let (trace_id, span_id) = match context {
            Some((trace, span)) => (Some(trace), span),
            None => (None, None),
        };
        out.push(LogRecord {
            timestamp_ns: entry.timestamp_ns,
            observed_ns: now_ns,
            service: service.clone(),
            instance: instance.clone(),
            severity_text,
            severity_number,
            body: entry.line,
            trace_id,
            span_id,
            attributes,
            resource: resource.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::{Entry, Stream};
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_and_metadata_map() {
        let stream = Stream {
            labels: pairs(&[
                ("job", "ns/api"),
                ("app", "api"),
                ("pod", "api-0"),
                ("level", "warn"),
            ]),
            entries: vec![Entry {
                timestamp_ns: 5,
                line: "ERROR 订单失败".into(),
                metadata: pairs(&[
                    ("traceID", "4bf92f3577b34da6a3ce929d0e0e4736"),
                    ("user", "u1"),
                ]),
            }],
        };
        let mut out = Vec::new();
        stream_to_records(stream, 9, &mut out);
        let record = &out[0];
        assert_eq!(record.service, "api");
        assert_eq!(record.instance.as_deref(), Some("api-0"));
        assert_eq!(record.severity_text.as_deref(), Some("warn"));
        assert_eq!(record.severity_number, 13);
        assert_eq!(
            record.trace_id.unwrap().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(record.attributes["user"], "u1");
        assert_eq!(record.resource["job"], "ns/api");
        assert_eq!((record.timestamp_ns, record.observed_ns), (5, 9));
    }

    #[test]
    fn fallbacks_come_from_the_line() {
        let line = "2026-11-24 10:15:32.123 ERROR [funding,4bf92f3577b34da6a3ce929d0e0e4736,a3ce929d0e0e4736] boom";
        let stream = Stream {
            labels: pairs(&[("filename", "/var/log/x.log")]),
            entries: vec![Entry {
                timestamp_ns: 1,
                line: line.into(),
                metadata: vec![],
            }],
        };
        let mut out = Vec::new();
        stream_to_records(stream, 2, &mut out);
        assert_eq!(out[0].service, UNKNOWN_SERVICE);
        assert_eq!(out[0].instance, None);
        assert_eq!(out[0].severity_text.as_deref(), Some("ERROR"));
        assert_eq!(out[0].span_id.unwrap().to_string(), "a3ce929d0e0e4736");
    }
}
