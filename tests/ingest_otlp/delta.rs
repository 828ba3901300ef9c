//! OTLP delta temporality: the OpenTelemetry Python SDK exports sums, histograms and
//! exponential histograms as deltas; PromQL reads cumulative series, across a second
//! exporter process (same stream continues) and a server restart (a counter reset).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value as Json;

use crate::common::{TestServer, run_command};

fn python_delta(protocol: &str, endpoint: String, increments: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otlp_delta.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(protocol)
        .arg(endpoint)
        .args(increments);
    let output = run_command(&mut command);
    assert_eq!(output.trim(), "ok");
}

async fn export(protocol: &'static str, endpoint: String, increments: &'static [&'static str]) {
    tokio::task::spawn_blocking(move || python_delta(protocol, endpoint, increments))
        .await
        .expect("script");
}

/// Runs a PromQL instant query; returns the result array.
async fn query(server: &TestServer, promql: &str) -> Vec<Json> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/query", server.url()))
        .query(&[("query", promql)])
        .send()
        .await
        .expect("query");
    let body: Json = response.json().await.expect("json");
    assert_eq!(body["status"], "success", "{promql}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The values of the one series a range-vector query returns.
async fn values(server: &TestServer, promql: &str) -> Vec<f64> {
    let result = query(server, promql).await;
    assert_eq!(result.len(), 1, "{promql}: {result:?}");
    result[0]["values"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|pair| pair[1].as_str().expect("value").parse().expect("number"))
        .collect()
}

/// The value of the one series an instant-vector query returns.
async fn value(server: &TestServer, promql: &str) -> f64 {
    let result = query(server, promql).await;
    assert_eq!(result.len(), 1, "{promql}: {result:?}");
    result[0]["value"][1]
        .as_str()
        .expect("value")
        .parse()
        .expect("number")
}

async fn start(data_dir: PathBuf) -> TestServer {
    TestServer::start_with(move |config| config.server.data_dir = data_dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_delta_exports_read_as_cumulative_counters() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path().to_path_buf()).await;
    let http = format!("http://{}", server.otlp_http_addr());
    export("http", http, &["5", "7", "3"]).await;

    let selector = r#"{job="py-delta",instance="d-1",region="eu"}"#;
    let counter = format!("orders_total{selector}[1h]");
    assert_eq!(values(&server, &counter).await, [5.0, 12.0, 15.0]);
    let count = format!("order_value_count{selector}[1h]");
    assert_eq!(values(&server, &count).await, [1.0, 2.0, 3.0]);
    let sum = format!("order_value_sum{selector}[1h]");
    assert_eq!(values(&server, &sum).await, [5.0, 12.0, 15.0]);
    // SDK default buckets 0, 5, 10, ...: 5 and 3 are <= 5, 7 is not.
    let le5 = r#"order_value_bucket{job="py-delta",region="eu",le="5"}[1h]"#;
    assert_eq!(values(&server, le5).await, [1.0, 1.0, 2.0]);
    let le10 = r#"order_value_bucket{job="py-delta",region="eu",le="10"}[1h]"#;
    assert_eq!(values(&server, le10).await, [1.0, 2.0, 3.0]);
    // Exponential histogram, converted to classic buckets after accumulation.
    let latency = r#"latency_count{job="py-delta"}[1h]"#;
    assert_eq!(values(&server, latency).await, [1.0, 2.0, 3.0]);
    let latency_inf = r#"latency_bucket{job="py-delta",le="+Inf"}[1h]"#;
    assert_eq!(values(&server, latency_inf).await, [1.0, 2.0, 3.0]);
    assert_eq!(
        values(&server, r#"latency_sum{job="py-delta"}[1h]"#).await,
        [5.0, 12.0, 15.0]
    );
    assert_eq!(
        value(&server, &format!("resets(orders_total{selector}[1h])")).await,
        0.0
    );
    assert!(value(&server, &format!("increase(orders_total{selector}[1h])")).await >= 10.0);

    // A new exporter process (over gRPC this time) continues the same stream.
    let grpc = server.grpc_addr().to_string();
    export("grpc", grpc, &["2"]).await;
    assert_eq!(values(&server, &counter).await, [5.0, 12.0, 15.0, 17.0]);
    assert_eq!(values(&server, latency).await, [1.0, 2.0, 3.0, 4.0]);

    // A restart forgets the running totals: the stream starts again from its next delta,
    // which PromQL reads as one counter reset.
    server.stop().await;
    let server = start(data.path().to_path_buf()).await;
    let http = format!("http://{}", server.otlp_http_addr());
    export("http", http, &["4"]).await;
    assert_eq!(
        values(&server, &counter).await,
        [5.0, 12.0, 15.0, 17.0, 4.0]
    );
    assert_eq!(
        value(&server, &format!("resets(orders_total{selector}[1h])")).await,
        1.0
    );
    // Between the first and last sample the counter grew by 7 + 3 + 2, then 4 after
    // the reset: 16 (increase() extrapolates past that, never below).
    let increase = value(&server, &format!("increase(orders_total{selector}[1h])")).await;
    assert!(increase >= 16.0, "increase {increase}");
    server.stop().await;
}
