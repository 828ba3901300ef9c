//! A decoded Zipkin span → our [`SpanRecord`].
//!
//! `localEndpoint.serviceName` is the service (kept as sent), the endpoint address
//! the instance, `remoteEndpoint.serviceName` the peer service; tags become
//! attributes, an `error` tag makes the status an error with its value as message,
//! annotations become events. Shared client/server halves stay two rows.

use serde_json::json;
use storage::model::{Attributes, SpanRecord};

use super::decode::{Endpoint, ZipkinSpan};

/// The service name used when a span has no `localEndpoint.serviceName`.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

fn micros_to_nanos(micros: u64) -> i64 {
    i64::try_from(micros.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

fn endpoint_address(endpoint: &Endpoint) -> Option<String> {
    let host = match (&endpoint.ipv4, &endpoint.ipv6) {
        (Some(ipv4), _) => ipv4.clone(),
        (None, Some(ipv6)) if endpoint.port.is_some() => format!("[{ipv6}]"),
        (None, Some(ipv6)) => ipv6.clone(),
        (None, None) => return None,
    };
    Some(match endpoint.port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn insert_endpoint(map: &mut Attributes, prefix: &str, endpoint: &Endpoint) {
    if let Some(ipv4) = &endpoint.ipv4 {
        map.insert(format!("{prefix}.ipv4"), ipv4.clone());
    }
    if let Some(ipv6) = &endpoint.ipv6 {
        map.insert(format!("{prefix}.ipv6"), ipv6.clone());
    }
    if let Some(port) = endpoint.port {
        map.insert(format!("{prefix}.port"), port.to_string());
    }
}

/// Maps one span.
pub fn span_to_record(span: ZipkinSpan) -> SpanRecord {
    let local = span.local_endpoint.unwrap_or_default();
    let service = local
        .service_name
        .clone()
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    let mut attributes: Attributes = span.tags.into_iter().collect();
    let instance = endpoint_address(&local).or_else(|| attributes.get("k8s.pod.name").cloned());
    let mut resource = Attributes::new();
    resource.insert("service.name".to_string(), service.clone());
    insert_endpoint(&mut resource, "zipkin.local_endpoint", &local);
    let peer_service = span
        .remote_endpoint
        .as_ref()
        .and_then(|r| r.service_name.clone());
    if let Some(remote) = &span.remote_endpoint {
        insert_endpoint(&mut attributes, "zipkin.remote_endpoint", remote);
    }
    if span.shared {
        attributes.insert("zipkin.shared".to_string(), "true".to_string());
    }
    if span.debug {
        attributes.insert("zipkin.debug".to_string(), "true".to_string());
    }
    let (status_code, status_message) = match attributes.get("error") {
        Some(message) => (2, Some(message.clone()).filter(|m| !m.is_empty())),
        None => (0, None),
    };
    let kind = match span.kind {
        Some("CLIENT") => "client",
        Some("SERVER") => "server",
        Some("PRODUCER") => "producer",
        Some("CONSUMER") => "consumer",
        _ => "unspecified",
    };
    let events = (!span.annotations.is_empty()).then(|| {
        let list: Vec<_> = span
            .annotations
            .iter()
            .map(|(micros, value)| {
                json!({"time_unix_nano": micros.saturating_mul(1_000), "name": value, "attributes": {}})
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    });
    SpanRecord {
        trace_id: span.trace_id,
        span_id: span.id,
        parent_span_id: span.parent_id,
        service,
        instance,
        name: span.name,
        kind: kind.to_string(),
        start_ns: span.timestamp_us.map_or(0, micros_to_nanos),
        duration_ns: span.duration_us.map_or(0, micros_to_nanos),
        status_code,
        status_message,
        peer_service,
        attributes,
        resource,
        events,
        links: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::decode_json;
    use super::*;

    #[test]
    fn protocols_example_maps_field_by_field() {
        let body = br#"[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c","name":"get /api",
          "kind":"SERVER","timestamp":1556604172355737,"duration":1431,
          "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.101","port":9000},
          "remoteEndpoint":{"serviceName":"frontend","ipv4":"172.19.0.2","port":58648},
          "annotations":[{"timestamp":1556604172355800,"value":"wr"}],
          "tags":{"http.method":"GET","http.path":"/api","error":"500"},"debug":false,"shared":true}]"#;
        let span = decode_json(body).unwrap().remove(0);
        let record = span_to_record(span);
        assert_eq!(
            record.trace_id.to_string(),
            "00000000000000005af7183fb1d4cf5f"
        );
        assert_eq!(record.span_id.to_string(), "352bff9a74ca9ad2");
        assert_eq!(
            record.parent_span_id.unwrap().to_string(),
            "6b221d5bc9e6496c"
        );
        assert_eq!(record.service, "backend");
        assert_eq!(record.instance.as_deref(), Some("192.168.99.101:9000"));
        assert_eq!(record.kind, "server");
        assert_eq!(record.start_ns, 1_556_604_172_355_737_000);
        assert_eq!(record.duration_ns, 1_431_000);
        assert_eq!(record.status_code, 2);
        assert_eq!(record.status_message.as_deref(), Some("500"));
        assert_eq!(record.peer_service.as_deref(), Some("frontend"));
        assert_eq!(record.attributes["http.path"], "/api");
        assert_eq!(record.attributes["zipkin.shared"], "true");
        assert_eq!(record.attributes["zipkin.remote_endpoint.port"], "58648");
        assert!(!record.attributes.contains_key("zipkin.debug"));
        assert_eq!(
            record.events.as_deref(),
            Some(r#"[{"attributes":{},"name":"wr","time_unix_nano":1556604172355800000}]"#)
        );
    }

    #[test]
    fn missing_parts_get_defaults() {
        let span = decode_json(br#"[{"traceId":"1","id":"2","tags":{"k8s.pod.name":"api-0"}}]"#)
            .unwrap()
            .remove(0);
        let record = span_to_record(span);
        assert_eq!(record.service, UNKNOWN_SERVICE);
        assert_eq!(record.kind, "unspecified");
        assert_eq!(record.instance.as_deref(), Some("api-0"));
        assert_eq!(record.status_code, 0);
        assert_eq!(record.events, None);
        let ipv6 =
            decode_json(br#"[{"traceId":"1","id":"2","localEndpoint":{"ipv6":"2001:db8::c001"}}]"#)
                .unwrap()
                .remove(0);
        assert_eq!(
            span_to_record(ipv6).instance.as_deref(),
            Some("2001:db8::c001")
        );
    }
}
