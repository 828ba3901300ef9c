//! Jaeger query API on its own listener: the calls Grafana's Jaeger datasource makes
//! (services, operations, search, trace by id, dependencies) over OTLP-written traces,
//! and a Zipkin fixture read back through it.

mod common;
mod read_traces_support;

use read_traces_support::{TRACE_A, TRACE_B, get, get_json, load_fixture, load_otlp};
use serde_json::{Value, json};
use sightline::Listen;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn jaeger_server() -> common::TestServer {
    common::TestServer::start_with(|config| {
        config.server.jaeger_listen = Listen::On(([127, 0, 0, 1], 0).into());
    })
    .await
}

fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a Value> {
    tags.as_array()?.iter().find(|t| t["key"] == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_jaeger_datasource_calls() {
    let server = jaeger_server().await;
    let base = server.jaeger_url();
    let start = load_otlp(&server, "t").await;

    let services = get_json(&format!("{base}/api/services"), "t").await;
    assert_eq!(services["data"], json!(["api", "cart"]));
    assert_eq!(services["total"], 2);
    assert_eq!(services["errors"], Value::Null);
    let operations = get_json(&format!("{base}/api/services/api/operations"), "t").await;
    assert_eq!(
        operations["data"],
        json!(["GET /checkout", "GET /health", "call cart", "render"])
    );
    let typed = get_json(
        &format!("{base}/api/operations?service=api&spanKind=client"),
        "t",
    )
    .await;
    assert_eq!(
        typed["data"],
        json!([{"name": "call cart", "spanKind": "client"}])
    );

    // Search: newest first, full traces in the Jaeger model.
    let found = get_json(
        &format!("{base}/api/traces?service=api&limit=20&lookback=1h"),
        "t",
    )
    .await;
    let traces = found["data"].as_array().expect("traces");
    let ids: Vec<&str> = traces
        .iter()
        .map(|t| t["traceID"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [hex(&TRACE_B[8..]), hex(&TRACE_A)]);
    let trace = &traces[1];
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 5);
    let processes = trace["processes"].as_object().expect("processes");
    assert_eq!(processes.len(), 2);
    let cart = spans
        .iter()
        .find(|s| s["operationName"] == "POST /cart")
        .expect("cart");
    let process = &processes[cart["processID"].as_str().expect("process id")];
    assert_eq!(process["serviceName"], "cart");
    assert_eq!(
        tag(&process["tags"], "host.name"),
        Some(&json!({"key": "host.name", "type": "string", "value": "h2"}))
    );
    assert_eq!(cart["startTime"], (start + 20_000_000) / 1_000);
    assert_eq!(cart["duration"], 400_000);
    assert_eq!(
        cart["references"],
        json!([{"refType": "CHILD_OF", "traceID": hex(&TRACE_A), "spanID": "0202020202020202"}])
    );
    assert_eq!(
        tag(&cart["tags"], "error"),
        Some(&json!({"key": "error", "type": "bool", "value": true}))
    );
    assert_eq!(
        tag(&cart["tags"], "span.kind").expect("kind")["value"],
        "server"
    );
    assert_eq!(
        tag(&cart["tags"], "http.status_code"),
        Some(&json!({"key": "http.status_code", "type": "int64", "value": 500}))
    );
    assert_eq!(
        tag(&cart["tags"], "otel.status_description").map(|t| &t["value"]),
        Some(&json!("boom"))
    );
    let root = spans
        .iter()
        .find(|s| s["operationName"] == "GET /checkout")
        .expect("root");
    assert_eq!(root["references"], json!([]));
    let select = spans
        .iter()
        .find(|s| s["operationName"] == "SELECT")
        .expect("select");
    let log = &select["logs"][0];
    assert_eq!(log["timestamp"], (start + 40_000_000) / 1_000);
    assert_eq!(
        log["fields"],
        json!([
            {"key": "event", "type": "string", "value": "retry"},
            {"key": "attempt", "type": "int64", "value": 2},
        ])
    );

    let by_operation = get_json(
        &format!("{base}/api/traces?service=api&operation=GET%20%2Fhealth"),
        "t",
    )
    .await;
    assert_eq!(by_operation["data"].as_array().map(Vec::len), Some(1));
    let by_tags = get_json(
        &format!("{base}/api/traces?service=cart&tags=%7B%22http.status_code%22%3A%22500%22%7D"),
        "t",
    )
    .await;
    assert_eq!(by_tags["data"][0]["traceID"], hex(&TRACE_A));
    let error_tag = get_json(
        &format!("{base}/api/traces?service=api&tags=%7B%22error%22%3A%22true%22%7D"),
        "t",
    )
    .await;
    assert_eq!(error_tag["data"], json!([]), "api spans did not fail");
    let slow = get_json(
        &format!("{base}/api/traces?service=api&minDuration=100ms"),
        "t",
    )
    .await;
    assert_eq!(slow["data"].as_array().map(Vec::len), Some(1));
    let fast = get_json(
        &format!("{base}/api/traces?service=api&maxDuration=6ms"),
        "t",
    )
    .await;
    assert_eq!(fast["data"][0]["traceID"], hex(&TRACE_B[8..]));
    assert_eq!(fast["data"].as_array().map(Vec::len), Some(1));
    let start_us = start / 1_000;
    let window = get_json(
        &format!(
            "{base}/api/traces?service=api&start={}&end={}",
            start_us + 1_000_000,
            start_us + 3_000_000
        ),
        "t",
    )
    .await;
    assert_eq!(window["data"][0]["traceID"], hex(&TRACE_B[8..]));
    assert_eq!(window["data"].as_array().map(Vec::len), Some(1));
    let limited = get_json(&format!("{base}/api/traces?service=api&limit=1"), "t").await;
    assert_eq!(limited["data"].as_array().map(Vec::len), Some(1));

    let (status, body, _) = get(&format!("{base}/api/traces"), "t", "application/json").await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["errors"][0]["code"], 400);
    assert!(
        error["errors"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("service"))
    );

    // Trace by id; Grafana reads data[0].
    let by_id = get_json(&format!("{base}/api/traces/{}", hex(&TRACE_A)), "t").await;
    assert_eq!(by_id["data"][0], *trace);
    let (status, body, _) = get(
        &format!("{base}/api/traces/{}", "ab".repeat(16)),
        "t",
        "application/json",
    )
    .await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["errors"][0]["code"], 404);

    let links = get_json(
        &format!(
            "{base}/api/dependencies?endTs={}&lookback=3600000",
            start / 1_000_000 + 60_000
        ),
        "t",
    )
    .await;
    assert_eq!(
        links["data"],
        json!([
            {"parent": "api", "child": "cart", "callCount": 1},
            {"parent": "cart", "child": "postgres", "callCount": 1},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_v3_api() {
    let server = jaeger_server().await;
    let base = server.jaeger_url();
    let start = load_otlp(&server, "t").await;
    let services = get_json(&format!("{base}/api/v3/services"), "t").await;
    assert_eq!(services, json!({"services": ["api", "cart"]}));
    let operations = get_json(&format!("{base}/api/v3/operations?service=cart"), "t").await;
    assert_eq!(
        operations,
        json!({"operations": [{"name": "POST /cart", "spanKind": "server"}, {"name": "SELECT", "spanKind": "client"}]})
    );
    let trace = get_json(&format!("{base}/api/v3/traces/{}", hex(&TRACE_A)), "t").await;
    let spans: Vec<&Value> = trace["result"]["resourceSpans"]
        .as_array()
        .expect("resourceSpans")
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(spans.len(), 5);
    assert!(spans.iter().all(|s| s["traceId"] == hex(&TRACE_A)));
    let rfc3339 = |ns: u64| {
        let seconds = ns / 1_000_000_000;
        let days = seconds / 86_400;
        // Civil date from days since the epoch (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let rest = seconds % 86_400;
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3600,
            rest / 60 % 60,
            rest % 60
        )
    };
    let url = format!(
        "{base}/api/v3/traces?query.service_name=cart&query.start_time_min={}&query.start_time_max={}&query.duration_min=300ms",
        rfc3339(start - 10_000_000_000),
        rfc3339(start + 10_000_000_000)
    );
    let found = get_json(&url, "t").await;
    let groups = found["result"]["resourceSpans"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "trace A's two resources: {found}");
    let (status, body, _) = get(
        &format!("{base}/api/v3/traces/{}", "cd".repeat(16)),
        "t",
        "application/json",
    )
    .await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["error"]["httpCode"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_fixture_reads_back_through_jaeger() {
    let server = jaeger_server().await;
    let spans = load_fixture(&server, "z", "messaging.json").await;
    let trace_id = spans[0]["traceId"].as_str().expect("id");
    let trace = get_json(
        &format!("{}/api/traces/{trace_id}", server.jaeger_url()),
        "z",
    )
    .await;
    let trace = &trace["data"][0];
    assert_eq!(trace["traceID"], trace_id);
    let got = trace["spans"].as_array().expect("spans");
    assert_eq!(got.len(), spans.len());
    let publish = got
        .iter()
        .find(|s| s["operationName"] == "publish")
        .expect("publish");
    assert_eq!(publish["startTime"], 1521186011927475i64);
    assert_eq!(publish["duration"], 13);
    assert_eq!(
        tag(&publish["tags"], "span.kind").expect("kind")["value"],
        "producer"
    );
    assert_eq!(
        tag(&publish["tags"], "peer.service").expect("peer")["value"],
        "rabbitmq"
    );
    let process = &trace["processes"][publish["processID"].as_str().expect("pid")];
    assert_eq!(process["serviceName"], "frontend");
    // The main port does not serve the Jaeger API: /api/traces/{id} there is Tempo's.
    let (status, _, content_type) = get(
        &format!("{}/api/traces/{trace_id}", server.url()),
        "z",
        "application/protobuf",
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/protobuf")
    );
}
