//! Span-derived metrics: spans arriving over OTLP become `traces_spanmetrics_*` and
//! `traces_service_graph_*` series, named as Tempo's metrics-generator names them.

mod common;

use proto::TenantId;
use storage::series::{MatchOp, Matcher};

fn span(
    (trace, id, parent): (&str, &str, &str),
    name: &str,
    kind: u8,
    status: u8,
    start_ns: i64,
    ms: i64,
) -> serde_json::Value {
    serde_json::json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
        "startTimeUnixNano": start_ns.to_string(),
        "endTimeUnixNano": (start_ns + ms * 1_000_000).to_string(),
        "status": { "code": status },
    })
}

fn resource_spans(service: &str, spans: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": service } }] },
        "scopeSpans": [{ "scope": { "name": "test" }, "spans": spans }],
    })
}

async fn value(server: &common::TestServer, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let storage = server.storage();
    let mut matchers = vec![Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
    for (k, v) in labels {
        matchers.push(Matcher::new(MatchOp::Equal, *k, *v).unwrap());
    }
    let series = storage.select_series(&TenantId::default(), &matchers, i64::MIN, i64::MAX);
    assert!(
        series.len() <= 1,
        "{name} {labels:?} matched {} series",
        series.len()
    );
    let (id, _) = series.first()?;
    let batch = storage
        .scan_samples(&TenantId::default(), &[*id], 0, i64::MAX / 4)
        .await
        .unwrap();
    let values = batch
        .column(2)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    values.iter().flatten().last()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_spans_feed_red_and_service_graph_series() {
    let server = common::TestServer::start().await;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let trace_ok = "5b8efff798038103d269b633813fc60c";
    let trace_err = "5b8efff798038103d269b633813fc60d";
    let body = serde_json::json!({ "resourceSpans": [
        resource_spans("zuul-gateway", vec![
            span((trace_ok, "eee19b7ec3c1b174", ""), "POST /api/fund", 2, 0, now_ns, 40),
            span((trace_ok, "eee19b7ec3c1b175", "eee19b7ec3c1b174"), "POST funding", 3, 0, now_ns, 30),
            span((trace_err, "eee19b7ec3c1b176", ""), "POST /api/fund", 2, 2, now_ns, 900),
            span((trace_err, "eee19b7ec3c1b177", "eee19b7ec3c1b176"), "POST funding", 3, 2, now_ns, 890),
        ]),
        resource_spans("funding", vec![
            span((trace_ok, "aaa19b7ec3c1b101", "eee19b7ec3c1b175"), "POST /funding", 2, 0, now_ns, 25),
            span((trace_err, "aaa19b7ec3c1b102", "eee19b7ec3c1b177"), "POST /funding", 2, 2, now_ns, 880),
        ]),
    ]});
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    server.ingest().write_span_metrics().await.unwrap();

    let edge = [("client", "zuul-gateway"), ("server", "funding")];
    assert_eq!(
        value(&server, "traces_service_graph_request_total", &edge).await,
        Some(2.0)
    );
    assert_eq!(
        value(&server, "traces_service_graph_request_failed_total", &edge).await,
        Some(1.0)
    );
    assert_eq!(
        value(
            &server,
            "traces_service_graph_request_server_seconds_bucket",
            &[edge[0], edge[1], ("le", "0.1")]
        )
        .await,
        Some(1.0)
    );
    let calls = [
        ("service", "funding"),
        ("span_name", "POST /funding"),
        ("span_kind", "SPAN_KIND_SERVER"),
        ("status_code", "STATUS_CODE_ERROR"),
    ];
    assert_eq!(
        value(&server, "traces_spanmetrics_calls_total", &calls).await,
        Some(1.0)
    );
    let latency = [
        ("service", "zuul-gateway"),
        ("span_name", "POST /api/fund"),
        ("span_kind", "SPAN_KIND_SERVER"),
        ("status_code", "STATUS_CODE_UNSET"),
    ];
    assert_eq!(
        value(&server, "traces_spanmetrics_latency_count", &latency).await,
        Some(1.0)
    );
    let metadata = server.storage().metric_metadata(&TenantId::default());
    assert!(
        metadata
            .iter()
            .any(|m| m.metric == "traces_spanmetrics_latency" && m.kind.as_str() == "histogram")
    );
    server.stop().await;
}
