//! Tempo API: the request sequence Grafana's Tempo datasource sends (echo, buildinfo,
//! tags v2, tag values, TraceQL search, trace by id as protobuf then JSON), legacy tag
//! search, TraceQL constructs over HTTP, and the service graph.

mod common;
mod read_traces_support;

use proto::otlp::{ExportTraceServiceRequest, Message};
use read_traces_support::{TRACE_A, TRACE_B, get, get_json, load_otlp};
use serde_json::{Value, json};

/// `tempopb.TraceByIDResponse` as a client decodes it (its `trace` is wire-identical to
/// an OTLP export request).
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<ExportTraceServiceRequest>,
    #[prost(int32, tag = "3")]
    status: i32,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A trace id as Tempo's search writes it: hex, leading zeros trimmed.
fn trimmed(bytes: &[u8]) -> String {
    hex(bytes).trim_start_matches('0').to_string()
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Trace ids of a search answer.
async fn search_ids(base: &str, query: &str) -> Vec<String> {
    let body = get_json(&format!("{base}/api/search?q={}", encode(query)), "t").await;
    body["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {body}"))
        .iter()
        .map(|t| t["traceID"].as_str().expect("id").to_string())
        .collect()
}

fn attribute<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_tempo_datasource_sequence() {
    let server = common::TestServer::start().await;
    let base = server.url();
    let start = load_otlp(&server, "t").await;
    let (start_s, end_s) = (start / 1_000_000_000 - 60, start / 1_000_000_000 + 60);

    // Save & test, then the version.
    let (status, body, content_type) = get(&format!("{base}/api/echo"), "t", "*/*").await;
    assert_eq!((status, body.as_slice()), (200, b"echo".as_slice()));
    assert!(content_type.starts_with("text/plain"));
    let info = get_json(&format!("{base}/api/status/buildinfo"), "t").await;
    assert!(info["version"].as_str().is_some_and(|v| v.starts_with('2')));

    // The editor: tag names by scope, then values.
    let tags = get_json(
        &format!("{base}/api/v2/search/tags?start={start_s}&end={end_s}"),
        "t",
    )
    .await;
    let scope = |name: &str| -> Vec<String> {
        tags["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("scope {name}: {tags}"))["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().expect("tag").to_string())
            .collect()
    };
    assert_eq!(scope("resource"), ["host.name", "service.name"]);
    assert!(scope("span").contains(&"http.status_code".to_string()));
    assert!(scope("span").contains(&"db.system".to_string()));
    assert!(scope("intrinsic").contains(&"rootServiceName".to_string()));
    let only_resource = get_json(&format!("{base}/api/v2/search/tags?scope=resource"), "t").await;
    assert_eq!(only_resource["scopes"].as_array().map(Vec::len), Some(1));
    let services = get_json(
        &format!("{base}/api/v2/search/tag/resource.service.name/values"),
        "t",
    )
    .await;
    assert_eq!(
        services["tagValues"],
        json!([{"type": "string", "value": "api"}, {"type": "string", "value": "cart"}])
    );
    let codes = get_json(
        &format!("{base}/api/v2/search/tag/span.http.status_code/values"),
        "t",
    )
    .await;
    assert_eq!(
        codes["tagValues"],
        json!([{"type": "int", "value": "200"}, {"type": "int", "value": "500"}])
    );
    let status = get_json(&format!("{base}/api/v2/search/tag/status/values"), "t").await;
    assert_eq!(
        status["tagValues"][0],
        json!({"type": "keyword", "value": "error"})
    );
    let names = get_json(&format!("{base}/api/v2/search/tag/name/values"), "t").await;
    assert_eq!(names["tagValues"].as_array().map(Vec::len), Some(6));
    let v1 = get_json(&format!("{base}/api/search/tags"), "t").await;
    assert!(
        v1["tagNames"]
            .as_array()
            .expect("names")
            .contains(&json!("service.name"))
    );
    let v1_values = get_json(&format!("{base}/api/search/tag/service.name/values"), "t").await;
    assert_eq!(v1_values["tagValues"], json!(["api", "cart"]));

    // The search builder's query.
    let query =
        r#"{resource.service.name="cart" && name="POST /cart" && duration>100ms && status=error}"#;
    let url = format!(
        "{base}/api/search?q={}&limit=20&spss=3&start={start_s}&end={end_s}",
        encode(query)
    );
    let found = get_json(&url, "t").await;
    let traces = found["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 1, "{found}");
    let trace = &traces[0];
    assert_eq!(trace["traceID"], trimmed(&TRACE_A));
    assert_eq!(trace["rootServiceName"], "api");
    assert_eq!(trace["rootTraceName"], "GET /checkout");
    assert_eq!(trace["startTimeUnixNano"], start.to_string());
    assert_eq!(trace["durationMs"], 900);
    assert_eq!(
        trace["serviceStats"]["cart"],
        json!({"spanCount": 2, "errorCount": 1})
    );
    let set = &trace["spanSets"][0];
    assert_eq!(set["matched"], 1);
    let span = &set["spans"][0];
    assert_eq!(span["spanID"], "0303030303030303");
    assert_eq!(span["name"], "POST /cart");
    assert_eq!(span["durationNanos"], "400000000");
    assert_eq!(
        attribute(&span["attributes"], "service.name"),
        Some(&json!({"stringValue": "cart"}))
    );
    assert_eq!(
        attribute(&span["attributes"], "status"),
        Some(&json!({"stringValue": "error"}))
    );
    assert_eq!(trace["spanSet"], *set);
    assert!(found["metrics"]["inspectedTraces"].as_u64() >= Some(2));

    // Trace by id: v2 protobuf first (Grafana), then v1, then JSON.
    let id = hex(&TRACE_A);
    let (status, body, content_type) = get(
        &format!("{base}/api/v2/traces/{id}?start={start_s}&end={end_s}"),
        "t",
        "application/protobuf",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/protobuf");
    let response = TraceByIdResponse::decode(body.as_slice()).expect("TraceByIDResponse");
    assert_eq!(response.status, 0);
    let trace = response.trace.expect("trace");
    let spans: Vec<_> = trace
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.iter()))
        .collect();
    assert_eq!(spans.len(), 5);
    assert_eq!(trace.resource_spans.len(), 2);
    let cart = spans
        .iter()
        .find(|s| s.name == "POST /cart")
        .expect("cart span");
    assert_eq!(cart.parent_span_id, vec![2u8; 8]);
    assert_eq!(cart.kind, 2);
    assert_eq!(
        cart.status.as_ref().map(|s| (s.code, s.message.as_str())),
        Some((2, "boom"))
    );
    let code = cart
        .attributes
        .iter()
        .find(|kv| kv.key == "http.status_code")
        .expect("code");
    assert_eq!(
        code.value.as_ref().and_then(|v| v.value.clone()),
        Some(proto::otlp::any_value::Value::IntValue(500))
    );
    let select = spans.iter().find(|s| s.name == "SELECT").expect("select");
    assert_eq!(select.events[0].name, "retry");
    assert_eq!(
        trace.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("io.test")
    );
    let (status, body, _) = get(
        &format!("{base}/api/traces/{id}"),
        "t",
        "application/protobuf",
    )
    .await;
    assert_eq!(status, 200);
    let v1 = ExportTraceServiceRequest::decode(body.as_slice()).expect("tempopb.Trace");
    assert_eq!(v1, trace);
    let json_v1 = get_json(&format!("{base}/api/traces/{id}"), "t").await;
    let json_spans: Vec<&Value> = json_v1["resourceSpans"]
        .as_array()
        .expect("resourceSpans")
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(json_spans.len(), 5);
    let cart = json_spans
        .iter()
        .find(|s| s["name"] == "POST /cart")
        .expect("cart");
    assert_eq!(cart["traceId"], id);
    assert_eq!(cart["parentSpanId"], "0202020202020202");
    assert_eq!(
        attribute(&cart["attributes"], "http.status_code"),
        Some(&json!({"intValue": "500"}))
    );
    let json_v2 = get_json(&format!("{base}/api/v2/traces/{id}"), "t").await;
    assert_eq!(json_v2["trace"], json_v1);
    assert_eq!(json_v2["status"], "COMPLETE");

    // Trimmed ids (as search returns them) resolve; unknown ids are 404 on both versions.
    let short = trimmed(&TRACE_B);
    let (status, _, _) = get(
        &format!("{base}/api/v2/traces/{short}"),
        "t",
        "application/protobuf",
    )
    .await;
    assert_eq!(status, 200);
    for path in ["/api/v2/traces/abcdef", "/api/traces/abcdef"] {
        let (status, _, _) = get(&format!("{base}{path}"), "t", "application/protobuf").await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = get(
        &format!("{base}/api/traces/xyz"),
        "t",
        "application/protobuf",
    )
    .await;
    assert_eq!(status, 400);
    let (status, body, _) = get(
        &format!("{base}/api/search?q={}", encode("{ foo = 1 }")),
        "t",
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("unknown field"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceql_constructs_legacy_search_and_service_graph() {
    let server = common::TestServer::start().await;
    let base = server.url();
    let start = load_otlp(&server, "t").await;
    let (a, b) = (trimmed(&TRACE_A), trimmed(&TRACE_B));
    assert_eq!(
        search_ids(&base, "{}").await,
        [b.as_str(), a.as_str()],
        "newest first"
    );
    assert_eq!(
        search_ids(&base, r#"{ resource.service.name = "api" }"#).await,
        [b.as_str(), a.as_str()]
    );
    assert_eq!(
        search_ids(&base, "{ span.http.status_code >= 500 }").await,
        [a.as_str()]
    );
    assert_eq!(
        search_ids(&base, "{ .http.status_code = 200 }").await,
        [b.as_str()]
    );
    assert_eq!(search_ids(&base, "{ status = ok }").await, [b.as_str()]);
    assert_eq!(
        search_ids(&base, "{ kind = internal } && { status = error }").await,
        [a.as_str()]
    );
    assert_eq!(
        search_ids(&base, "{ status = ok } || { kind = internal }").await,
        [b.as_str(), a.as_str()]
    );
    assert_eq!(
        search_ids(
            &base,
            r#"{ resource.service.name = "api" } >> { span.db.system = "postgres" }"#
        )
        .await,
        [a.as_str()]
    );
    assert_eq!(
        search_ids(
            &base,
            r#"{ resource.service.name = "api" } > { span.db.system = "postgres" }"#
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        search_ids(&base, r#"{ name =~ "GET.*" }"#).await,
        [b.as_str(), a.as_str()]
    );
    assert_eq!(
        search_ids(&base, r#"{ name !~ "GET.*" && rootServiceName = "api" }"#).await,
        [a.as_str()]
    );
    assert_eq!(
        search_ids(&base, "{ traceDuration > 500ms }").await,
        [a.as_str()]
    );
    assert_eq!(search_ids(&base, "{ } | count() > 3").await, [a.as_str()]);
    assert_eq!(
        search_ids(&base, r#"{ event:name = "retry" }"#).await,
        [a.as_str()]
    );

    let selected = get_json(
        &format!(
            "{base}/api/search?q={}",
            encode(r#"{ status = error } | select(span.http.url)"#)
        ),
        "t",
    )
    .await;
    let span = &selected["traces"][0]["spanSets"][0]["spans"][0];
    assert_eq!(
        attribute(&span["attributes"], "http.url"),
        Some(&json!({"stringValue": "/cart?id=1"}))
    );
    let grouped = get_json(
        &format!(
            "{base}/api/search?q={}&spss=1",
            encode("{ } | by(resource.service.name)")
        ),
        "t",
    )
    .await;
    let sets = grouped["traces"][1]["spanSets"].as_array().expect("sets");
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0]["matched"], 3);
    assert_eq!(sets[0]["spans"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        sets[0]["attributes"][0]["value"],
        json!({"stringValue": "api"})
    );
    let limited = get_json(&format!("{base}/api/search?q=%7B%7D&limit=1"), "t").await;
    assert_eq!(limited["traces"].as_array().map(Vec::len), Some(1));

    // Legacy tag search: case-insensitive substring on attributes, Go durations.
    let legacy = |query: &str| {
        let url = format!("{base}/api/search?{query}");
        async move {
            get_json(&url, "t").await["traces"]
                .as_array()
                .expect("traces")
                .iter()
                .map(|t| t["traceID"].as_str().expect("id").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        legacy(&format!("tags={}", encode("service.name=CART"))).await,
        [a.as_str()]
    );
    assert_eq!(legacy("minDuration=800ms").await, [a.as_str()]);
    assert_eq!(legacy("maxDuration=6ms").await, [b.as_str()]);
    assert_eq!(
        legacy(&format!(
            "tags={}&minDuration=1s",
            encode("http.method=get")
        ))
        .await,
        Vec::<String>::new()
    );

    // TraceQL metrics: rate and quantiles by service, over one bucket holding both traces.
    let (from, to) = (start / 1_000_000_000 - 10, start / 1_000_000_000 + 50);
    let rate = get_json(
        &format!(
            "{base}/api/metrics/query_range?q={}&start={from}&end={to}&step=60s",
            encode("{ } | rate() by (resource.service.name)")
        ),
        "t",
    )
    .await;
    let series = rate["series"].as_array().expect("series");
    assert_eq!(series.len(), 2, "{rate}");
    assert_eq!(
        series[0]["labels"],
        json!([{"key": "resource.service.name", "value": {"stringValue": "api"}}])
    );
    assert_eq!(series[0]["promLabels"], "{resource.service.name=\"api\"}");
    // Buckets start at `from` and step to `end` inclusive: the second one is empty.
    assert_eq!(
        series[0]["samples"],
        json!([
            {"timestampMs": (from * 1000).to_string(), "value": 4.0 / 60.0},
            {"timestampMs": (to * 1000).to_string(), "value": 0.0},
        ])
    );
    let quantiles = get_json(
        &format!(
            "{base}/api/metrics/query_range?q={}&start={from}&end={to}&step=60s",
            encode(
                r#"{ resource.service.name = "cart" } | quantile_over_time(duration, 0.5, 0.99)"#
            )
        ),
        "t",
    )
    .await;
    let series = quantiles["series"].as_array().expect("series");
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["samples"][0]["value"], 0.05);
    assert_eq!(series[1]["samples"][0]["value"], 0.4);
    let (status, _, _) = get(
        &format!("{base}/api/metrics/query_range?q=%7B%7D"),
        "t",
        "*/*",
    )
    .await;
    assert_eq!(status, 400, "a metrics query needs a metrics function");

    // The service graph computed from the spans.
    let graph = get_json(&format!("{base}/api/v1/service_graph"), "t").await;
    assert_eq!(graph["status"], "success");
    let nodes: Vec<&str> = graph["data"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["service"].as_str().expect("service"))
        .collect();
    assert_eq!(nodes, ["api", "cart", "postgres"]);
    assert_eq!(
        graph["data"]["edges"],
        json!([
            {"caller": "api", "callee": "cart", "calls": 1, "errors": 1, "error_rate": 1.0,
             "p50_ms": 400.0, "p95_ms": 400.0, "p99_ms": 400.0},
            {"caller": "cart", "callee": "postgres", "calls": 1, "errors": 0, "error_rate": 0.0,
             "p50_ms": 50.0, "p95_ms": 50.0, "p99_ms": 50.0},
        ])
    );
    let old = get_json(
        &format!("{base}/api/v1/service_graph?start=1000&end=2000"),
        "t",
    )
    .await;
    assert_eq!(old["data"]["edges"], json!([]));
}
