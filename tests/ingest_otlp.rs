//! OTLP ingest: the shared OTLP/JSON fixtures (as JSON and as protobuf) read back field
//! by field, the OpenTelemetry Python SDK exporting over gRPC and HTTP (also with delta
//! temporality, read back through PromQL), and bad input.

mod common;
#[path = "ingest_otlp/delta.rs"]
mod delta;
#[path = "ingest_otlp/read.rs"]
mod read;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use proto::otlp::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest, Message,
    RpcStatus, TraceServiceClient,
};
use proto::{ByteSize, TenantId};
use serde_json::Value as Json;
use storage::Storage;
use storage::model::{LogRecord, SpanRecord};
use storage::series::Labels;

use common::{TestServer, run_command};
use read::{labels, logs, map, series, span_id, spans, trace_id};

const JSON: &str = "application/json";
const PROTOBUF: &str = "application/x-protobuf";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../shared/testdata/otlp/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn post(
    base: &str,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("Content-Type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("post")
}

/// Posts a fixture as JSON for tenant `json` and, re-encoded with prost, as protobuf for tenant `protobuf`.
async fn post_both<T: Message + Default + serde::de::DeserializeOwned>(
    server: &TestServer,
    path: &str,
    name: &str,
) {
    let json = fixture(name);
    let response = post(
        &server.url(),
        path,
        JSON,
        &[("X-Scope-OrgID", "json")],
        json.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "{name}: {:?}",
        response.text().await
    );
    assert_eq!(response.headers()["content-type"], JSON);
    assert_eq!(response.text().await.expect("body"), "{}");
    let message: T = serde_json::from_str(&json).expect("fixture decodes");
    let body = message.encode_to_vec();
    let response = post(
        &server.url(),
        path,
        PROTOBUF,
        &[("X-Scope-OrgID", "protobuf")],
        body,
    )
    .await;
    assert_eq!(response.status(), 200, "{name}");
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    assert!(response.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn fixtures_come_back_field_by_field_as_json_and_as_protobuf() {
    let server = TestServer::start().await;
    let storage = server.storage();
    let (json, protobuf) = (
        TenantId::new("json").expect("tenant"),
        TenantId::new("protobuf").expect("tenant"),
    );
    let scope = [
        ("otel.scope.name", "my.library"),
        ("otel.scope.version", "1.0.0"),
    ];
    let resource = map(&[("service.name", "my.service")]);

    // trace.json: upper-case hex ids.
    post_both::<ExportTraceServiceRequest>(&server, "/v1/traces", "trace.json").await;
    let expected = SpanRecord {
        trace_id: trace_id("5b8efff798038103d269b633813fc60c"),
        span_id: span_id("eee19b7ec3c1b174"),
        parent_span_id: Some(span_id("eee19b7ec3c1b173")),
        service: "my.service".to_string(),
        name: "I'm a server span".to_string(),
        kind: "server".to_string(),
        start_ns: 1_544_712_660_000_000_000,
        duration_ns: 1_000_000_000,
        attributes: map(&[("my.span.attr", "some value"), scope[0], scope[1]]),
        resource: resource.clone(),
        ..SpanRecord::default()
    };
    assert_eq!(spans(&storage, &json).await, [expected]);
    assert_eq!(
        spans(&storage, &protobuf).await,
        spans(&storage, &json).await
    );

    // logs.json then events.json (via Loki's alias): every attribute value type, structured body.
    post_both::<ExportLogsServiceRequest>(&server, "/v1/logs", "logs.json").await;
    post_both::<ExportLogsServiceRequest>(&server, "/otlp/v1/logs", "events.json").await;
    let records = logs(&storage, &json).await;
    assert_eq!(records.len(), 2);
    let event = records
        .iter()
        .find(|r| r.attributes.contains_key("event.name"))
        .expect("event");
    let log = records
        .iter()
        .find(|r| !r.attributes.contains_key("event.name"))
        .expect("log");
    let expected_log = LogRecord {
        timestamp_ns: 1_544_712_660_300_000_000,
        observed_ns: 1_544_712_660_300_000_000,
        service: "my.service".to_string(),
        instance: None,
        severity_text: Some("Information".to_string()),
        severity_number: 10,
        body: "Example log record".to_string(),
        trace_id: Some(trace_id("5b8efff798038103d269b633813fc60c")),
        span_id: Some(span_id("eee19b7ec3c1b174")),
        attributes: map(&[
            ("string.attribute", "some string"),
            ("boolean.attribute", "true"),
            ("int.attribute", "10"),
            ("double.attribute", "637.704"),
            ("array.attribute", r#"["many","values"]"#),
            ("map.attribute", r#"{"some.map.key":"some value"}"#),
            scope[0],
            scope[1],
        ]),
        resource: resource.clone(),
    };
    assert_eq!(log, &expected_log);
    let body: Json = serde_json::from_str(&event.body).expect("event body is json");
    let expected_body = serde_json::json!({"type": 0, "url": "https://www.guidgenerator.com/online-guid-generator.aspx",
        "referrer": "https://wwww.google.com", "title": "Free Online GUID Generator"});
    assert_eq!(body, expected_body);
    let expected_attributes = map(&[
        ("event.name", "browser.page_view"),
        ("event.attribute", "some event attribute"),
        scope[0],
        scope[1],
    ]);
    assert_eq!(event.attributes, expected_attributes);
    assert_eq!(
        (event.severity_text.as_deref(), event.severity_number),
        (Some("test severity text"), 9)
    );
    assert_eq!((event.trace_id, event.span_id), (None, None));
    assert_eq!(logs(&storage, &protobuf).await, records);

    // metrics.json (via Prometheus' alias): sum, gauge, histogram, exponential histogram.
    post_both::<ExportMetricsServiceRequest>(&server, "/api/v1/otlp/v1/metrics", "metrics.json")
        .await;
    let t = 1_544_712_660_300;
    let job = ("job", "my.service");
    let point = |name: &str, attr: &str, extra: Option<(&str, &str)>, value: f64| {
        let mut pairs = vec![("__name__", name), job, (attr, "some value")];
        pairs.extend(extra);
        (labels(&pairs), vec![(t, value)])
    };
    let (h, e) = ("my_histogram_attr", "my_exponential_histogram_attr");
    let expected: BTreeMap<Labels, Vec<(i64, f64)>> = [
        point("my_counter_total", "my_counter_attr", None, 5.0),
        point("my_gauge", "my_gauge_attr", None, 10.0),
        point("my_histogram_bucket", h, Some(("le", "1")), 1.0),
        point("my_histogram_bucket", h, Some(("le", "+Inf")), 2.0),
        point("my_histogram_sum", h, None, 2.0),
        point("my_histogram_count", h, None, 2.0),
        point("my_exponential_histogram_bucket", e, Some(("le", "0")), 1.0),
        point("my_exponential_histogram_bucket", e, Some(("le", "4")), 1.0),
        point("my_exponential_histogram_bucket", e, Some(("le", "8")), 3.0),
        point(
            "my_exponential_histogram_bucket",
            e,
            Some(("le", "+Inf")),
            3.0,
        ),
        point("my_exponential_histogram_sum", e, None, 10.0),
        point("my_exponential_histogram_count", e, None, 3.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(series(&storage, &json, ".+").await, expected);
    assert_eq!(series(&storage, &protobuf, ".+").await, expected);
    let mut metadata: Vec<(String, String, String, String)> = storage
        .metric_metadata(&json)
        .into_iter()
        .map(|m| (m.metric, m.kind.as_str().to_string(), m.help, m.unit))
        .collect();
    metadata.sort();
    let row = |name: &str, kind: &str, help: &str| {
        (
            name.to_string(),
            kind.to_string(),
            help.to_string(),
            "1".to_string(),
        )
    };
    assert_eq!(
        metadata,
        [
            row("my_counter_total", "counter", "I am a Counter"),
            row(
                "my_exponential_histogram",
                "histogram",
                "I am an Exponential Histogram"
            ),
            row("my_gauge", "gauge", "I am a Gauge"),
            row("my_histogram", "histogram", "I am a Histogram"),
        ]
    );
    server.stop().await;
}

fn python_export(protocol: &str, endpoint: String) -> Json {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otlp_export.py");
    let output = run_command(Command::new("python3").args([script, protocol, endpoint.as_str()]));
    serde_json::from_str(output.trim())
        .unwrap_or_else(|e| panic!("bad script output {output:?}: {e}"))
}

async fn check_python_export(storage: &Storage, protocol: &str, ids: &Json) {
    let tenant = TenantId::default();
    let service = format!("py-{protocol}");
    let ids = |key: &str| ids[key].as_str().expect("id in script output").to_string();
    let (trace, root_id, child_id) = (
        trace_id(&ids("trace_id")),
        span_id(&ids("root_span_id")),
        span_id(&ids("child_span_id")),
    );

    let spans: Vec<SpanRecord> = spans(storage, &tenant)
        .await
        .into_iter()
        .filter(|s| s.service == service)
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let root = spans
        .iter()
        .find(|s| s.span_id == root_id)
        .expect("root span");
    let child = spans
        .iter()
        .find(|s| s.span_id == child_id)
        .expect("child span");
    assert_eq!(
        (
            root.trace_id,
            root.parent_span_id,
            root.name.as_str(),
            root.kind.as_str()
        ),
        (trace, None, "checkout", "server")
    );
    assert_eq!(
        (child.trace_id, child.parent_span_id, child.name.as_str()),
        (trace, Some(root_id), "charge")
    );
    assert_eq!(
        (child.kind.as_str(), child.peer_service.as_deref()),
        ("client", Some("payments"))
    );
    assert_eq!(root.instance.as_deref(), Some("py-1"));
    for (key, value) in [
        ("http.request.method", "GET"),
        ("retries", "2"),
        ("cached", "false"),
        ("ratio", "0.5"),
    ] {
        assert_eq!(
            root.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(
        root.attributes.get("otel.scope.name").map(String::as_str),
        Some("sightline.test")
    );
    assert_eq!(
        root.resource
            .get("deployment.environment")
            .map(String::as_str),
        Some("test")
    );
    assert!(root.duration_ns >= child.duration_ns && child.start_ns >= root.start_ns);

    let records: Vec<LogRecord> = logs(storage, &tenant)
        .await
        .into_iter()
        .filter(|l| l.service == service)
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let log = &records[0];
    assert_eq!(
        (log.body.as_str(), log.trace_id, log.span_id),
        ("payment slow", Some(trace), Some(child_id))
    );
    assert_eq!(
        (log.severity_text.as_deref(), log.severity_number),
        (Some("WARN"), 13)
    );
    assert_eq!(
        log.attributes.get("order.id").map(String::as_str),
        Some("o-42")
    );

    let base = [
        ("instance", "py-1"),
        ("job", service.as_str()),
        ("region", "eu"),
    ];
    let value_of = |found: &BTreeMap<Labels, Vec<(i64, f64)>>, extra: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        let samples = found
            .get(&labels(&pairs))
            .unwrap_or_else(|| panic!("no series {pairs:?} in {found:?}"));
        samples.last().map(|(_, value)| *value)
    };
    let found = series(storage, &tenant, "orders_total|order_value_.*").await;
    assert_eq!(value_of(&found, &[("__name__", "orders_total")]), Some(3.0));
    assert_eq!(
        value_of(&found, &[("__name__", "order_value_count")]),
        Some(3.0)
    );
    assert_eq!(
        value_of(&found, &[("__name__", "order_value_sum")]),
        Some(555.0)
    );
    for (le, count) in [
        ("5", 1.0),
        ("10", 1.0),
        ("50", 2.0),
        ("500", 3.0),
        ("+Inf", 3.0),
    ] {
        assert_eq!(
            value_of(&found, &[("__name__", "order_value_bucket"), ("le", le)]),
            Some(count),
            "le={le}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_over_grpc_and_http() {
    let server = TestServer::start().await;
    let grpc = server.grpc_addr().to_string();
    let ids = tokio::task::spawn_blocking(move || python_export("grpc", grpc))
        .await
        .expect("script");
    check_python_export(&server.storage(), "grpc", &ids).await;
    let http = format!("http://{}", server.otlp_http_addr());
    let ids = tokio::task::spawn_blocking(move || python_export("http", http))
        .await
        .expect("script");
    check_python_export(&server.storage(), "http", &ids).await;
    server.stop().await;
}

async fn span_count(storage: &Storage) -> usize {
    spans(storage, &TenantId::default()).await.len()
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let server = TestServer::start_with(|config| {
        config.ingest.max_request_size = ByteSize(256 * 1024);
        config.ingest.max_decompressed_size = ByteSize::mib(1);
    })
    .await;
    let storage = server.storage();
    let otlp_http = format!("http://{}", server.otlp_http_addr());

    // Garbage protobuf: 400 with a protobuf google.rpc.Status naming the problem.
    let response = post(
        &otlp_http,
        "/v1/traces",
        PROTOBUF,
        &[],
        b"\x0a\xff\xff\xff\xff".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let status = RpcStatus::decode(response.bytes().await.expect("body")).expect("status body");
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("invalid otlp protobuf body"),
        "{}",
        status.message
    );

    // JSON whose every span is invalid: 400 with a JSON status.
    let bad_ids = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0102030405060708","name":"x"}]}]}]}"#;
    let response = post(
        &otlp_http,
        "/v1/traces",
        JSON,
        &[],
        bad_ids.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Json = response.json().await.expect("json status");
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("trace id has 2 bytes")),
        "{body}"
    );

    // Wrong content type: 415. Gzip bomb: 413.
    let response = post(&otlp_http, "/v1/logs", "text/plain", &[], b"hello".to_vec()).await;
    assert_eq!(response.status(), 415);
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let response = post(
        &otlp_http,
        "/v1/metrics",
        JSON,
        &[("Content-Encoding", "gzip")],
        bomb,
    )
    .await;
    assert_eq!(response.status(), 413);
    assert_eq!(span_count(&storage).await, 0);
    assert!(
        storage
            .select_series(&TenantId::default(), &[], i64::MIN, i64::MAX)
            .is_empty()
    );

    // One good span and one an hour and more in the future, gzipped: partial success.
    let mut request: ExportTraceServiceRequest =
        serde_json::from_str(&fixture("trace.json")).expect("fixture");
    let mut future = request.resource_spans[0].scope_spans[0].spans[0].clone();
    future.span_id = vec![9; 8];
    future.start_time_unix_nano = u64::MAX / 2;
    request.resource_spans[0].scope_spans[0].spans.push(future);
    let body = gzip(serde_json::to_string(&request).expect("json").as_bytes());
    let response = post(
        &otlp_http,
        "/v1/traces",
        JSON,
        &[("Content-Encoding", "gzip")],
        body,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Json = response.json().await.expect("json response");
    let rejected = &body["partialSuccess"]["rejectedSpans"];
    assert!(rejected == 1 || rejected == "1", "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("future")),
        "{body}"
    );
    assert_eq!(span_count(&storage).await, 1);

    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("metrics text");
    assert!(
        text.contains("sightline_ingested_spans_total{protocol=\"otlp_http\"} 1\n"),
        "{text}"
    );

    // gRPC: invalid spans are INVALID_ARGUMENT; a gzip-compressed export for tenant team-a is kept.
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc_addr()))
        .await
        .expect("grpc connect")
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let invalid: ExportTraceServiceRequest = serde_json::from_str(bad_ids).expect("json");
    let refused = client
        .export(invalid)
        .await
        .expect_err("invalid spans are refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let mut good: ExportTraceServiceRequest =
        serde_json::from_str(&fixture("trace.json")).expect("fixture");
    good.resource_spans[0].scope_spans[0].spans.truncate(1);
    let mut call = tonic::Request::new(good);
    call.metadata_mut()
        .insert("x-scope-orgid", "team-a".parse().expect("metadata"));
    let response = client.export(call).await.expect("grpc export").into_inner();
    assert_eq!(response.partial_success, None);
    assert_eq!(
        spans(&storage, &TenantId::new("team-a").expect("tenant"))
            .await
            .len(),
        1
    );
    assert_eq!(span_count(&storage).await, 1);
    server.stop().await;
}
