//! One `_bulk` source document (ECS-shaped JSON) → one [`LogRecord`].
//!
//! `message` is the body, `@timestamp` the time, `service.name` the service,
//! `log.level` the severity, `trace.id`/`span.id` the trace context, `host.name` the
//! instance. Every other field is flattened with dotted keys into the attributes.

use proto::{SpanId, TraceId};
use serde_json::{Map, Value};
use storage::model::{Attributes, LogRecord};

use crate::normalize;

/// The service name used when a document names none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// How far ahead of the server clock a `@timestamp` may be.
pub const MAX_FUTURE_NS: i64 = 3_600 * 1_000_000_000;

/// Why a source document was refused (a per-item `document_parsing_exception`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError(pub String);

/// Maps one source document of index `index` to a log record; `now_ns` stamps
/// documents without `@timestamp` and is the observed time of all.
/// The document is taken apart: its strings move into the record.
pub fn document_to_record(
    source: Value,
    index: &str,
    now_ns: i64,
) -> Result<LogRecord, DocumentError> {
    let object = match source {
        Value::Object(object) => object,
        other => {
            return Err(DocumentError(format!(
                "failed to parse: source must be a json object, found {}",
                json_kind(&other)
            )));
        }
    };
    // Without a `message` that flattens to itself, the whole document is the body.
    let whole_document = match object.get("message") {
        None | Some(Value::Null | Value::Object(_)) => {
            Some(serde_json::to_string(&object).unwrap_or_default())
        }
        Some(_) => None,
    };
    let mut fields = Attributes::new();
    flatten_into(&mut fields, &mut String::new(), object);

    let timestamp_ns = match fields.remove("@timestamp") {
        None => now_ns,
        Some(text) => parse_timestamp_ns(&text).ok_or_else(|| {
            DocumentError(format!(
                "failed to parse field [@timestamp] of type [date]: failed to parse date field [{text}] with format [strict_date_optional_time||epoch_millis]"
            ))
        })?,
    };
    if timestamp_ns > now_ns.saturating_add(MAX_FUTURE_NS) {
        return Err(DocumentError(format!(
            "field [@timestamp] is more than 1h in the future ({timestamp_ns} ns)"
        )));
    }
    let body = match fields.remove("message") {
        Some(message) => message,
        None => whole_document.unwrap_or_default(),
    };
    let service = take_first(&mut fields, &["service.name"])
        .or_else(|| fields.get("kubernetes.container.name").cloned())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    let instance = take_first(&mut fields, &["host.name"])
        .or_else(|| fields.get("kubernetes.pod.name").cloned());
    let severity_text = take_first(&mut fields, &["log.level", "level"]);
    let (severity_text, severity_number) = match severity_text {
        Some(text) => {
            let number = normalize::severity_number(&text);
            (Some(text), number)
        }
        None => match normalize::severity_in_text(&body) {
            Some(word) => (Some(word.to_string()), normalize::severity_number(word)),
            None => (None, 0),
        },
    };
    let (trace_id, span_id) = trace_context(&mut fields, &body);
    fields.insert("es.index".to_string(), index.to_string());
    Ok(LogRecord {
        timestamp_ns,
        observed_ns: now_ns,
        service,
        instance,
        severity_text,
        severity_number,
        body,
        trace_id,
        span_id,
        attributes: fields,
        resource: Attributes::new(),
    })
}

/// The trace context from id fields (removed once used), else from the logback text.
fn trace_context(fields: &mut Attributes, body: &str) -> (Option<TraceId>, Option<SpanId>) {
    if let Some((trace, span)) = normalize::trace_context_in_attributes(fields) {
        for key in normalize::TRACE_ID_KEYS {
            if fields
                .get(key)
                .and_then(|v| TraceId::parse_lenient(v.trim()).ok())
                == Some(trace)
            {
                fields.remove(key);
            }
        }
        if let Some(span) = span {
            for key in normalize::SPAN_ID_KEYS {
                if fields
                    .get(key)
                    .and_then(|v| v.trim().parse::<SpanId>().ok())
                    == Some(span)
                {
                    fields.remove(key);
                }
            }
        }
        return (Some(trace), span);
    }
    match normalize::trace_context_in_text(body) {
        Some((trace, span)) => (Some(trace), span),
        None => (None, None),
    }
}

fn take_first(fields: &mut Attributes, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| fields.remove(*key))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Flattens nested objects into dotted keys; arrays stay JSON text, nulls are dropped.
fn flatten_into(out: &mut Attributes, path: &mut String, object: Map<String, Value>) {
    for (key, value) in object {
        let at = path.len();
        if at > 0 {
            path.push('.');
        }
        path.push_str(&key);
        match value {
            Value::Null => {}
            Value::Object(inner) => flatten_into(out, path, inner),
            Value::String(text) => {
                out.insert(path.clone(), text);
            }
            other => {
                out.insert(path.clone(), other.to_string());
            }
        }
        path.truncate(at);
    }
}

/// Parses `@timestamp` as ES's default date format does: ISO-8601
/// (`strict_date_optional_time`) or epoch milliseconds. Returns UTC nanoseconds.
pub fn parse_timestamp_ns(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && !text[1..].contains('-')
    {
        let millis: i64 = text.parse().ok()?;
        return millis.checked_mul(1_000_000);
    }
    if let Ok(millis) = text.parse::<f64>()
        && millis.is_finite()
        && !text.contains(['-', ':'])
    {
        let nanos = millis * 1e6;
        return (nanos.abs() < 9.2e18).then_some(nanos as i64);
    }
    parse_iso8601_ns(text)
}

fn digits(text: &str, at: usize, len: usize) -> Option<i64> {
    let part = text.get(at..at + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH[:]MM]`.
fn parse_iso8601_ns(text: &str) -> Option<i64> {
    let year = digits(text, 0, 4)?;
    let bytes = text.as_bytes();
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(text, 5, 2)?;
    let day = digits(text, 8, 2)?;
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    let mut nanos = 0i64;
    let mut at = 10;
    if matches!(bytes.get(at), Some(b'T' | b't' | b' ')) {
        let hour = digits(text, at + 1, 2)?;
        if bytes.get(at + 3) != Some(&b':') {
            return None;
        }
        let minute = digits(text, at + 4, 2)?;
        at += 6;
        let mut second = 0;
        if bytes.get(at) == Some(&b':') {
            second = digits(text, at + 1, 2)?;
            at += 3;
            if matches!(bytes.get(at), Some(b'.' | b',')) {
                let start = at + 1;
                let mut end = start;
                while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let fraction = &text[start..end.min(start + 9)];
                nanos = fraction.parse::<i64>().ok()? * 10i64.pow(9 - fraction.len() as u32);
                at = end;
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        seconds += hour * 3600 + minute * 60 + second;
    }
    match bytes.get(at) {
        None => {}
        Some(b'Z' | b'z') if at + 1 == bytes.len() => {}
        Some(sign @ (b'+' | b'-')) => {
            let hours = digits(text, at + 1, 2)?;
            let rest = &text[at + 3..];
            let minutes = match rest.len() {
                0 => 0,
                2 => digits(rest, 0, 2)?,
                3 if rest.starts_with(':') => digits(rest, 1, 2)?,
                _ => return None,
            };
            let offset = hours * 3600 + minutes * 60;
            seconds += if *sign == b'+' { -offset } else { offset };
        }
        Some(_) => return None,
    }
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_parse_as_es_default_format() {
        assert_eq!(parse_timestamp_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_ns("2026-01-01T00:00:00.123Z"),
            Some(1_767_225_600_123_000_000)
        );
        assert_eq!(
            parse_timestamp_ns("2026-01-01"),
            Some(1_767_225_600_000_000_000)
        );
        assert_eq!(
            parse_timestamp_ns("2026-01-01T02:00:00+02:00"),
            Some(1_767_225_600_000_000_000)
        );
        assert_eq!(
            parse_timestamp_ns("2026-01-01T00:00:00.000000001-0000"),
            Some(1_767_225_600_000_000_001)
        );
        assert_eq!(
            parse_timestamp_ns("1767225600123"),
            Some(1_767_225_600_123_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30T00:00:00Z",
            "2026-01-01T25:00Z",
            "2026-01-01Tx",
        ] {
            assert_eq!(parse_timestamp_ns(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ecs_document_maps_to_a_log_record() {
        let doc = json!({
            "@timestamp": "2026-01-01T00:00:00.123Z",
            "message": "支付失败 payment failed",
            "log.level": "ERROR",
            "service": {"name": "payments"},
            "trace.id": "4BF92F3577B34DA6A3CE929D0E0E4736",
            "span": {"id": "a3ce929d0e0e4736"},
            "host.name": "pod-1",
            "http": {"status": 500, "ok": false},
            "tags": ["a", "b"],
            "empty": null
        });
        let now = 1_780_000_000_000_000_000;
        let record = document_to_record(doc.clone(), "logs-app", now).unwrap();
        assert_eq!(record.timestamp_ns, 1_767_225_600_123_000_000);
        assert_eq!(record.observed_ns, now);
        assert_eq!(record.body, "支付失败 payment failed");
        assert_eq!(record.service, "payments");
        assert_eq!(record.instance.as_deref(), Some("pod-1"));
        assert_eq!(record.severity_text.as_deref(), Some("ERROR"));
        assert_eq!(record.severity_number, 17);
        assert_eq!(
            record.trace_id.unwrap().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(record.span_id.unwrap().to_string(), "a3ce929d0e0e4736");
        let expected: Attributes = [
            ("es.index", "logs-app"),
            ("http.ok", "false"),
            ("http.status", "500"),
            ("tags", r#"["a","b"]"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(record.attributes, expected);
    }

    #[test]
    fn fallbacks_apply_when_fields_are_missing() {
        let line = "2026-11-24 10:15:32.123  WARN [funding,4bf92f3577b34da6a3ce929d0e0e4736,a3ce929d0e0e4736] slow";
        let doc = json!({"message": line, "kubernetes": {"container": {"name": "funding"}, "pod": {"name": "funding-0"}}});
        let record = document_to_record(doc.clone(), "x", 42).unwrap();
        assert_eq!(record.timestamp_ns, 42);
        assert_eq!(record.service, "funding");
        assert_eq!(record.instance.as_deref(), Some("funding-0"));
        assert_eq!(record.severity_text.as_deref(), Some("WARN"));
        assert_eq!(
            record.trace_id.unwrap().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            record
                .attributes
                .get("kubernetes.container.name")
                .map(String::as_str),
            Some("funding")
        );

        let bare = json!({"f1": "v1", "f2": 42});
        let record = document_to_record(bare.clone(), "test_index", 1).unwrap();
        assert_eq!(record.service, UNKNOWN_SERVICE);
        assert_eq!(record.body, r#"{"f1":"v1","f2":42}"#);
        assert_eq!(record.severity_number, 0);

        // A `message` that is an object or null is no body: the document is.
        let nested = json!({"message": {"text": "hi"}, "n": null, "a": {"": {"b": [1]}}});
        let record = document_to_record(nested.clone(), "x", 1).unwrap();
        assert_eq!(record.body, nested.to_string());
        assert_eq!(record.attributes["message.text"], "hi");
        assert_eq!(record.attributes["a..b"], "[1]");
        assert!(!record.attributes.contains_key("n"));
        let scalar = json!({"message": 7, "log": {"level": "warn"}});
        let record = document_to_record(scalar, "x", 1).unwrap();
        assert_eq!((record.body.as_str(), record.severity_number), ("7", 13));
    }

    #[test]
    fn bad_documents_are_refused() {
        assert!(document_to_record(json!("just text"), "x", 0).is_err());
        assert!(document_to_record(json!([1, 2]), "x", 0).is_err());
        let error = document_to_record(json!({"@timestamp": "not a date"}), "x", 0).unwrap_err();
        assert!(error.0.contains("[@timestamp]"), "{error:?}");
        let future = json!({"@timestamp": "2026-01-01T02:00:01Z"});
        let now = parse_timestamp_ns("2026-01-01T01:00:00Z").unwrap();
        assert!(
            document_to_record(future.clone(), "x", now)
                .unwrap_err()
                .0
                .contains("future")
        );
    }
}
