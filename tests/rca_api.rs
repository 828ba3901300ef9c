//! `GET /api/v1/rca`: the public contract's shape on a small hand-made fleet sent over
//! Zipkin (historical timestamps, two days old), parameter errors, empty windows and
//! tenant isolation.

mod common;

use serde_json::{Value, json};

const MINUTE_MS: i64 = 60_000;

/// A three-hop fleet: `front` → `catalog` (two replicas) → dependency `pgsql`.
/// During `[fault_start, end)` two in three `pgsql` calls of `catalog` fail, and every
/// hop above them fails with them.
fn traces(start_ms: i64, fault_start_ms: i64, end_ms: i64, per_second: i64) -> Vec<Value> {
    let mut spans = Vec::new();
    let step = 1000 / per_second;
    let mut n: u64 = 1;
    let mut t = start_ms;
    while t < end_ms {
        // Two calls in three fail, on both replicas alike.
        let failing = t >= fault_start_ms && !n.is_multiple_of(3);
        let trace = format!("{:032x}", 0xabc0_0000_0000u64 + n);
        let id = |k: u64| format!("{:016x}", n * 16 + k);
        let replica = format!("catalog-{}", n % 2);
        let us = t * 1000;
        let error = |on: bool| {
            if on {
                json!({"error": "boom", "k8s.pod.name": replica.clone()})
            } else {
                json!({"k8s.pod.name": replica.clone()})
            }
        };
        spans.push(
            json!({"traceId": trace, "id": id(1), "name": "get /products", "kind": "SERVER",
            "timestamp": us, "duration": 30_000, "localEndpoint": {"serviceName": "front"},
            "tags": if failing {json!({"error": "500"})} else {json!({})}}),
        );
        spans.push(json!({"traceId": trace, "id": id(2), "parentId": id(1), "name": "get /catalog", "kind": "CLIENT",
            "timestamp": us + 1000, "duration": 27_000, "localEndpoint": {"serviceName": "front"},
            "remoteEndpoint": {"serviceName": "catalog"},
            "tags": if failing {json!({"error": "500"})} else {json!({})}}));
        spans.push(json!({"traceId": trace, "id": id(3), "parentId": id(2), "name": "get /catalog", "kind": "SERVER",
            "timestamp": us + 2000, "duration": 25_000, "localEndpoint": {"serviceName": "catalog"},
            "tags": error(failing)}));
        spans.push(json!({"traceId": trace, "id": id(4), "parentId": id(3), "name": "select products", "kind": "CLIENT",
            "timestamp": us + 3000, "duration": 10_000, "localEndpoint": {"serviceName": "catalog"},
            "remoteEndpoint": {"serviceName": "pgsql"}, "tags": error(failing)}));
        n += 1;
        t += step;
    }
    spans
}

/// RFC 3339 UTC text of Unix milliseconds (whole seconds).
fn rfc(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

async fn send(http: &reqwest::Client, url: &str, tenant: &str, spans: &[Value]) {
    for chunk in spans.chunks(2_000) {
        let response = http
            .post(format!("{url}/api/v2/spans"))
            .header("content-type", "application/json")
            .header("x-scope-orgid", tenant)
            .body(serde_json::to_vec(chunk).unwrap())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

async fn rca(http: &reqwest::Client, url: &str, tenant: &str, query: &str) -> (u16, Value) {
    let response = http
        .get(format!("{url}/api/v1/rca?{query}"))
        .header("x-scope-orgid", tenant)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn rca_contract_on_historical_data() {
    let server = common::TestServer::start().await;
    let http = reqwest::Client::new();
    let url = server.url();
    // Two days ago: 20 healthy minutes, then 5 failing ones.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let end = now - 2 * 24 * 60 * MINUTE_MS;
    let fault = end - 5 * MINUTE_MS;
    let start = fault - 20 * MINUTE_MS;
    send(&http, &url, "shop", &traces(start, fault, end, 2)).await;

    let query = format!("start={}&end={}", fault / 1000, end / 1000);
    let (status, body) = rca(&http, &url, "shop", &query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    let data = &body["data"];
    assert_eq!(data["signals_used"], json!(["traces"]));
    let suspects = data["suspects"].as_array().expect("suspects");
    assert!(!suspects.is_empty(), "{body}");
    let top = &suspects[0];
    for field in [
        "rank",
        "service",
        "instance",
        "caller",
        "callee",
        "operation",
        "kind",
        "score",
        "evidence",
    ] {
        assert!(top.get(field).is_some(), "suspect lacks {field}: {top}");
    }
    assert_eq!(top["rank"], 1);
    // The cause is the dependency hop, not the loudest symptom (front).
    assert_eq!(top["service"], "pgsql", "{top}");
    assert_eq!(top["callee"], "pgsql");
    assert_eq!(top["caller"], "catalog");
    assert_eq!(top["operation"], "select products");
    assert_eq!(top["kind"], "errors");
    assert!(top["instance"].is_null(), "both replicas fail: {top}");
    assert!(top["score"].as_f64().unwrap() > 0.5, "{top}");
    let evidence = &top["evidence"];
    assert_eq!(evidence["example_trace_ids"].as_array().unwrap().len(), 3);
    assert_eq!(evidence["blame"]["share"], 1.0);
    assert!(evidence["window"]["calls"].as_u64().unwrap() >= 590);
    let ratio = evidence["window"]["error_ratio"].as_f64().unwrap();
    assert!((0.6..0.7).contains(&ratio), "{ratio}");
    assert_eq!(evidence["baseline"]["errors"], 0);
    assert!(evidence["baseline"]["calls"].as_u64().unwrap() >= 1_790);
    // No suspect blames the pass-through services.
    assert!(
        suspects.iter().all(|s| s["service"] != "front"),
        "{suspects:?}"
    );
    // Ranks are 1..n in score order.
    for (i, s) in suspects.iter().enumerate() {
        assert_eq!(s["rank"], i + 1);
    }

    // RFC 3339 times and an explicit baseline answer the same.
    let query = format!(
        "start={}&end={}&baseline_start={}&baseline_end={}",
        rfc(fault),
        rfc(end),
        rfc(start),
        rfc(fault - 1000)
    );
    let (status, body) = rca(&http, &url, "shop", &query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["suspects"][0]["service"], "pgsql");

    // The symptom filter narrows traces but never names the symptom as the cause.
    let query = format!("start={}&end={}&service=front", fault / 1000, end / 1000);
    let (_, body) = rca(&http, &url, "shop", &query).await;
    assert_eq!(body["data"]["suspects"][0]["service"], "pgsql");

    // A healthy window (the baseline itself) has no suspect.
    let query = format!(
        "start={}&end={}",
        (start + 15 * MINUTE_MS) / 1000,
        fault / 1000 - 1
    );
    let (status, body) = rca(&http, &url, "shop", &query).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["suspects"], json!([]), "{body}");

    // Another tenant sees nothing.
    let query = format!("start={}&end={}", fault / 1000, end / 1000);
    let (status, body) = rca(&http, &url, "other", &query).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["suspects"], json!([]));
    assert_eq!(body["data"]["signals_used"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn rca_parameter_errors_and_empty_windows() {
    let server = common::TestServer::start().await;
    let http = reqwest::Client::new();
    let url = server.url();
    for (query, needle) in [
        ("end=100", "start"),
        ("start=100", "end"),
        ("start=yesterday&end=100", "start"),
        ("start=200&end=100", "end"),
        (
            "start=100&end=200&baseline_start=90&baseline_end=50",
            "baseline_end",
        ),
        ("start=100&end=200&operation=GET", "service"),
    ] {
        let (status, body) = rca(&http, &url, "t", query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
    // Nothing stored: success, no signal, no suspect.
    let (status, body) = rca(&http, &url, "t", "start=1000&end=1300").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": {"signals_used": [], "signals_missing": ["traces", "logs", "metrics"], "suspects": []}})
    );
    server.stop().await;
}

/// The provisioned dashboard parses and reads the series this server writes.
#[test]
fn grafana_dashboard_reads_our_series() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/dashboards/sightline-overview.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "sightline-overview");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    for series in [
        "traces_spanmetrics_calls_total",
        "traces_spanmetrics_latency_bucket",
        "traces_service_graph_request_total",
        "traces_service_graph_request_failed_total",
        "sightline_rca_suspect_score",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(series)),
            "no panel reads {series}"
        );
    }
    let provider = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/dashboards.yaml"
    ))
    .unwrap();
    assert!(provider.contains("apiVersion: 1") && provider.contains("type: file"));
}
