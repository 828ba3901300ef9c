//! OTLP spans → [`SpanRecord`]s.

use proto::TenantId;
use proto::otlp::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse, Span, span,
};
use serde_json::{Value as Json, json};
use storage::model::SpanRecord;

use super::convert::{
    Origin, Rejections, attributes_json, insert_attributes, insert_scope, nanos, now_ns, origin,
    span_id, too_far_in_future, trace_id,
};
use crate::{Error, IngestService, Protocol, Result};

/// Converts, stores and answers one trace export.
pub(crate) async fn export(
    service: &IngestService,
    protocol: Protocol,
    tenant: &TenantId,
    request: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse> {
    let (records, rejections) = convert(&request, now_ns());
    if records.is_empty() && rejections.count > 0 {
        return Err(Error::BadRequest(format!(
            "every span was rejected: {}",
            rejections.message()
        )));
    }
    service.write_spans(protocol, tenant, &records).await?;
    if rejections.count > 0 {
        tracing::debug!(tenant = %tenant, rejected = rejections.count, "otlp spans partially rejected");
    }
    Ok(ExportTraceServiceResponse {
        partial_success: (rejections.count > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
            error_message: rejections.message(),
        }),
    })
}

/// Maps every span of the request; invalid spans are counted, not kept.
pub(crate) fn convert(
    request: &ExportTraceServiceRequest,
    now_ns: i64,
) -> (Vec<SpanRecord>, Rejections) {
    let mut records = Vec::new();
    let mut rejections = Rejections::default();
    for resource_spans in &request.resource_spans {
        let origin = origin(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                match convert_span(span, &origin, now_ns) {
                    Ok(mut record) => {
                        insert_scope(&mut record.attributes, scope_spans.scope.as_ref());
                        records.push(record);
                    }
                    Err(reason) => rejections.reject(1, || reason),
                }
            }
        }
    }
    (records, rejections)
}

/// Our name for an OTLP span kind.
pub(crate) fn kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => "internal",
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        Ok(span::SpanKind::Unspecified) | Err(_) => "unspecified",
    }
}

fn convert_span(span: &Span, origin: &Origin, now_ns: i64) -> Result<SpanRecord, String> {
    let name = &span.name;
    let trace = trace_id(&span.trace_id)
        .map_err(|e| format!("span {name:?}: {e}"))?
        .ok_or_else(|| format!("span {name:?} has no trace id"))?;
    let id = span_id(&span.span_id)
        .map_err(|e| format!("span {name:?}: {e}"))?
        .ok_or_else(|| format!("span {name:?} has no span id"))?;
    let parent = span_id(&span.parent_span_id).map_err(|e| format!("span {name:?} parent: {e}"))?;
    let start_ns = nanos(span.start_time_unix_nano);
    let end_ns = nanos(span.end_time_unix_nano);
    if too_far_in_future(start_ns, now_ns) {
        return Err(format!(
            "span {name:?} starts more than 1h in the future ({start_ns} ns)"
        ));
    }
    let duration_ns = end_ns.saturating_sub(start_ns).max(0);

    let mut attributes = storage::model::Attributes::new();
    insert_attributes(&mut attributes, &span.attributes);
    let kind = kind_name(span.kind);
    let peer_service = attributes.get("peer.service").cloned().or_else(|| {
        (kind == "client")
            .then(|| {
                ["server.address", "net.peer.name"]
                    .iter()
                    .find_map(|key| attributes.get(*key).cloned())
            })
            .flatten()
    });
    let status = span.status.clone().unwrap_or_default();
    Ok(SpanRecord {
        trace_id: trace,
        span_id: id,
        parent_span_id: parent,
        service: origin.service.clone(),
        instance: origin.instance.clone(),
        name: name.clone(),
        kind: kind.to_string(),
        start_ns,
        duration_ns,
        status_code: status.code.clamp(0, 2),
        status_message: (!status.message.is_empty()).then_some(status.message),
        peer_service: peer_service.filter(|peer| !peer.is_empty()),
        attributes,
        resource: origin.resource.clone(),
        events: events_json(span),
        links: links_json(span),
    })
}

/// Span events as compact JSON: `[{"time_unix_nano":…,"name":…,"attributes":{…}}]`.
fn events_json(span: &Span) -> Option<String> {
    if span.events.is_empty() {
        return None;
    }
    let events: Vec<Json> = span
        .events
        .iter()
        .map(|event| {
            json!({
                "time_unix_nano": event.time_unix_nano,
                "name": event.name,
                "attributes": attributes_json(&event.attributes),
            })
        })
        .collect();
    Some(Json::Array(events).to_string())
}

/// Span links as compact JSON: `[{"trace_id":"<hex>","span_id":"<hex>","trace_state":…,"attributes":{…}}]`.
fn links_json(span: &Span) -> Option<String> {
    if span.links.is_empty() {
        return None;
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let links: Vec<Json> = span
        .links
        .iter()
        .map(|link| {
            json!({
                "trace_id": hex(&link.trace_id),
                "span_id": hex(&link.span_id),
                "trace_state": link.trace_state,
                "attributes": attributes_json(&link.attributes),
            })
        })
        .collect();
    Some(Json::Array(links).to_string())
}

#[cfg(test)]
mod tests {
    use proto::otlp::{InstrumentationScope, Resource, ResourceSpans, ScopeSpans, Status};
    use proto::{SpanId, TraceId};

    use super::super::convert::tests::{kv, string};
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", string("checkout")),
                        kv("host.name", string("h1")),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.test".to_string(),
                        version: "1.2".to_string(),
                        ..InstrumentationScope::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn client_span() -> Span {
        Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01; 8],
            parent_span_id: vec![0x02; 8],
            name: "GET /cart".to_string(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 251_000,
            attributes: vec![kv("server.address", string("cart"))],
            status: Some(Status {
                message: "boom".to_string(),
                code: 2,
            }),
            events: vec![span::Event {
                time_unix_nano: 2_000,
                name: "retry".to_string(),
                attributes: vec![kv("attempt", string("2"))],
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link {
                trace_id: vec![0xcd; 16],
                span_id: vec![0x03; 8],
                ..span::Link::default()
            }],
            ..Span::default()
        }
    }

    #[test]
    fn a_client_span_maps_every_field() {
        let (records, rejections) = convert(&request(vec![client_span()]), NOW);
        assert_eq!(rejections.count, 0);
        let record = &records[0];
        assert_eq!(record.trace_id, TraceId([0xab; 16]));
        assert_eq!(record.span_id, SpanId([1; 8]));
        assert_eq!(record.parent_span_id, Some(SpanId([2; 8])));
        assert_eq!(
            (record.service.as_str(), record.instance.as_deref()),
            ("checkout", Some("h1"))
        );
        assert_eq!(
            (record.kind.as_str(), record.start_ns, record.duration_ns),
            ("client", 1_000, 250_000)
        );
        assert_eq!(
            (record.status_code, record.status_message.as_deref()),
            (2, Some("boom"))
        );
        assert_eq!(record.peer_service.as_deref(), Some("cart"));
        assert_eq!(record.attributes["otel.scope.name"], "io.test");
        assert_eq!(record.attributes["otel.scope.version"], "1.2");
        assert_eq!(record.resource["host.name"], "h1");
        let events: Json =
            serde_json::from_str(record.events.as_deref().unwrap_or("")).unwrap_or_default();
        assert_eq!(
            events,
            json!([{"time_unix_nano": 2000, "name": "retry", "attributes": {"attempt": "2"}}])
        );
        assert!(
            record
                .links
                .as_deref()
                .is_some_and(|links| links.contains(&"cd".repeat(16)))
        );
    }

    #[test]
    fn peer_service_attribute_wins_and_server_address_is_for_clients_only() {
        let mut span = client_span();
        span.attributes.push(kv("peer.service", string("cart-svc")));
        let (records, _) = convert(&request(vec![span]), NOW);
        assert_eq!(records[0].peer_service.as_deref(), Some("cart-svc"));
        let mut server = client_span();
        server.kind = span::SpanKind::Server as i32;
        let (records, _) = convert(&request(vec![server]), NOW);
        assert_eq!(records[0].peer_service, None);
    }

    #[test]
    fn kinds_map_to_our_names() {
        let names: Vec<&str> = (0..7).map(kind_name).collect();
        assert_eq!(
            names,
            [
                "unspecified",
                "internal",
                "server",
                "client",
                "producer",
                "consumer",
                "unspecified"
            ]
        );
    }

    #[test]
    fn bad_ids_and_future_spans_are_rejected_one_by_one() {
        let mut short_id = client_span();
        short_id.trace_id = vec![1; 4];
        let mut no_span_id = client_span();
        no_span_id.span_id.clear();
        let mut future = client_span();
        future.start_time_unix_nano =
            u64::try_from(NOW + 2 * 3_600_000_000_000).unwrap_or(u64::MAX);
        let (records, rejections) = convert(
            &request(vec![short_id, no_span_id, future, client_span()]),
            NOW,
        );
        assert_eq!((records.len(), rejections.count), (1, 3));
        assert!(rejections.message().contains("trace id has 4 bytes"));
    }
}
