//! Loki push: hand-made pushes in JSON, gzip JSON and snappy protobuf (Chinese text,
//! structured metadata, logback trace context), and bad input.

mod common;
#[path = "clients/loki_rows.rs"]
mod loki_rows;

use std::io::Write;

use loki_rows::{attrs, logs};
use prost::Message;
use proto::TraceId;
use proto::loki::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};
use serde_json::json;
use storage::model::LogRecord;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn push(
    server: &common::TestServer,
    tenant: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/loki/api/v1/push", server.url()))
        .header("x-scope-orgid", tenant)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("push")
}

fn logback_line(level: &str, text: &str) -> String {
    format!(
        "2026-11-24 10:15:32.123 {level:>5} [funding,{TRACE},a3ce929d0e0e4736] 1 --- [nio-8080-exec-7] c.t.FundingService : {text}"
    )
}

/// The rows the pushes in the tests below must produce (timestamps 1…3 s).
fn assert_expected_rows(rows: &[LogRecord], encoding: &str) {
    assert_eq!(rows.len(), 3, "{encoding}: {rows:#?}");
    let trace: TraceId = TRACE.parse().expect("trace");
    let labels = attrs(&[
        ("app", "funding"),
        ("namespace", "prod"),
        ("pod", "funding-0"),
    ]);

    assert_eq!(
        rows[0].timestamp_ns, 1_700_000_001_000_000_001,
        "{encoding}"
    );
    assert_eq!(rows[0].service, "funding", "{encoding}");
    assert_eq!(rows[0].instance.as_deref(), Some("funding-0"), "{encoding}");
    assert_eq!(
        rows[0].body,
        logback_line("INFO", "支付成功 payment accepted"),
        "{encoding}"
    );
    assert_eq!(rows[0].severity_text.as_deref(), Some("INFO"), "{encoding}");
    assert_eq!(rows[0].severity_number, 9, "{encoding}");
    assert_eq!(rows[0].trace_id, Some(trace), "{encoding}");
    assert_eq!(
        rows[0].span_id.map(|s| s.to_string()).as_deref(),
        Some("a3ce929d0e0e4736"),
        "{encoding}"
    );
    assert_eq!(rows[0].resource, labels, "{encoding}");
    assert!(rows[0].attributes.is_empty(), "{encoding}");

    assert_eq!(
        rows[1].timestamp_ns, 1_700_000_002_000_000_000,
        "{encoding}"
    );
    assert_eq!(rows[1].body, "订单查询失败", "{encoding}");
    assert_eq!(
        rows[1].severity_text.as_deref(),
        Some("error"),
        "{encoding}"
    );
    assert_eq!(rows[1].severity_number, 17, "{encoding}");
    assert_eq!(rows[1].trace_id, Some(trace), "{encoding}");
    assert_eq!(rows[1].span_id, None, "{encoding}");
    assert_eq!(
        rows[1].attributes,
        attrs(&[("level", "error"), ("traceID", TRACE), ("user", "张三")]),
        "{encoding}"
    );

    assert_eq!(
        rows[2].timestamp_ns, 1_700_000_003_000_000_000,
        "{encoding}"
    );
    assert_eq!(rows[2].service, "billing", "{encoding}");
    assert_eq!(rows[2].instance.as_deref(), Some("node-7"), "{encoding}");
    assert_eq!(rows[2].severity_text.as_deref(), Some("warn"), "{encoding}");
    assert_eq!(rows[2].severity_number, 13, "{encoding}");
    assert_eq!(rows[2].body, "plain line without ids", "{encoding}");
    assert_eq!(rows[2].trace_id, None, "{encoding}");
    assert_eq!(
        rows[2].resource,
        attrs(&[("host", "node-7"), ("job", "billing"), ("level", "warn")]),
        "{encoding}"
    );
}

fn json_push() -> Vec<u8> {
    json!({"streams": [
        {"stream": {"app": "funding", "namespace": "prod", "pod": "funding-0"},
         "values": [
            ["1700000001000000001", logback_line("INFO", "支付成功 payment accepted")],
            ["1700000002000000000", "订单查询失败", {"level": "error", "traceID": TRACE, "user": "张三"}],
         ]},
        {"stream": {"job": "billing", "host": "node-7", "level": "warn"},
         "values": [["1700000003000000000", "plain line without ids"]]},
    ]})
    .to_string()
    .into_bytes()
}

fn pair(name: &str, value: &str) -> LabelPairAdapter {
    LabelPairAdapter {
        name: name.into(),
        value: value.into(),
    }
}

fn entry(seconds: i64, nanos: i32, line: String, metadata: Vec<LabelPairAdapter>) -> EntryAdapter {
    EntryAdapter {
        timestamp: Some(Timestamp { seconds, nanos }),
        line,
        structured_metadata: metadata,
        parsed: vec![],
    }
}

fn proto_push() -> Vec<u8> {
    let request = PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{app="funding", namespace="prod", pod="funding-0"}"#.into(),
                entries: vec![
                    entry(
                        1_700_000_001,
                        1,
                        logback_line("INFO", "支付成功 payment accepted"),
                        vec![],
                    ),
                    entry(
                        1_700_000_002,
                        0,
                        "订单查询失败".into(),
                        vec![
                            pair("level", "error"),
                            pair("traceID", TRACE),
                            pair("user", "张三"),
                        ],
                    ),
                ],
                hash: 0,
            },
            StreamAdapter {
                labels: r#"{job="billing",host="node-7",level="warn"}"#.into(),
                entries: vec![entry(
                    1_700_000_003,
                    0,
                    "plain line without ids".into(),
                    vec![],
                )],
                hash: 0,
            },
        ],
        format: String::new(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_in_every_encoding_store_the_same_rows() {
    let server = common::TestServer::start().await;

    let response = push(
        &server,
        "json",
        &[("content-type", "application/json")],
        json_push(),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_expected_rows(&logs(&server, "json").await, "json");

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&json_push()).expect("gzip");
    let headers = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    let response = push(&server, "gzip", &headers, gzip.finish().expect("gzip")).await;
    assert_eq!(response.status(), 204);
    assert_expected_rows(&logs(&server, "gzip").await, "gzip json");

    let response = push(
        &server,
        "proto",
        &[("content-type", "application/x-protobuf")],
        proto_push(),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_expected_rows(&logs(&server, "proto").await, "snappy protobuf");

    let headers = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
    ];
    let response = push(&server, "proto-ce", &headers, proto_push()).await;
    assert_eq!(response.status(), 204);
    assert_expected_rows(
        &logs(&server, "proto-ce").await,
        "snappy protobuf with content-encoding",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_refused_and_nothing_is_stored() {
    let server = common::TestServer::start().await;
    let json = "application/json";
    let protobuf = "application/x-protobuf";
    let bad_labels = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app=~"fund.*"}"#.into(),
            entries: vec![entry(1, 0, "x".into(), vec![])],
            hash: 0,
        }],
        format: String::new(),
    };
    let bad_labels = snap::raw::Encoder::new()
        .compress_vec(&bad_labels.encode_to_vec())
        .expect("snappy");
    let not_proto = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff")
        .expect("snappy");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (json, b"{\"streams\":[".to_vec(), "invalid loki push json"),
        (json, br#"{"streams":[{"stream":{"a":"b"},"values":[["1","ok"]]},{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#.to_vec(), "timestamp must be a string"),
        (json, br#"{"streams":[{"stream":{},"values":[["1","x"]]}]}"#.to_vec(), "at least one label"),
        (protobuf, b"plainly not snappy".to_vec(), "snappy"),
        (protobuf, not_proto, "invalid loki push protobuf"),
        (protobuf, bad_labels, "only '=' matchers"),
        ("text/csv", b"a,b".to_vec(), "content-type"),
        (
            json,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["9000000000000000000","x"]]}]}"#.to_vec(),
            "in the future",
        ),
    ];
    for (content_type, body, expected) in cases {
        let response = push(&server, "default", &[("content-type", content_type)], body).await;
        assert_eq!(response.status(), 400, "{expected}");
        let message = response.text().await.expect("text");
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    assert!(logs(&server, "default").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_logging_loki_handler_pushes() {
    common::run_command(std::process::Command::new("bash").arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-deps/loki.sh"
    )));
    let server = common::TestServer::start().await;
    let url = format!("{}/loki/api/v1/push", server.url());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/loki_logging.py");
    tokio::task::spawn_blocking(move || {
        common::run_command(std::process::Command::new("python3").arg(script).arg(url))
    })
    .await
    .expect("client thread");
    let rows = logs(&server, "default").await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let expected = [
        ("订单已创建 order created", "info", 9),
        (
            "[checkout,4bf92f3577b34da6a3ce929d0e0e4736,a3ce929d0e0e4736] payment slow",
            "warning",
            13,
        ),
        ("库存不足 out of stock", "error", 17),
    ];
    for (row, (body, level, number)) in rows.iter().zip(expected) {
        assert_eq!(row.body, body);
        assert_eq!(row.service, "checkout");
        assert_eq!(row.instance.as_deref(), Some("checkout-0"));
        assert_eq!(row.severity_text.as_deref(), Some(level));
        assert_eq!(row.severity_number, number);
        assert_eq!(
            row.resource.get("logger").map(String::as_str),
            Some("checkout.orders")
        );
        assert!(row.attributes.is_empty());
    }
    assert_eq!(
        rows[0].resource.get("region").map(String::as_str),
        Some("eu-west")
    );
    assert_eq!(
        rows[1].trace_id.map(|t| t.to_string()).as_deref(),
        Some(TRACE)
    );
    assert_eq!(rows[2].trace_id, None);
}
