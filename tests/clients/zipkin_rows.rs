//! Reads span rows back from storage as [`SpanRecord`]s, and turns Zipkin JSON fixture
//! spans into proto3 messages, for tests/ingest_zipkin.rs.
#![allow(dead_code)]

use arrow::array::{
    Array, AsArray, FixedSizeBinaryArray, Int32Array, Int64Array, MapArray, RecordBatch,
    StringArray, TimestampNanosecondArray,
};
use proto::{SpanId, TenantId, TraceId};
use serde_json::Value;
use storage::SpanScan;
use storage::model::{Attributes, SpanRecord};

use crate::common::TestServer;

pub fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(name).expect("column");
    let array = array.as_any().downcast_ref::<StringArray>().expect("utf8");
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
        .collect()
}

pub fn maps(batch: &RecordBatch, name: &str) -> Vec<Attributes> {
    let array = batch.column_by_name(name).expect("column");
    let array = array.as_any().downcast_ref::<MapArray>().expect("map");
    (0..array.len())
        .map(|i| {
            let entries = array.value(i);
            let (keys, values) = (
                entries.column(0).as_string::<i32>(),
                entries.column(1).as_string::<i32>(),
            );
            (0..keys.len())
                .map(|j| (keys.value(j).to_string(), values.value(j).to_string()))
                .collect()
        })
        .collect()
}

pub fn ids<const N: usize>(batch: &RecordBatch, name: &str) -> Vec<Option<[u8; N]>> {
    let array = batch.column_by_name(name).expect("column");
    let array = array
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .expect("fixed binary");
    (0..array.len())
        .map(|i| {
            array
                .is_valid(i)
                .then(|| array.value(i).try_into().expect("width"))
        })
        .collect()
}

/// Every span row of `tenant`, sorted by (trace, span, kind).
pub async fn spans(server: &TestServer, tenant: &str) -> Vec<SpanRecord> {
    let tenant = TenantId::new(tenant).expect("tenant");
    let scan = SpanScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..Default::default()
    };
    let mut out = Vec::new();
    for batch in server
        .storage()
        .scan_spans(&tenant, &scan)
        .await
        .expect("scan")
    {
        let batch = &batch;
        let start = batch.column_by_name("start").expect("start");
        let start = start
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .expect("ts");
        let duration = batch.column_by_name("duration_ns").expect("duration");
        let duration = duration.as_any().downcast_ref::<Int64Array>().expect("i64");
        let status = batch.column_by_name("status_code").expect("status");
        let status = status.as_any().downcast_ref::<Int32Array>().expect("i32");
        let (trace, span, parent) = (
            ids::<16>(batch, "trace_id"),
            ids::<8>(batch, "span_id"),
            ids::<8>(batch, "parent_span_id"),
        );
        let (service, instance, name, kind) = (
            strings(batch, "service"),
            strings(batch, "instance"),
            strings(batch, "name"),
            strings(batch, "kind"),
        );
        let (message, peer, events) = (
            strings(batch, "status_message"),
            strings(batch, "peer_service"),
            strings(batch, "events"),
        );
        let (attributes, resource) = (maps(batch, "attributes"), maps(batch, "resource"));
        for i in 0..batch.num_rows() {
            out.push(SpanRecord {
                trace_id: TraceId(trace[i].expect("trace id")),
                span_id: SpanId(span[i].expect("span id")),
                parent_span_id: parent[i].map(SpanId),
                service: service[i].clone().unwrap_or_default(),
                instance: instance[i].clone(),
                name: name[i].clone().unwrap_or_default(),
                kind: kind[i].clone().unwrap_or_default(),
                start_ns: start.value(i),
                duration_ns: duration.value(i),
                status_code: status.value(i),
                status_message: message[i].clone(),
                peer_service: peer[i].clone(),
                attributes: attributes[i].clone(),
                resource: resource[i].clone(),
                events: events[i].clone(),
                links: None,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.trace_id, a.span_id, &a.kind, a.start_ns)
            .cmp(&(b.trace_id, b.span_id, &b.kind, b.start_ns))
    });
    out
}

pub fn padded(text: &str, width: usize) -> String {
    format!("{:0>width$}", text.to_ascii_lowercase())
}

pub fn hex_bytes(text: &str, width: usize) -> Vec<u8> {
    let text = padded(text, width);
    (0..width / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

pub fn proto_endpoint(value: &Value) -> Option<proto::zipkin::Endpoint> {
    value.as_object()?;
    Some(proto::zipkin::Endpoint {
        service_name: value["serviceName"].as_str().unwrap_or("").to_string(),
        ipv4: value["ipv4"]
            .as_str()
            .map(|ip| {
                ip.parse::<std::net::Ipv4Addr>()
                    .expect("ipv4")
                    .octets()
                    .to_vec()
            })
            .unwrap_or_default(),
        ipv6: value["ipv6"]
            .as_str()
            .map(|ip| {
                ip.parse::<std::net::Ipv6Addr>()
                    .expect("ipv6")
                    .octets()
                    .to_vec()
            })
            .unwrap_or_default(),
        port: value["port"]
            .as_i64()
            .map_or(0, |p| i32::try_from(p).expect("port")),
    })
}

/// The fixture span as a proto3 message.
pub fn to_proto(span: &Value) -> proto::zipkin::Span {
    use proto::zipkin::Kind;
    let kind = match span["kind"].as_str() {
        Some("CLIENT") => Kind::Client,
        Some("SERVER") => Kind::Server,
        Some("PRODUCER") => Kind::Producer,
        Some("CONSUMER") => Kind::Consumer,
        _ => Kind::SpanKindUnspecified,
    };
    let trace = span["traceId"].as_str().expect("traceId");
    proto::zipkin::Span {
        trace_id: hex_bytes(trace, if trace.len() > 16 { 32 } else { 16 }),
        parent_id: span["parentId"]
            .as_str()
            .map(|p| hex_bytes(p, 16))
            .unwrap_or_default(),
        id: hex_bytes(span["id"].as_str().expect("id"), 16),
        kind: kind as i32,
        name: span["name"].as_str().unwrap_or("").to_string(),
        timestamp: span["timestamp"].as_u64().unwrap_or(0),
        duration: span["duration"].as_u64().unwrap_or(0),
        local_endpoint: proto_endpoint(&span["localEndpoint"]),
        remote_endpoint: proto_endpoint(&span["remoteEndpoint"]),
        annotations: span["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| proto::zipkin::Annotation {
                timestamp: a["timestamp"].as_u64().expect("ts"),
                value: a["value"].as_str().expect("value").to_string(),
            })
            .collect(),
        tags: span["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().expect("tag").to_string()))
            .collect(),
        debug: span["debug"] == true,
        shared: span["shared"] == true,
    }
}
