//! Zipkin v2 bodies (JSON list of spans, proto3 `ListOfSpans`) → [`ZipkinSpan`]s.
//!
//! Both encodings decode to the same validated shape, so the mapping onto our span
//! model ([`super::map`]) is written once.

use std::net::{Ipv4Addr, Ipv6Addr};

use prost::Message;
use proto::{SpanId, TraceId};
use serde::Deserialize;
use serde_json::Value;

/// A network endpoint as Zipkin reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    /// `serviceName`, as sent.
    pub service_name: Option<String>,
    /// Dotted IPv4 address.
    pub ipv4: Option<String>,
    /// IPv6 address text.
    pub ipv6: Option<String>,
    /// Port, when known.
    pub port: Option<u16>,
}

/// One decoded, validated Zipkin span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZipkinSpan {
    /// The trace id (64-bit ids left-padded).
    pub trace_id: TraceId,
    /// The span id.
    pub id: SpanId,
    /// The parent, absent on a root.
    pub parent_id: Option<SpanId>,
    /// `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER` or absent.
    pub kind: Option<&'static str>,
    /// The operation name.
    pub name: String,
    /// Start, epoch microseconds.
    pub timestamp_us: Option<u64>,
    /// Duration, microseconds.
    pub duration_us: Option<u64>,
    /// The recording host.
    pub local_endpoint: Option<Endpoint>,
    /// The other side.
    pub remote_endpoint: Option<Endpoint>,
    /// `(epoch µs, value)` events.
    pub annotations: Vec<(u64, String)>,
    /// Tags, sorted by key.
    pub tags: Vec<(String, String)>,
    /// Forced sampling.
    pub debug: bool,
    /// Server half of a shared span id.
    pub shared: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    tags: serde_json::Map<String, Value>,
    debug: Option<bool>,
    shared: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: u64,
    value: String,
}

/// Left-pads a hex id to 16 or 32 digits, as Zipkin normalises ids.
fn padded(text: &str) -> Option<String> {
    let width = match text.len() {
        1..=16 => 16,
        17..=32 => 32,
        _ => return None,
    };
    Some(format!("{text:0>width$}"))
}

fn parse_trace_id(text: &str) -> Result<TraceId, String> {
    let parsed = padded(text)
        .and_then(|hex| TraceId::parse_lenient(&hex).ok())
        .ok_or_else(|| format!("traceId {text:?} is not 16 or 32 hex digits"))?;
    if parsed.is_zero() {
        return Err("traceId is all zeros".to_string());
    }
    Ok(parsed)
}

fn parse_span_id(field: &str, text: &str) -> Result<SpanId, String> {
    padded(text)
        .filter(|hex| hex.len() == 16)
        .and_then(|hex| hex.parse::<SpanId>().ok())
        .ok_or_else(|| format!("{field} {text:?} is not 16 hex digits"))
}

fn kind_from_text(text: &str) -> Result<Option<&'static str>, String> {
    match text {
        "CLIENT" => Ok(Some("CLIENT")),
        "SERVER" => Ok(Some("SERVER")),
        "PRODUCER" => Ok(Some("PRODUCER")),
        "CONSUMER" => Ok(Some("CONSUMER")),
        other => Err(format!(
            "kind {other:?} is not one of CLIENT, SERVER, PRODUCER, CONSUMER"
        )),
    }
}

fn empty_to_none(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

impl JsonEndpoint {
    fn into_endpoint(self) -> Endpoint {
        Endpoint {
            service_name: empty_to_none(self.service_name),
            ipv4: empty_to_none(self.ipv4),
            ipv6: empty_to_none(self.ipv6),
            port: self.port.filter(|p| *p != 0),
        }
    }
}

fn tag_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

impl JsonSpan {
    fn validate(self, position: usize) -> Result<ZipkinSpan, String> {
        let at = |e: String| format!("span {position}: {e}");
        let trace_id = parse_trace_id(
            self.trace_id
                .as_deref()
                .ok_or_else(|| at("traceId is missing".into()))?,
        )
        .map_err(at)?;
        let id = parse_span_id(
            "id",
            self.id
                .as_deref()
                .ok_or_else(|| at("id is missing".into()))?,
        )
        .map_err(at)?;
        let parent_id = match self.parent_id.as_deref() {
            None | Some("") => None,
            Some(text) => {
                Some(parse_span_id("parentId", text).map_err(at)?).filter(|p| !p.is_zero())
            }
        };
        let kind = match self.kind.as_deref() {
            None => None,
            Some(text) => kind_from_text(text).map_err(at)?,
        };
        let mut tags: Vec<(String, String)> = self
            .tags
            .into_iter()
            .map(|(k, v)| (k, tag_text(v)))
            .collect();
        tags.sort();
        Ok(ZipkinSpan {
            trace_id,
            id,
            parent_id,
            kind,
            name: self.name.unwrap_or_default(),
            timestamp_us: self.timestamp.filter(|t| *t != 0),
            duration_us: self.duration.filter(|d| *d != 0),
            local_endpoint: self.local_endpoint.map(JsonEndpoint::into_endpoint),
            remote_endpoint: self.remote_endpoint.map(JsonEndpoint::into_endpoint),
            annotations: self
                .annotations
                .into_iter()
                .map(|a| (a.timestamp, a.value))
                .collect(),
            tags,
            debug: self.debug.unwrap_or(false),
            shared: self.shared.unwrap_or(false),
        })
    }
}

/// Decodes a JSON v2 body: an array of spans.
pub fn decode_json(body: &[u8]) -> Result<Vec<ZipkinSpan>, String> {
    let spans: Vec<JsonSpan> = serde_json::from_slice(body)
        .map_err(|e| format!("invalid zipkin v2 json (expected an array of spans): {e}"))?;
    spans
        .into_iter()
        .enumerate()
        .map(|(position, span)| span.validate(position))
        .collect()
}

fn proto_endpoint(endpoint: proto::zipkin::Endpoint) -> Result<Endpoint, String> {
    let ipv4 = match endpoint.ipv4.len() {
        0 => None,
        4 => Some(
            Ipv4Addr::new(
                endpoint.ipv4[0],
                endpoint.ipv4[1],
                endpoint.ipv4[2],
                endpoint.ipv4[3],
            )
            .to_string(),
        ),
        n => return Err(format!("endpoint ipv4 has {n} bytes, expected 4")),
    };
    let ipv6 = match <[u8; 16]>::try_from(endpoint.ipv6.as_slice()) {
        Ok(bytes) => Some(Ipv6Addr::from(bytes).to_string()),
        Err(_) if endpoint.ipv6.is_empty() => None,
        Err(_) => {
            return Err(format!(
                "endpoint ipv6 has {} bytes, expected 16",
                endpoint.ipv6.len()
            ));
        }
    };
    Ok(Endpoint {
        service_name: Some(endpoint.service_name).filter(|s| !s.is_empty()),
        ipv4,
        ipv6,
        port: u16::try_from(endpoint.port).ok().filter(|p| *p != 0),
    })
}

fn proto_span(span: proto::zipkin::Span, position: usize) -> Result<ZipkinSpan, String> {
    let at = |e: String| format!("span {position}: {e}");
    let trace_id = match span.trace_id.len() {
        8 | 16 => {
            let mut bytes = [0u8; 16];
            bytes[16 - span.trace_id.len()..].copy_from_slice(&span.trace_id);
            TraceId(bytes)
        }
        n => return Err(at(format!("trace_id has {n} bytes, expected 8 or 16"))),
    };
    if trace_id.is_zero() {
        return Err(at("trace_id is all zeros".to_string()));
    }
    let id = SpanId::from_slice(&span.id)
        .ok_or_else(|| at(format!("id has {} bytes, expected 8", span.id.len())))?;
    let parent_id = match span.parent_id.len() {
        0 => None,
        _ => Some(SpanId::from_slice(&span.parent_id).ok_or_else(|| {
            at(format!(
                "parent_id has {} bytes, expected 8",
                span.parent_id.len()
            ))
        })?)
        .filter(|p| !p.is_zero()),
    };
    let kind = match proto::zipkin::Kind::try_from(span.kind) {
        Ok(proto::zipkin::Kind::SpanKindUnspecified) => None,
        Ok(proto::zipkin::Kind::Client) => Some("CLIENT"),
        Ok(proto::zipkin::Kind::Server) => Some("SERVER"),
        Ok(proto::zipkin::Kind::Producer) => Some("PRODUCER"),
        Ok(proto::zipkin::Kind::Consumer) => Some("CONSUMER"),
        Err(_) => return Err(at(format!("kind {} is not a zipkin span kind", span.kind))),
    };
    let mut tags: Vec<(String, String)> = span.tags.into_iter().collect();
    tags.sort();
    Ok(ZipkinSpan {
        trace_id,
        id,
        parent_id,
        kind,
        name: span.name,
        timestamp_us: Some(span.timestamp).filter(|t| *t != 0),
        duration_us: Some(span.duration).filter(|d| *d != 0),
        local_endpoint: span
            .local_endpoint
            .map(proto_endpoint)
            .transpose()
            .map_err(at)?,
        remote_endpoint: span
            .remote_endpoint
            .map(proto_endpoint)
            .transpose()
            .map_err(at)?,
        annotations: span
            .annotations
            .into_iter()
            .map(|a| (a.timestamp, a.value))
            .collect(),
        tags,
        debug: span.debug,
        shared: span.shared,
    })
}

/// Decodes a proto3 `ListOfSpans` body.
pub fn decode_proto(body: &[u8]) -> Result<Vec<ZipkinSpan>, String> {
    let list = proto::zipkin::ListOfSpans::decode(body)
        .map_err(|e| format!("invalid zipkin proto3 body: {e}"))?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(position, span)| proto_span(span, position))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spans_decode_and_ids_are_normalised() {
        let body = br#"[{"traceId":"5AF7183FB1D4CF5F","id":"352bff9a74ca9ad2","parentId":"0000000000000000",
            "kind":"SERVER","name":"get","timestamp":1,"duration":2,
            "localEndpoint":{"serviceName":"backend","ipv4":"10.0.0.1","port":9000},
            "tags":{"b":"2","a":1},"shared":true}]"#;
        let spans = decode_json(body).unwrap();
        assert_eq!(
            spans[0].trace_id.to_string(),
            "00000000000000005af7183fb1d4cf5f"
        );
        assert_eq!(spans[0].parent_id, None);
        assert_eq!(spans[0].kind, Some("SERVER"));
        assert_eq!(
            spans[0].tags,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(spans[0].shared);
        assert_eq!(spans[0].local_endpoint.as_ref().unwrap().port, Some(9000));
    }

    #[test]
    fn bad_json_names_the_problem() {
        assert!(decode_json(b"{}").unwrap_err().contains("array"));
        assert!(
            decode_json(br#"[{"id":"1"}]"#)
                .unwrap_err()
                .contains("traceId is missing")
        );
        assert!(
            decode_json(br#"[{"traceId":"xyz","id":"1"}]"#)
                .unwrap_err()
                .contains("traceId")
        );
        assert!(
            decode_json(br#"[{"traceId":"1","id":"1","kind":"BOSS"}]"#)
                .unwrap_err()
                .contains("kind")
        );
        assert!(
            decode_json(br#"[{"traceId":"1","id":"12345678901234567"}]"#)
                .unwrap_err()
                .contains("id")
        );
    }

    #[test]
    fn proto_spans_decode() {
        let list = proto::zipkin::ListOfSpans {
            spans: vec![proto::zipkin::Span {
                trace_id: vec![0xab; 8],
                id: vec![1; 8],
                kind: proto::zipkin::Kind::Client as i32,
                name: "call".into(),
                timestamp: 10,
                local_endpoint: Some(proto::zipkin::Endpoint {
                    service_name: "front".into(),
                    ipv4: vec![127, 0, 0, 1],
                    ipv6: vec![0; 16],
                    port: 80,
                }),
                ..Default::default()
            }],
        };
        let spans = decode_proto(&list.encode_to_vec()).unwrap();
        assert_eq!(
            spans[0].trace_id.to_string(),
            "0000000000000000abababababababab"
        );
        assert_eq!(spans[0].kind, Some("CLIENT"));
        let local = spans[0].local_endpoint.clone().unwrap();
        assert_eq!(local.ipv4.as_deref(), Some("127.0.0.1"));
        assert_eq!(local.ipv6.as_deref(), Some("::"));
        assert!(
            decode_proto(b"\x0a\x03\x0a\x01\x01")
                .unwrap_err()
                .contains("trace_id")
        );
        assert!(decode_proto(b"\xff\xff").is_err());
    }
}
