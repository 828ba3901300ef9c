//! Zipkin v2 read API: every Zipkin fixture written through `POST /api/v2/spans` reads
//! back span for span; services, span names, search, dependency links, autocomplete,
//! and a trace reported by py_zipkin.

mod common;
mod read_traces_support;

use std::collections::BTreeSet;
use std::process::Command;

use read_traces_support::{get, get_json, load_fixture, padded, post_zipkin, zipkin_fixtures};
use serde_json::{Value, json};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// A Zipkin span in a canonical form: ids padded, default flags and empty parts dropped.
fn canonical(span: &Value) -> Value {
    let mut span = span.as_object().expect("span object").clone();
    for (key, width) in [("traceId", 32), ("id", 16), ("parentId", 16)] {
        if let Some(id) = span.get(key).and_then(Value::as_str) {
            let id = padded(id, width);
            span.insert(key.into(), json!(id));
        }
    }
    for flag in ["debug", "shared"] {
        if span.get(flag) == Some(&json!(false)) {
            span.remove(flag);
        }
    }
    for key in ["tags", "localEndpoint", "remoteEndpoint"] {
        if span
            .get(key)
            .is_some_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
        {
            span.remove(key);
        }
    }
    if span
        .get("annotations")
        .is_some_and(|a| a.as_array().is_some_and(Vec::is_empty))
    {
        span.remove("annotations");
    }
    for key in ["timestamp", "duration"] {
        if span.get(key) == Some(&json!(0)) {
            span.remove(key);
        }
    }
    Value::Object(span)
}

fn sorted(spans: &[Value]) -> Vec<Value> {
    let mut spans: Vec<Value> = spans.iter().map(canonical).collect();
    spans.sort_by_key(|s| s.to_string());
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_reads_back_span_for_span() {
    let server = common::TestServer::start().await;
    let base = server.url();
    let mut checked = 0;
    for (number, (file, body, fixture)) in zipkin_fixtures().into_iter().enumerate() {
        let tenant = format!("zipkin-{number}");
        post_zipkin(&server, &tenant, body).await;
        let trace_ids: BTreeSet<&str> = fixture
            .iter()
            .filter_map(|s| s["traceId"].as_str())
            .collect();
        for trace_id in &trace_ids {
            let got = get_json(&format!("{base}/api/v2/trace/{trace_id}"), &tenant).await;
            let expected: Vec<Value> = fixture
                .iter()
                .filter(|s| s["traceId"].as_str() == Some(trace_id))
                .cloned()
                .collect();
            let got = got.as_array().expect("span list");
            // Spans come back sorted by start.
            let starts: Vec<i64> = got
                .iter()
                .map(|s| s["timestamp"].as_i64().unwrap_or(0))
                .collect();
            assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{file}: order");
            let (got, expected) = (sorted(got), sorted(&expected));
            assert_eq!(got.len(), expected.len(), "{file}");
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g, e, "{file}");
            }
            checked += got.len();
            // The same trace with its id in upper case, and through traceMany.
            let upper = get_json(
                &format!("{base}/api/v2/trace/{}", trace_id.to_ascii_uppercase()),
                &tenant,
            )
            .await;
            assert_eq!(
                upper.as_array().map(Vec::len),
                Some(expected.len()),
                "{file}"
            );
        }
        // Services over the fixture's time: exactly the local service names.
        let max_ts = fixture
            .iter()
            .filter_map(|s| s["timestamp"].as_i64())
            .max()
            .unwrap_or(0);
        let end_ms = max_ts / 1000 + 1;
        let services = get_json(
            &format!("{base}/api/v2/services?endTs={end_ms}&lookback={}", end_ms),
            &tenant,
        )
        .await;
        let expected: BTreeSet<String> = fixture
            .iter()
            .filter(|s| s["timestamp"].as_i64().unwrap_or(0) > 0)
            .map(|s| {
                s["localEndpoint"]["serviceName"]
                    .as_str()
                    .unwrap_or("unknown_service")
                    .to_string()
            })
            .collect();
        let got: BTreeSet<String> = services
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s.as_str().expect("name").to_string())
            .collect();
        assert_eq!(got, expected, "{file}: services");
    }
    assert_eq!(checked, 8 + 1 + 4 + 11 + 28 + 5 + 4 + 16 + 175 + 1041 + 2);
    let (status, body, _) = get(
        &format!("{base}/api/v2/trace/0123456789abcdef"),
        "zipkin-0",
        "*/*",
    )
    .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = get(&format!("{base}/api/v2/trace/not-hex"), "zipkin-0", "*/*").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_read_the_same_from_hot_and_cold_data() {
    let server = common::TestServer::start().await;
    let base = server.url();
    let yelp = load_fixture(&server, "c", "yelp.json").await;
    let trace_id = yelp[0]["traceId"].as_str().expect("id");
    let window = "endTs=1600000000000&lookback=200000000000";
    let hot_trace = get_json(&format!("{base}/api/v2/trace/{trace_id}"), "c").await;
    let hot_search = get_json(&format!("{base}/api/v2/traces?{window}"), "c").await;
    let hot_links = get_json(&format!("{base}/api/v2/dependencies?{window}"), "c").await;
    let report = server.storage().flush().await.expect("flush");
    assert!(report.segments >= 1, "{report:?}");
    // The yelp trace now lives in a segment; a second trace (messaging) stays hot.
    load_fixture(&server, "c", "messaging.json").await;
    let cold_trace = get_json(&format!("{base}/api/v2/trace/{trace_id}"), "c").await;
    assert_eq!(cold_trace, hot_trace);
    assert_eq!(sorted(cold_trace.as_array().expect("spans")), sorted(&yelp));
    let search = get_json(&format!("{base}/api/v2/traces?{window}"), "c").await;
    assert_eq!(search.as_array().map(Vec::len), Some(2));
    assert_eq!(
        search[0], hot_search[0],
        "yelp (2019) is newer than messaging (2018)"
    );
    let links = get_json(&format!("{base}/api/v2/dependencies?{window}"), "c").await;
    for link in hot_links.as_array().expect("links") {
        assert!(
            links.as_array().expect("links").contains(link),
            "{link} after flush"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_names_dependencies_and_autocomplete() {
    let server = common::TestServer::start().await;
    let base = server.url();
    let messaging = load_fixture(&server, "t", "messaging.json").await;
    let skew = load_fixture(&server, "t", "skew.json").await;
    let window = "endTs=1600000000000&lookback=200000000000";
    let services = get_json(&format!("{base}/api/v2/services?{window}"), "t").await;
    assert_eq!(
        services,
        json!(["backend", "frontend", "servicea", "serviceb"])
    );
    let names = get_json(
        &format!("{base}/api/v2/spans?serviceName=frontend&{window}"),
        "t",
    )
    .await;
    assert_eq!(names, json!(["get /", "publish"]));
    let remote = get_json(
        &format!("{base}/api/v2/remoteServices?serviceName=frontend&{window}"),
        "t",
    )
    .await;
    assert_eq!(remote, json!(["rabbitmq"]));
    let (status, body, _) = get(&format!("{base}/api/v2/spans"), "t", "*/*").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("serviceName"));

    // Search: newest first, each result a full trace in the window.
    let all = get_json(&format!("{base}/api/v2/traces?{window}"), "t").await;
    let trace_ids: Vec<&str> = all
        .as_array()
        .expect("traces")
        .iter()
        .map(|t| t[0]["traceId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        trace_ids,
        [
            messaging[0]["traceId"].as_str().unwrap(),
            skew[0]["traceId"].as_str().unwrap()
        ]
    );
    assert_eq!(all[0].as_array().map(Vec::len), Some(messaging.len()));
    let by_service = get_json(
        &format!("{base}/api/v2/traces?serviceName=servicea&{window}"),
        "t",
    )
    .await;
    assert_eq!(by_service.as_array().map(Vec::len), Some(1));
    assert_eq!(by_service[0].as_array().map(Vec::len), Some(skew.len()));
    let by_name = get_json(
        &format!("{base}/api/v2/traces?serviceName=backend&spanName=on-message&{window}"),
        "t",
    )
    .await;
    assert_eq!(by_name.as_array().map(Vec::len), Some(1));
    let tag = get_json(&format!("{base}/api/v2/traces?annotationQuery=http.method%3DGET%20and%20mvc.controller.class&{window}"), "t").await;
    assert_eq!(tag.as_array().map(Vec::len), Some(1), "{tag}");
    assert_eq!(tag[0][0]["traceId"], messaging[0]["traceId"]);
    let slow = get_json(
        &format!("{base}/api/v2/traces?serviceName=frontend&minDuration=2000&{window}"),
        "t",
    )
    .await;
    assert_eq!(slow.as_array().map(Vec::len), Some(1));
    let none = get_json(
        &format!(
            "{base}/api/v2/traces?serviceName=frontend&minDuration=2000&maxDuration=2500&{window}"
        ),
        "t",
    )
    .await;
    assert_eq!(none, json!([]));
    let limited = get_json(&format!("{base}/api/v2/traces?limit=1&{window}"), "t").await;
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
    let recent = get_json(&format!("{base}/api/v2/traces"), "t").await;
    assert_eq!(recent, json!([]), "the default window is the last hour");

    let many = get_json(
        &format!(
            "{base}/api/v2/traceMany?traceIds={},{},ffff",
            trace_ids[0], trace_ids[1]
        ),
        "t",
    )
    .await;
    assert_eq!(many.as_array().map(Vec::len), Some(2));
    let (status, _, _) = get(
        &format!("{base}/api/v2/traceMany?traceIds={}", trace_ids[0]),
        "t",
        "*/*",
    )
    .await;
    assert_eq!(status, 400);

    // Dependencies from parent/child pairs across services: producer → consumer in
    // messaging.json, servicea → serviceb in skew.json.
    let links = get_json(&format!("{base}/api/v2/dependencies?{window}"), "t").await;
    assert_eq!(
        links,
        json!([
            {"parent": "frontend", "child": "backend", "callCount": 1},
            {"parent": "servicea", "child": "serviceb", "callCount": 1},
        ])
    );
    let (status, _, _) = get(&format!("{base}/api/v2/dependencies"), "t", "*/*").await;
    assert_eq!(status, 400, "endTs is required");

    let keys = get_json(&format!("{base}/api/v2/autocompleteKeys?{window}"), "t").await;
    assert!(
        keys.as_array()
            .expect("keys")
            .contains(&json!("http.method")),
        "{keys}"
    );
    assert!(!keys.to_string().contains("zipkin."), "{keys}");
    let values = get_json(
        &format!("{base}/api/v2/autocompleteValues?key=rabbit.queue&{window}"),
        "t",
    )
    .await;
    assert_eq!(values, json!(["backend"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_zipkin_trace_reads_back() {
    common::run_command(Command::new("bash").arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-deps/zipkin.sh"
    )));
    let server = common::TestServer::start().await;
    let port = server.http_addr().port().to_string();
    let script = format!("{CLIENTS}/zipkin_client.py");
    let output = tokio::task::spawn_blocking(move || {
        common::run_command(Command::new("python3").args([
            script.as_str(),
            "127.0.0.1",
            port.as_str(),
            "V2_JSON",
        ]))
    })
    .await
    .expect("client thread");
    let result: Value = serde_json::from_str(&output).expect("client json");
    let trace_id = result["trace_id"].as_str().expect("trace id").to_string();
    let base = server.url();
    // py_zipkin's transport returns once the server answered 202: the spans are stored.
    let found = get_json(
        &format!("{base}/api/v2/traces?serviceName=checkout&spanName=POST%20%2Forders"),
        "default",
    )
    .await;
    let spans = found[0].as_array().expect("trace");
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["traceId"], json!(trace_id));
    let root = &spans[0];
    let child = &spans[1];
    assert_eq!(root["name"], "POST /orders");
    assert_eq!(root["kind"], "SERVER");
    assert_eq!(
        root["localEndpoint"],
        json!({"serviceName": "checkout", "ipv4": "10.1.2.3", "port": 8080})
    );
    assert_eq!(root["tags"]["customer"], "张三");
    assert!(root.get("parentId").is_none());
    assert_eq!(child["parentId"], root["id"]);
    assert_eq!(child["name"], "charge card");
    assert_eq!(child["kind"], "CLIENT");
    assert_eq!(
        child["remoteEndpoint"],
        json!({"serviceName": "payments", "ipv4": "10.9.9.9", "port": 443})
    );
    assert_eq!(child["tags"]["error"], "card declined 拒绝");
    assert_eq!(child["annotations"][0]["value"], "retry");
    assert!(child["annotations"][0]["timestamp"].as_i64() >= root["timestamp"].as_i64());
    let by_id = get_json(&format!("{base}/api/v2/trace/{trace_id}"), "default").await;
    assert_eq!(&by_id, &found[0]);
    let services = get_json(&format!("{base}/api/v2/services"), "default").await;
    assert_eq!(services, json!(["checkout"]));
    let links = get_json(
        &format!("{base}/api/v2/dependencies?endTs={}", chrono_now_ms()),
        "default",
    )
    .await;
    assert_eq!(
        links,
        json!([{"parent": "checkout", "child": "payments", "callCount": 1, "errorCount": 1}])
    );
}

fn chrono_now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 1000
}
