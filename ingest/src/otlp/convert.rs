//! What the three OTLP signals share on their way to the storage models: resource
//! identity (service, instance), attribute values as text, ids, and the record
//! checks that turn into `partial_success` rejections.

use std::time::{SystemTime, UNIX_EPOCH};

use proto::otlp::{AnyValue, InstrumentationScope, KeyValue, Resource, any_value};
use proto::{SpanId, TraceId};
use serde_json::Value as Json;
use storage::model::Attributes;

/// How far ahead of the server clock a record may be stamped before it is rejected.
pub(crate) const MAX_FUTURE_NS: i64 = 3_600 * 1_000_000_000;

/// The service of a resource that names none (as the OpenTelemetry SDKs default it).
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// The server clock, Unix nanoseconds.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An OTLP `fixed64` time as signed nanoseconds (saturating: such times are rejected anyway).
pub(crate) fn nanos(time_unix_nano: u64) -> i64 {
    i64::try_from(time_unix_nano).unwrap_or(i64::MAX)
}

/// True when `ts_ns` lies more than [`MAX_FUTURE_NS`] ahead of `now_ns`.
pub(crate) fn too_far_in_future(ts_ns: i64, now_ns: i64) -> bool {
    ts_ns > now_ns.saturating_add(MAX_FUTURE_NS)
}

/// Records of one request that could not be kept, and why (the first reason).
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    /// How many records (spans, log records, data points) were rejected.
    pub count: u64,
    /// The first reason, for `partial_success.error_message` and the 400 body.
    pub first_reason: Option<String>,
}

impl Rejections {
    /// Counts `count` rejected records, keeping the first reason.
    pub fn reject(&mut self, count: u64, reason: impl FnOnce() -> String) {
        self.count += count;
        if self.first_reason.is_none() {
            self.first_reason = Some(reason());
        }
    }

    /// The message for `partial_success.error_message`.
    pub fn message(&self) -> String {
        match &self.first_reason {
            Some(reason) if self.count > 1 => format!("{} rejected; first: {reason}", self.count),
            Some(reason) => reason.clone(),
            None => String::new(),
        }
    }
}

/// Who emitted a batch of records: from the resource attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Origin {
    /// `service.name`, or [`UNKNOWN_SERVICE`].
    pub service: String,
    /// `service.instance.id`, else `k8s.pod.name`, else `host.name`.
    pub instance: Option<String>,
    /// Every resource attribute, as text.
    pub resource: Attributes,
}

/// Reads service, instance and attributes of a resource.
pub(crate) fn origin(resource: Option<&Resource>) -> Origin {
    let mut attributes = Attributes::new();
    if let Some(resource) = resource {
        insert_attributes(&mut attributes, &resource.attributes);
    }
    let service = attributes
        .get("service.name")
        .filter(|name| !name.is_empty())
        .cloned()
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    let instance = ["service.instance.id", "k8s.pod.name", "host.name"]
        .iter()
        .find_map(|key| {
            attributes
                .get(*key)
                .filter(|value| !value.is_empty())
                .cloned()
        });
    Origin {
        service,
        instance,
        resource: attributes,
    }
}

/// Adds every key/value to `map`, the values as text ([`value_text`]).
pub(crate) fn insert_attributes(map: &mut Attributes, attributes: &[KeyValue]) {
    for attribute in attributes {
        let text = attribute.value.as_ref().map(value_text).unwrap_or_default();
        map.insert(attribute.key.clone(), text);
    }
}

/// Adds the instrumentation scope's name and version as `otel.scope.name` / `otel.scope.version`.
pub(crate) fn insert_scope(map: &mut Attributes, scope: Option<&InstrumentationScope>) {
    let Some(scope) = scope else { return };
    if !scope.name.is_empty() {
        map.insert("otel.scope.name".to_string(), scope.name.clone());
    }
    if !scope.version.is_empty() {
        map.insert("otel.scope.version".to_string(), scope.version.clone());
    }
}

/// An attribute value as stored: strings as they are, ints, doubles and bools as
/// their text, arrays and kvlists as compact JSON, bytes as base64.
pub(crate) fn value_text(value: &AnyValue) -> String {
    match &value.value {
        // String-table references only mean something inside profiles; no table here.
        None | Some(any_value::Value::StringValueStrindex(_)) => String::new(),
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => base64(bytes),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            value_json(value).to_string()
        }
    }
}

/// An attribute value as JSON: kvlists become objects, bytes base64 strings, and
/// non-finite doubles their proto3 JSON names (`"NaN"`, `"Infinity"`).
pub(crate) fn value_json(value: &AnyValue) -> Json {
    match &value.value {
        None | Some(any_value::Value::StringValueStrindex(_)) => Json::Null,
        Some(any_value::Value::StringValue(text)) => Json::String(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Json::Bool(*flag),
        Some(any_value::Value::IntValue(number)) => Json::from(*number),
        Some(any_value::Value::DoubleValue(number)) => double_json(*number),
        Some(any_value::Value::BytesValue(bytes)) => Json::String(base64(bytes)),
        Some(any_value::Value::ArrayValue(array)) => {
            Json::Array(array.values.iter().map(value_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Json::Object(attributes_json(&list.values)),
    }
}

/// Key/values as a JSON object (values typed as [`value_json`] types them).
pub(crate) fn attributes_json(attributes: &[KeyValue]) -> serde_json::Map<String, Json> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(value_json).unwrap_or(Json::Null),
            )
        })
        .collect()
}

fn double_json(number: f64) -> Json {
    match serde_json::Number::from_f64(number) {
        Some(number) => Json::Number(number),
        None if number.is_nan() => Json::String("NaN".to_string()),
        None if number > 0.0 => Json::String("Infinity".to_string()),
        None => Json::String("-Infinity".to_string()),
    }
}

/// Standard base64 with padding (RFC 4648 §4), as OTLP/JSON writes `bytesValue`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let group = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
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

/// A trace id field: empty or all zero is absent; any other width is an error.
pub(crate) fn trace_id(bytes: &[u8]) -> Result<Option<TraceId>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match TraceId::from_slice(bytes) {
        Some(id) if id.is_zero() => Ok(None),
        Some(id) => Ok(Some(id)),
        None => Err(format!("trace id has {} bytes, expected 16", bytes.len())),
    }
}

/// A span id field: empty or all zero is absent; any other width is an error.
pub(crate) fn span_id(bytes: &[u8]) -> Result<Option<SpanId>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match SpanId::from_slice(bytes) {
        Some(id) if id.is_zero() => Ok(None),
        Some(id) => Ok(Some(id)),
        None => Err(format!("span id has {} bytes, expected 8", bytes.len())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proto::otlp::{ArrayValue, KeyValueList};

    use super::*;

    pub(crate) fn string(text: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(text.to_string())),
        }
    }

    pub(crate) fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..KeyValue::default()
        }
    }

    fn of(value: any_value::Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn every_value_type_becomes_text() {
        assert_eq!(value_text(&string("a b")), "a b");
        assert_eq!(value_text(&of(any_value::Value::BoolValue(true))), "true");
        assert_eq!(value_text(&of(any_value::Value::IntValue(-10))), "-10");
        assert_eq!(
            value_text(&of(any_value::Value::DoubleValue(637.704))),
            "637.704"
        );
        assert_eq!(
            value_text(&of(any_value::Value::BytesValue(b"hello".to_vec()))),
            "aGVsbG8="
        );
        let array = of(any_value::Value::ArrayValue(ArrayValue {
            values: vec![string("many"), of(any_value::Value::IntValue(2))],
        }));
        assert_eq!(value_text(&array), r#"["many",2]"#);
        let map = of(any_value::Value::KvlistValue(KeyValueList {
            values: vec![
                kv("k", string("v")),
                kv("nan", of(any_value::Value::DoubleValue(f64::NAN))),
            ],
        }));
        assert_eq!(value_text(&map), r#"{"k":"v","nan":"NaN"}"#);
        assert_eq!(value_text(&AnyValue { value: None }), "");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0xfc]), "//79/A==");
    }

    #[test]
    fn origin_prefers_instance_id_then_pod_then_host() {
        let resource = |attributes: Vec<KeyValue>| Resource {
            attributes,
            ..Resource::default()
        };
        let bare = origin(None);
        assert_eq!(
            (bare.service.as_str(), bare.instance),
            (UNKNOWN_SERVICE, None)
        );
        let host = origin(Some(&resource(vec![
            kv("service.name", string("api")),
            kv("host.name", string("h1")),
        ])));
        assert_eq!(
            (host.service.as_str(), host.instance.as_deref()),
            ("api", Some("h1"))
        );
        let pod = origin(Some(&resource(vec![
            kv("host.name", string("h1")),
            kv("k8s.pod.name", string("api-7")),
        ])));
        assert_eq!(pod.instance.as_deref(), Some("api-7"));
        let id = origin(Some(&resource(vec![
            kv("k8s.pod.name", string("api-7")),
            kv("service.instance.id", string("i-1")),
        ])));
        assert_eq!(id.instance.as_deref(), Some("i-1"));
        assert_eq!(
            id.resource.get("k8s.pod.name").map(String::as_str),
            Some("api-7")
        );
    }

    #[test]
    fn ids_of_the_wrong_width_are_errors_and_zero_is_absent() {
        assert_eq!(trace_id(&[]), Ok(None));
        assert_eq!(trace_id(&[0; 16]), Ok(None));
        assert!(trace_id(&[1; 15]).is_err());
        assert_eq!(span_id(&[7; 8]), Ok(Some(SpanId([7; 8]))));
        assert!(span_id(&[7; 9]).is_err());
    }

    #[test]
    fn future_limit_is_one_hour() {
        let now = 1_700_000_000_000_000_000;
        assert!(!too_far_in_future(now + MAX_FUTURE_NS, now));
        assert!(too_far_in_future(now + MAX_FUTURE_NS + 1, now));
        assert!(too_far_in_future(nanos(u64::MAX), now));
    }
}
