//! Assembled traces → OTLP `ResourceSpans` (what Tempo's `tempopb.Trace` holds), as
//! protobuf or as OTLP/JSON with hex ids (PROTOCOLS.md §5.1).
//!
//! Stored attribute values are text; they go out typed when the text is the canonical
//! form of an int, a double or a bool, so `http.status_code = 200` reads back as an int.

use std::collections::BTreeMap;

use proto::otlp::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, Resource, ResourceSpans,
    ScopeSpans, Span, Status, any_value, span,
};
use serde_json::{Value as Json, json};
use storage::model::{Attributes, SpanRecord};

use crate::traces::Trace;

/// `tempopb.Trace`: the v1 trace-by-id body (wire-identical to OTLP `TracesData`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TempoTrace {
    /// Spans grouped by resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceByIdMetrics {
    /// Bytes read to answer.
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.TraceByIDResponse`: the v2 trace-by-id body.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceByIdResponse {
    /// The trace.
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TempoTrace>,
    /// Read statistics.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    /// 0 complete, 1 partial.
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// Why the trace is partial.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// An attribute value from its stored text.
pub(crate) fn typed_value(text: &str) -> AnyValue {
    let value = if let Ok(int) = text.parse::<i64>()
        && int.to_string() == text
    {
        any_value::Value::IntValue(int)
    } else if let Ok(double) = text.parse::<f64>()
        && double.is_finite()
        && double.to_string() == text
    {
        any_value::Value::DoubleValue(double)
    } else if text == "true" || text == "false" {
        any_value::Value::BoolValue(text == "true")
    } else {
        any_value::Value::StringValue(text.to_string())
    };
    AnyValue { value: Some(value) }
}

fn key_value(key: String, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key,
        value,
        ..KeyValue::default()
    }
}

fn key_values<'a>(attributes: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<KeyValue> {
    attributes
        .map(|(key, value)| key_value(key.clone(), Some(typed_value(value))))
        .collect()
}

/// A JSON value (as ingest stored event and link attributes) → AnyValue.
fn json_value(value: &Json) -> Option<AnyValue> {
    let value = match value {
        Json::Null => return None,
        Json::Bool(flag) => any_value::Value::BoolValue(*flag),
        Json::Number(number) => match number.as_i64() {
            Some(int) => any_value::Value::IntValue(int),
            None => any_value::Value::DoubleValue(number.as_f64().unwrap_or(0.0)),
        },
        Json::String(text) => any_value::Value::StringValue(text.clone()),
        Json::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().filter_map(json_value).collect(),
        }),
        Json::Object(map) => any_value::Value::KvlistValue(KeyValueList {
            values: json_key_values(map),
        }),
    };
    Some(AnyValue { value: Some(value) })
}

fn json_key_values(map: &serde_json::Map<String, Json>) -> Vec<KeyValue> {
    map.iter()
        .map(|(key, value)| key_value(key.clone(), json_value(value)))
        .collect()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The OTLP kind number of a stored kind.
fn kind_number(kind: &str) -> i32 {
    match kind {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => 0,
    }
}

const SCOPE_NAME: &str = "otel.scope.name";
const SCOPE_VERSION: &str = "otel.scope.version";

fn otlp_span(record: &SpanRecord) -> Span {
    let mut attributes: Vec<KeyValue> = key_values(
        record
            .attributes
            .iter()
            .filter(|(k, _)| *k != SCOPE_NAME && *k != SCOPE_VERSION),
    );
    if let Some(peer) = &record.peer_service
        && !record.attributes.contains_key("peer.service")
    {
        attributes.push(key_value("peer.service".into(), Some(typed_value(peer))));
    }
    let events: Vec<Json> = record
        .events
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    let links: Vec<Json> = record
        .links
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    let start = u64::try_from(record.start_ns).unwrap_or(0);
    Span {
        trace_id: record.trace_id.0.to_vec(),
        span_id: record.span_id.0.to_vec(),
        trace_state: String::new(),
        parent_span_id: record
            .parent_span_id
            .map(|p| p.0.to_vec())
            .unwrap_or_default(),
        flags: 0,
        name: record.name.clone(),
        kind: kind_number(&record.kind),
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(u64::try_from(record.duration_ns).unwrap_or(0)),
        attributes,
        dropped_attributes_count: 0,
        events: events
            .iter()
            .map(|event| span::Event {
                time_unix_nano: event["time_unix_nano"].as_u64().unwrap_or(0),
                name: event["name"].as_str().unwrap_or("").to_string(),
                attributes: event["attributes"]
                    .as_object()
                    .map(json_key_values)
                    .unwrap_or_default(),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: links
            .iter()
            .map(|link| span::Link {
                trace_id: hex_bytes(link["trace_id"].as_str().unwrap_or("")),
                span_id: hex_bytes(link["span_id"].as_str().unwrap_or("")),
                trace_state: link["trace_state"].as_str().unwrap_or("").to_string(),
                attributes: link["attributes"]
                    .as_object()
                    .map(json_key_values)
                    .unwrap_or_default(),
                dropped_attributes_count: 0,
                flags: 0,
            })
            .collect(),
        dropped_links_count: 0,
        status: Some(Status {
            message: record.status_message.clone().unwrap_or_default(),
            code: record.status_code,
        }),
    }
}

/// Groups a trace's spans by resource, then by instrumentation scope.
pub(crate) fn resource_spans(trace: &Trace) -> Vec<ResourceSpans> {
    type ScopeKey = (String, String);
    let mut groups: BTreeMap<(String, &Attributes), BTreeMap<ScopeKey, Vec<Span>>> =
        BTreeMap::new();
    for record in &trace.spans {
        let scope = (
            record
                .attributes
                .get(SCOPE_NAME)
                .cloned()
                .unwrap_or_default(),
            record
                .attributes
                .get(SCOPE_VERSION)
                .cloned()
                .unwrap_or_default(),
        );
        groups
            .entry((record.service.clone(), &record.resource))
            .or_default()
            .entry(scope)
            .or_default()
            .push(otlp_span(record));
    }
    groups
        .into_iter()
        .map(|((service, resource), scopes)| {
            let mut attributes = key_values(resource.iter());
            if !resource.contains_key("service.name") {
                attributes.push(key_value(
                    "service.name".into(),
                    Some(typed_value(&service)),
                ));
            }
            ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Resource::default()
                }),
                scope_spans: scopes
                    .into_iter()
                    .map(|((name, version), spans)| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name,
                            version,
                            ..InstrumentationScope::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let group = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((group >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An AnyValue in OTLP/JSON (ints as strings).
pub(crate) fn any_value_json(value: &AnyValue) -> Json {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => json!({"stringValue": text}),
        Some(any_value::Value::BoolValue(flag)) => json!({"boolValue": flag}),
        Some(any_value::Value::IntValue(int)) => json!({"intValue": int.to_string()}),
        Some(any_value::Value::DoubleValue(double)) => json!({"doubleValue": double}),
        Some(any_value::Value::BytesValue(bytes)) => json!({"bytesValue": base64(bytes)}),
        Some(any_value::Value::ArrayValue(array)) => {
            json!({"arrayValue": {"values": array.values.iter().map(any_value_json).collect::<Vec<_>>()}})
        }
        Some(any_value::Value::KvlistValue(list)) => {
            json!({"kvlistValue": {"values": key_values_json(&list.values)}})
        }
        _ => json!({}),
    }
}

/// Key/values in OTLP/JSON.
pub(crate) fn key_values_json(values: &[KeyValue]) -> Vec<Json> {
    values
        .iter()
        .map(|kv| {
            json!({
                "key": kv.key,
                "value": kv.value.as_ref().map(any_value_json).unwrap_or(json!({})),
            })
        })
        .collect()
}

fn span_json(span: &Span) -> Json {
    let mut out = json!({
        "traceId": hex(&span.trace_id),
        "spanId": hex(&span.span_id),
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
        "attributes": key_values_json(&span.attributes),
        "status": span.status.as_ref().map(|s| {
            let mut status = json!({"code": s.code});
            if !s.message.is_empty() {
                status["message"] = json!(s.message);
            }
            status
        }),
    });
    if !span.parent_span_id.is_empty() {
        out["parentSpanId"] = json!(hex(&span.parent_span_id));
    }
    if !span.events.is_empty() {
        out["events"] = span
            .events
            .iter()
            .map(|e| {
                json!({
                    "timeUnixNano": e.time_unix_nano.to_string(),
                    "name": e.name,
                    "attributes": key_values_json(&e.attributes),
                })
            })
            .collect();
    }
    if !span.links.is_empty() {
        out["links"] = span
            .links
            .iter()
            .map(|l| {
                json!({
                    "traceId": hex(&l.trace_id),
                    "spanId": hex(&l.span_id),
                    "traceState": l.trace_state,
                    "attributes": key_values_json(&l.attributes),
                })
            })
            .collect();
    }
    out
}

/// `ResourceSpans` in OTLP/JSON with hex ids.
pub(crate) fn resource_spans_json(groups: &[ResourceSpans]) -> Json {
    Json::Array(
        groups
            .iter()
            .map(|group| {
                json!({
                    "resource": {"attributes": group.resource.as_ref().map(|r| key_values_json(&r.attributes)).unwrap_or_default()},
                    "scopeSpans": group.scope_spans.iter().map(|scope| {
                        let mut scope_json = json!({});
                        if let Some(s) = &scope.scope {
                            if !s.name.is_empty() {
                                scope_json["name"] = json!(s.name);
                            }
                            if !s.version.is_empty() {
                                scope_json["version"] = json!(s.version);
                            }
                        }
                        json!({"scope": scope_json, "spans": scope.spans.iter().map(span_json).collect::<Vec<_>>()})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use proto::{SpanId, TraceId};

    use super::*;

    #[test]
    fn spans_group_by_resource_and_scope_with_typed_values() {
        let mut attributes = Attributes::new();
        attributes.insert("http.status_code".into(), "200".into());
        attributes.insert("zip".into(), "007".into());
        attributes.insert(SCOPE_NAME.into(), "io.test".into());
        let mut resource = Attributes::new();
        resource.insert("service.name".into(), "api".into());
        let record = SpanRecord {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            service: "api".into(),
            name: "GET /".into(),
            kind: "server".into(),
            start_ns: 1_000,
            duration_ns: 500,
            status_code: 2,
            status_message: Some("boom".into()),
            peer_service: Some("db".into()),
            attributes,
            resource,
            events: Some(r#"[{"time_unix_nano":1200,"name":"retry","attributes":{"n":2}}]"#.into()),
            links: Some(format!(
                r#"[{{"trace_id":"{}","span_id":"0303030303030303","trace_state":"","attributes":{{}}}}]"#,
                "04".repeat(16)
            )),
            ..SpanRecord::default()
        };
        let mut other = record.clone();
        other.span_id = SpanId([3; 8]);
        other.parent_span_id = Some(SpanId([2; 8]));
        other.service = "db".into();
        other.resource.insert("service.name".into(), "db".into());
        let trace = Trace::assemble(TraceId([1; 16]), vec![record, other]);
        let groups = resource_spans(&trace);
        assert_eq!(groups.len(), 2);
        let span = &groups[0].scope_spans[0].spans[0];
        assert_eq!(
            groups[0].scope_spans[0].scope.as_ref().unwrap().name,
            "io.test"
        );
        assert_eq!(
            (
                span.kind,
                span.start_time_unix_nano,
                span.end_time_unix_nano
            ),
            (2, 1_000, 1_500)
        );
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(span.events[0].name, "retry");
        assert_eq!(span.links[0].trace_id, vec![4; 16]);
        let json = resource_spans_json(&groups);
        let span_json = &json[0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span_json["traceId"], "01".repeat(16));
        let attributes = span_json["attributes"].as_array().unwrap();
        assert!(
            attributes.contains(&json!({"key": "http.status_code", "value": {"intValue": "200"}}))
        );
        assert!(attributes.contains(&json!({"key": "zip", "value": {"stringValue": "007"}})));
        assert!(
            attributes.contains(&json!({"key": "peer.service", "value": {"stringValue": "db"}}))
        );
        assert_eq!(
            span_json["events"][0]["attributes"][0],
            json!({"key": "n", "value": {"intValue": "2"}})
        );
        assert_eq!(
            json[1]["scopeSpans"][0]["spans"][0]["parentSpanId"],
            "02".repeat(8)
        );
        assert_eq!(base64(b"hi!?"), "aGkhPw==");
    }
}
