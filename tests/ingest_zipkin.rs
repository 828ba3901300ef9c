//! Zipkin v2 ingest: every fixture of `../shared/testdata/zipkin/` as JSON (and one as
//! proto3), py_zipkin's HTTP transport in both encodings, and bad input.

mod common;
#[path = "clients/zipkin_rows.rs"]
mod zipkin_rows;

use std::collections::BTreeMap;
use std::process::Command;

use prost::Message;
use proto::TraceId;
use serde_json::Value;
use storage::model::SpanRecord;
use zipkin_rows::{padded, spans, to_proto};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/zipkin");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// Checks one stored row against the fixture's JSON span, field by field.
fn assert_span_matches(row: &SpanRecord, span: &Value, file: &str) {
    let what = format!("{file} span {}", span["id"]);
    let text = |key: &str| span[key].as_str();
    assert_eq!(
        row.trace_id.to_string(),
        padded(text("traceId").expect("traceId"), 32),
        "{what}"
    );
    assert_eq!(
        row.span_id.to_string(),
        padded(text("id").expect("id"), 16),
        "{what}"
    );
    assert_eq!(
        row.parent_span_id.map(|p| p.to_string()),
        text("parentId").map(|p| padded(p, 16)),
        "{what}"
    );
    assert_eq!(row.name, text("name").unwrap_or(""), "{what}");
    let kind = text("kind").map_or("unspecified".to_string(), str::to_ascii_lowercase);
    assert_eq!(row.kind, kind, "{what}");
    assert_eq!(
        row.start_ns,
        span["timestamp"].as_i64().unwrap_or(0) * 1000,
        "{what}"
    );
    assert_eq!(
        row.duration_ns,
        span["duration"].as_i64().unwrap_or(0) * 1000,
        "{what}"
    );
    let service = span["localEndpoint"]["serviceName"]
        .as_str()
        .unwrap_or("unknown_service");
    assert_eq!(row.service, service, "{what}");
    assert_eq!(
        row.resource.get("service.name").map(String::as_str),
        Some(service),
        "{what}"
    );
    assert_eq!(
        row.peer_service.as_deref(),
        span["remoteEndpoint"]["serviceName"].as_str(),
        "{what}"
    );
    let local = &span["localEndpoint"];
    if let Some(ipv4) = local["ipv4"].as_str() {
        let expected = match local["port"].as_u64() {
            Some(port) => format!("{ipv4}:{port}"),
            None => ipv4.to_string(),
        };
        assert_eq!(row.instance.as_deref(), Some(expected.as_str()), "{what}");
    }
    let tags: BTreeMap<String, String> = span["tags"]
        .as_object()
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string tag").to_string()))
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in &tags {
        assert_eq!(row.attributes.get(key), Some(value), "{what} tag {key}");
    }
    let extra: Vec<&String> = row
        .attributes
        .keys()
        .filter(|k| !tags.contains_key(*k) && !k.starts_with("zipkin."))
        .collect();
    assert!(extra.is_empty(), "{what}: unexpected attributes {extra:?}");
    assert_eq!(
        row.attributes.contains_key("zipkin.shared"),
        span["shared"] == true,
        "{what}"
    );
    match tags.get("error") {
        Some(message) => {
            assert_eq!(row.status_code, 2, "{what}");
            assert_eq!(
                row.status_message.as_deref(),
                Some(message.as_str()).filter(|m| !m.is_empty()),
                "{what}"
            );
        }
        None => assert_eq!(row.status_code, 0, "{what}"),
    }
    let annotations = span["annotations"].as_array().map_or(0, Vec::len);
    let events: Vec<Value> = row
        .events
        .as_deref()
        .map(|e| serde_json::from_str(e).expect("events json"))
        .unwrap_or_default();
    assert_eq!(events.len(), annotations, "{what}");
    for (event, annotation) in events
        .iter()
        .zip(span["annotations"].as_array().into_iter().flatten())
    {
        assert_eq!(event["name"], annotation["value"], "{what}");
        assert_eq!(
            event["time_unix_nano"].as_u64(),
            annotation["timestamp"].as_u64().map(|t| t * 1000),
            "{what}"
        );
    }
}

/// Checks that `rows` are exactly the fixture's spans (one row per span, shared halves apart).
fn assert_rows_match(rows: &[SpanRecord], fixture: &[Value], file: &str) {
    assert_eq!(rows.len(), fixture.len(), "{file}: row count");
    let mut expected: Vec<&Value> = fixture.iter().collect();
    let key = |span: &Value| {
        (
            padded(span["traceId"].as_str().unwrap_or(""), 32),
            padded(span["id"].as_str().unwrap_or(""), 16),
            span["kind"]
                .as_str()
                .map_or("unspecified".to_string(), str::to_ascii_lowercase),
            span["timestamp"].as_i64().unwrap_or(0) * 1000,
        )
    };
    expected.sort_by_key(|span| key(span));
    for (row, span) in rows.iter().zip(expected) {
        assert_span_matches(row, span, file);
    }
}

async fn post(
    server: &common::TestServer,
    tenant: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v2/spans", server.url()))
        .header("content-type", content_type)
        .header("x-scope-orgid", tenant)
        .body(body)
        .send()
        .await
        .expect("post spans")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_round_trips() {
    let server = common::TestServer::start().await;
    let mut files: Vec<_> = std::fs::read_dir(format!("{TESTDATA}/zipkin-lens-testdata"))
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 10);
    // The two benchmark files are single span objects: wrapped in [...] as SOURCE.md says.
    files.push(format!("{TESTDATA}/benchmarks/zipkin2-client.json").into());
    files.push(format!("{TESTDATA}/benchmarks/zipkin2-chinese.json").into());
    let mut total = 0;
    for (number, path) in files.iter().enumerate() {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(path).expect("read fixture");
        let value: Value = serde_json::from_str(&text).expect("fixture json");
        let (body, fixture) = match value {
            Value::Array(spans) => (text.into_bytes(), spans),
            single @ Value::Object(_) => (format!("[{text}]").into_bytes(), vec![single]),
            _ => panic!("{file}: not a span list"),
        };
        let tenant = format!("zipkin-{number}");
        let response = post(&server, &tenant, "application/json", body).await;
        assert_eq!(
            response.status(),
            202,
            "{file}: {:?}",
            response.text().await
        );
        let rows = spans(&server, &tenant).await;
        assert_rows_match(&rows, &fixture, &file);
        total += rows.len();
    }
    assert_eq!(total, 8 + 1 + 4 + 11 + 28 + 5 + 4 + 16 + 175 + 1041 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto3_and_gzip_bodies_round_trip() {
    let server = common::TestServer::start().await;
    for (tenant, file) in [
        ("proto-yelp", "zipkin-lens-testdata/yelp.json"),
        ("proto-skew", "zipkin-lens-testdata/skew.json"),
    ] {
        let text = std::fs::read_to_string(format!("{TESTDATA}/{file}")).expect("fixture");
        let fixture: Vec<Value> = serde_json::from_str(&text).expect("json");
        let list = proto::zipkin::ListOfSpans {
            spans: fixture.iter().map(to_proto).collect(),
        };
        let response = post(
            &server,
            tenant,
            "application/x-protobuf",
            list.encode_to_vec(),
        )
        .await;
        assert_eq!(response.status(), 202, "{file}");
        assert_rows_match(&spans(&server, tenant).await, &fixture, file);
    }
    let text = std::fs::read_to_string(format!("{TESTDATA}/benchmarks/zipkin2-chinese.json"))
        .expect("fixture");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, format!("[{text}]").as_bytes()).expect("gzip");
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/spans", server.url()))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("x-scope-orgid", "gzip")
        .body(gzip.finish().expect("gzip"))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 202);
    let rows = spans(&server, "gzip").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].service, "订单维护服务");
    assert_eq!(rows[0].name, "个人信息查询");
    assert_eq!(rows[0].instance.as_deref(), Some("2001:db8::c001"));
    assert_eq!(
        rows[0].status_message.as_deref(),
        Some("此用户没有操作权限")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_and_nothing_is_stored() {
    let server = common::TestServer::start().await;
    let cases: [(&str, &[u8], &str); 7] = [
        ("application/json", b"{\"traceId\":\"1\"}", "array"),
        (
            "application/json",
            b"[{\"traceId\":\"zz\",\"id\":\"1\"}]",
            "traceId",
        ),
        (
            "application/json",
            b"[{\"traceId\":\"1\",\"id\":\"1\"},{\"traceId\":\"1\"}]",
            "span 1: id is missing",
        ),
        (
            "application/json",
            b"[{\"traceId\":\"1\",\"id\":\"1\",\"kind\":\"LOCAL\"}]",
            "kind",
        ),
        (
            "application/x-protobuf",
            b"\x0a\x04\x0a\x02\x01\x02",
            "trace_id",
        ),
        ("application/x-thrift", b"[]", "content-type"),
        (
            "application/json",
            b"[{\"traceId\":\"1\",\"id\":\"1\",\"timestamp\":9000000000000000}]",
            "in the future",
        ),
    ];
    for (content_type, body, expected) in cases {
        let response = post(&server, "default", content_type, body.to_vec()).await;
        assert_eq!(response.status(), 400, "{expected}");
        let error: Value = response.json().await.expect("json error");
        let message = error["error"].as_str().expect("message");
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    assert!(spans(&server, "default").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_zipkin_reports_in_json_and_proto3() {
    common::run_command(Command::new("bash").arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-deps/zipkin.sh"
    )));
    let server = common::TestServer::start().await;
    let port = server.http_addr().port().to_string();
    for encoding in ["V2_JSON", "V2_PROTO3"] {
        let (script, port) = (format!("{CLIENTS}/zipkin_client.py"), port.clone());
        let output = tokio::task::spawn_blocking(move || {
            common::run_command(Command::new("python3").args([
                script.as_str(),
                "127.0.0.1",
                port.as_str(),
                encoding,
            ]))
        })
        .await
        .expect("client thread");
        let result: Value = serde_json::from_str(&output).expect("client json");
        let trace: TraceId = result["trace_id"]
            .as_str()
            .expect("trace id")
            .parse()
            .expect("128-bit id");
        let rows: Vec<SpanRecord> = spans(&server, "default")
            .await
            .into_iter()
            .filter(|r| r.trace_id == trace)
            .collect();
        assert_eq!(rows.len(), 2, "{encoding}: {rows:#?}");
        let root = rows
            .iter()
            .find(|r| r.kind == "server")
            .expect("server span");
        let child = rows
            .iter()
            .find(|r| r.kind == "client")
            .expect("client span");
        assert_eq!(root.name, "POST /orders", "{encoding}");
        assert_eq!(root.service, "checkout", "{encoding}");
        assert_eq!(
            root.instance.as_deref(),
            Some("10.1.2.3:8080"),
            "{encoding}"
        );
        assert_eq!(root.parent_span_id, None, "{encoding}");
        assert_eq!(
            root.attributes.get("customer").map(String::as_str),
            Some("张三"),
            "{encoding}"
        );
        assert_eq!(
            root.attributes.get("http.method").map(String::as_str),
            Some("POST"),
            "{encoding}"
        );
        assert!(root.duration_ns >= child.duration_ns, "{encoding}");
        assert_eq!(child.parent_span_id, Some(root.span_id), "{encoding}");
        assert_eq!(child.name, "charge card", "{encoding}");
        assert_eq!(
            child.peer_service.as_deref(),
            Some("payments"),
            "{encoding}"
        );
        assert_eq!(child.status_code, 2, "{encoding}");
        assert_eq!(
            child.status_message.as_deref(),
            Some("card declined 拒绝"),
            "{encoding}"
        );
        let events: Value =
            serde_json::from_str(child.events.as_deref().expect("events")).expect("json");
        assert_eq!(events[0]["name"], "retry", "{encoding}");
        assert!(
            child.start_ns >= root.start_ns && child.start_ns > 1_700_000_000_000_000_000,
            "{encoding}"
        );
    }
}
