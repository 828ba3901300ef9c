//! Stored spans → Zipkin v2 JSON spans (PROTOCOLS.md §4.1), undoing what Zipkin ingest
//! did: `zipkin.*` attributes become endpoints and flags again, events annotations.

use serde_json::{Map, Value, json};
use storage::model::{Attributes, SpanRecord};

/// The service name ingest uses when a span has none.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// A trace id as Zipkin writes it: 16 hex digits for a 64-bit id, else 32.
pub(crate) fn zipkin_trace_id(trace_id: &proto::TraceId) -> String {
    let text = trace_id.to_string();
    if trace_id.0[..8].iter().all(|b| *b == 0) {
        text[16..].to_string()
    } else {
        text
    }
}

fn endpoint(service: Option<&str>, map: &Attributes, prefix: &str) -> Option<Value> {
    let mut endpoint = Map::new();
    if let Some(service) = service.filter(|s| !s.is_empty() && *s != UNKNOWN_SERVICE) {
        endpoint.insert("serviceName".into(), json!(service));
    }
    for key in ["ipv4", "ipv6"] {
        if let Some(address) = map.get(&format!("{prefix}.{key}")) {
            endpoint.insert(key.into(), json!(address));
        }
    }
    if let Some(port) = map
        .get(&format!("{prefix}.port"))
        .and_then(|p| p.parse::<u16>().ok())
    {
        endpoint.insert("port".into(), json!(port));
    }
    (!endpoint.is_empty()).then_some(Value::Object(endpoint))
}

/// One span in Zipkin v2 JSON.
pub(crate) fn span_json(span: &SpanRecord) -> Value {
    let mut out = Map::new();
    out.insert("traceId".into(), json!(zipkin_trace_id(&span.trace_id)));
    out.insert("id".into(), json!(span.span_id.to_string()));
    if let Some(parent) = span.parent_span_id {
        out.insert("parentId".into(), json!(parent.to_string()));
    }
    if !span.name.is_empty() {
        out.insert("name".into(), json!(span.name));
    }
    if let Some(kind) = match span.kind.as_str() {
        "client" => Some("CLIENT"),
        "server" => Some("SERVER"),
        "producer" => Some("PRODUCER"),
        "consumer" => Some("CONSUMER"),
        _ => None,
    } {
        out.insert("kind".into(), json!(kind));
    }
    if span.start_ns > 0 {
        out.insert("timestamp".into(), json!(span.start_ns / 1_000));
    }
    if span.duration_ns > 0 {
        out.insert("duration".into(), json!(span.duration_ns / 1_000));
    }
    if let Some(local) = endpoint(Some(&span.service), &span.resource, "zipkin.local_endpoint") {
        out.insert("localEndpoint".into(), local);
    }
    if let Some(remote) = endpoint(
        span.peer_service.as_deref(),
        &span.attributes,
        "zipkin.remote_endpoint",
    ) {
        out.insert("remoteEndpoint".into(), remote);
    }
    let annotations = annotations(span.events.as_deref());
    if !annotations.is_empty() {
        out.insert("annotations".into(), Value::Array(annotations));
    }
    let mut tags: Map<String, Value> = span
        .attributes
        .iter()
        .filter(|(key, _)| !key.starts_with("zipkin."))
        .map(|(key, value)| (key.clone(), json!(value)))
        .collect();
    if span.status_code == 2 && !tags.contains_key("error") {
        let message = span.status_message.clone().unwrap_or_default();
        tags.insert("error".into(), json!(message));
    }
    if !tags.is_empty() {
        out.insert("tags".into(), Value::Object(tags));
    }
    if span.attributes.contains_key("zipkin.debug") {
        out.insert("debug".into(), json!(true));
    }
    if span.attributes.contains_key("zipkin.shared") {
        out.insert("shared".into(), json!(true));
    }
    Value::Object(out)
}

fn annotations(events: Option<&str>) -> Vec<Value> {
    let Some(events) = events else {
        return Vec::new();
    };
    let list: Vec<Value> = serde_json::from_str(events).unwrap_or_default();
    list.iter()
        .map(|event| {
            let micros = event["time_unix_nano"].as_u64().unwrap_or(0) / 1_000;
            json!({"timestamp": micros, "value": event["name"].as_str().unwrap_or("")})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proto::{SpanId, TraceId};

    use super::*;

    #[test]
    fn protocols_example_reads_back() {
        let mut attributes = Attributes::new();
        for (k, v) in [
            ("http.method", "GET"),
            ("error", "500"),
            ("zipkin.remote_endpoint.ipv4", "172.19.0.2"),
            ("zipkin.remote_endpoint.port", "58648"),
            ("zipkin.shared", "true"),
        ] {
            attributes.insert(k.into(), v.into());
        }
        let mut resource = Attributes::new();
        resource.insert("service.name".into(), "backend".into());
        resource.insert("zipkin.local_endpoint.ipv4".into(), "192.168.99.101".into());
        resource.insert("zipkin.local_endpoint.port".into(), "9000".into());
        let mut trace = [0u8; 16];
        trace[8..].copy_from_slice(&[0x5a, 0xf7, 0x18, 0x3f, 0xb1, 0xd4, 0xcf, 0x5f]);
        let span = SpanRecord {
            trace_id: TraceId(trace),
            span_id: "352bff9a74ca9ad2".parse::<SpanId>().unwrap(),
            parent_span_id: Some("6b221d5bc9e6496c".parse().unwrap()),
            service: "backend".into(),
            name: "get /api".into(),
            kind: "server".into(),
            start_ns: 1_556_604_172_355_737_000,
            duration_ns: 1_431_000,
            status_code: 2,
            peer_service: Some("frontend".into()),
            attributes,
            resource,
            events: Some(
                r#"[{"attributes":{},"name":"wr","time_unix_nano":1556604172355800000}]"#.into(),
            ),
            ..SpanRecord::default()
        };
        let expected = json!({"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c","name":"get /api",
          "kind":"SERVER","timestamp":1556604172355737u64,"duration":1431,
          "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.101","port":9000},
          "remoteEndpoint":{"serviceName":"frontend","ipv4":"172.19.0.2","port":58648},
          "annotations":[{"timestamp":1556604172355800u64,"value":"wr"}],
          "tags":{"http.method":"GET","error":"500"},"shared":true});
        assert_eq!(span_json(&span), expected);
    }
}
