//! Helpers shared by the trace read tests (read_zipkin, read_tempo, read_jaeger).
#![allow(dead_code)]

use serde_json::Value;

use crate::common::TestServer;

pub const ZIPKIN_TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/zipkin");

/// Left-pads a hex id with zeros to `width` and lowercases it.
pub fn padded(id: &str, width: usize) -> String {
    format!("{:0>width$}", id.to_ascii_lowercase())
}

/// The Zipkin fixture files: the ten zipkin-lens traces and the two benchmark spans
/// (wrapped in a list), as (file name, request body, spans).
pub fn zipkin_fixtures() -> Vec<(String, Vec<u8>, Vec<Value>)> {
    let mut files: Vec<_> = std::fs::read_dir(format!("{ZIPKIN_TESTDATA}/zipkin-lens-testdata"))
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.push(format!("{ZIPKIN_TESTDATA}/benchmarks/zipkin2-client.json").into());
    files.push(format!("{ZIPKIN_TESTDATA}/benchmarks/zipkin2-chinese.json").into());
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("read fixture");
            match serde_json::from_str(&text).expect("json") {
                Value::Array(spans) => (name, text.into_bytes(), spans),
                single @ Value::Object(_) => (name, format!("[{text}]").into_bytes(), vec![single]),
                _ => panic!("{name}: not a span list"),
            }
        })
        .collect()
}

/// Posts Zipkin JSON spans for `tenant`.
pub async fn post_zipkin(server: &TestServer, tenant: &str, body: Vec<u8>) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/spans", server.url()))
        .header("content-type", "application/json")
        .header("x-scope-orgid", tenant)
        .body(body)
        .send()
        .await
        .expect("post spans");
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

/// GETs `url` for `tenant`, returning the status and the body.
pub async fn get(url: &str, tenant: &str, accept: &str) -> (u16, Vec<u8>, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("x-scope-orgid", tenant)
        .header("accept", accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        status,
        response.bytes().await.expect("body").to_vec(),
        content_type,
    )
}

/// GETs `url` for `tenant` and decodes a 200 JSON body.
pub async fn get_json(url: &str, tenant: &str) -> Value {
    let (status, body, _) = get(url, tenant, "application/json").await;
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Posts the Zipkin fixture `name` (a zipkin-lens file) for `tenant`, returning its spans.
pub async fn load_fixture(server: &TestServer, tenant: &str, name: &str) -> Vec<Value> {
    let (_, body, spans) = zipkin_fixtures()
        .into_iter()
        .find(|(file, _, _)| file == name)
        .expect("fixture");
    post_zipkin(server, tenant, body).await;
    spans
}

use proto::otlp::{
    AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Message, Resource,
    ResourceSpans, ScopeSpans, Span, Status, any_value, span,
};

/// Trace A: a checkout that failed in the cart service.
///
/// ```text
/// api   GET /checkout  server  900ms            (root)
///  ├─ api  call cart   client  500ms  peer.service=cart
///  │   └─ cart  POST /cart  server  400ms  ERROR "boom", http.status_code=500 (int)
///  │        └─ cart  SELECT  client  50ms  db.system=postgres, peer.service=postgres, event "retry"
///  └─ api  render  internal  10ms
/// ```
pub const TRACE_A: [u8; 16] = [0x0a; 16];
/// Trace B: one quick health check on `api`, 5 ms, status OK.
pub const TRACE_B: [u8; 16] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
];

const MS: u64 = 1_000_000;

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn otlp_span(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    name: &str,
    kind: span::SpanKind,
    start: u64,
    duration: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes,
        ..Span::default()
    }
}

fn resource(service: &str, host: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string("service.name", service), string("host.name", host)],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "io.test".into(),
                version: "1.0".into(),
                ..InstrumentationScope::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// The two traces, trace A starting at `start_ns`, trace B 2 s after it.
pub fn otlp_traces(start_ns: u64) -> ExportTraceServiceRequest {
    use span::SpanKind::*;
    let t = start_ns;
    let a = TRACE_A;
    let mut cart = otlp_span(
        a,
        3,
        Some(2),
        "POST /cart",
        Server,
        t + 20 * MS,
        400 * MS,
        vec![
            int("http.status_code", 500),
            string("http.url", "/cart?id=1"),
        ],
    );
    cart.status = Some(Status {
        message: "boom".into(),
        code: 2,
    });
    let mut select = otlp_span(
        a,
        4,
        Some(3),
        "SELECT",
        Client,
        t + 30 * MS,
        50 * MS,
        vec![
            string("db.system", "postgres"),
            string("peer.service", "postgres"),
        ],
    );
    select.events = vec![span::Event {
        time_unix_nano: t + 40 * MS,
        name: "retry".into(),
        attributes: vec![int("attempt", 2)],
        dropped_attributes_count: 0,
    }];
    let mut health = otlp_span(
        TRACE_B,
        1,
        None,
        "GET /health",
        Server,
        t + 2_000 * MS,
        5 * MS,
        vec![int("http.status_code", 200)],
    );
    health.status = Some(Status {
        message: String::new(),
        code: 1,
    });
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource(
                "api",
                "h1",
                vec![
                    otlp_span(
                        a,
                        1,
                        None,
                        "GET /checkout",
                        Server,
                        t,
                        900 * MS,
                        vec![string("http.method", "GET")],
                    ),
                    otlp_span(
                        a,
                        2,
                        Some(1),
                        "call cart",
                        Client,
                        t + 10 * MS,
                        500 * MS,
                        vec![string("peer.service", "cart")],
                    ),
                    otlp_span(
                        a,
                        5,
                        Some(1),
                        "render",
                        Internal,
                        t + 800 * MS,
                        10 * MS,
                        vec![],
                    ),
                    health,
                ],
            ),
            resource("cart", "h2", vec![cart, select]),
        ],
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// Writes [`otlp_traces`] through OTLP/HTTP protobuf for `tenant`, trace A starting
/// a minute ago; returns that start.
pub async fn load_otlp(server: &TestServer, tenant: &str) -> u64 {
    let start = now_ns() - 60_000_000_000;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url()))
        .header("content-type", "application/x-protobuf")
        .header("x-scope-orgid", tenant)
        .body(otlp_traces(start).encode_to_vec())
        .send()
        .await
        .expect("post otlp");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    start
}
