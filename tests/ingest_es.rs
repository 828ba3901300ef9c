//! Elasticsearch-compatible ingest under `/es`: start-up endpoints, `_bulk` through the
//! official Python client (`scripts/test-deps/es.sh`), OpenSearch's bulk REST tests
//! (`../shared/testdata/es-bulk/*.yml`), and bad input.

mod common;
#[path = "clients/loki_rows.rs"]
mod loki_rows;

use std::io::Write;
use std::process::Command;

use loki_rows::{attrs, logs};
use proto::TraceId;
use serde_json::{Value, json};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/es-bulk");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_endpoints_answer_like_elasticsearch() {
    let server = common::TestServer::start().await;
    let http = reqwest::Client::new();
    let es = format!("{}/es", server.url());
    let get = |path: &str| http.get(format!("{es}{path}")).send();

    let root = get("/").await.expect("get /");
    assert_eq!(root.status(), 200);
    assert_eq!(root.headers()["x-elastic-product"], "Elasticsearch");
    let info: Value = root.json().await.expect("json");
    assert_eq!(info["tagline"], "You Know, for Search");
    assert_eq!(info["version"]["build_flavor"], "default");
    assert!(
        info["version"]["number"]
            .as_str()
            .expect("number")
            .starts_with("8.")
    );
    let head = http.head(format!("{es}/")).send().await.expect("head /");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-elastic-product"], "Elasticsearch");

    let bare = http.get(&es).send().await.expect("get /es");
    assert_eq!(bare.status(), 200);
    assert_eq!(bare.headers()["x-elastic-product"], "Elasticsearch");

    let license: Value = get("/_license?human=false")
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    assert_eq!(license["license"]["type"], "basic");
    assert_eq!(license["license"]["status"], "active");
    let xpack: Value = get("/_xpack")
        .await
        .expect("xpack")
        .json()
        .await
        .expect("json");
    assert_eq!(xpack["features"]["ilm"]["available"], true);
    let health = get("/_cluster/health?wait_for_status=yellow")
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.expect("json");
    assert_eq!(health["status"], "green");

    for path in [
        "/_index_template/filebeat-8.17.0",
        "/_template/logstash",
        "/_ilm/policy/logstash-policy",
    ] {
        let missing = get(path).await.expect("get template");
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(missing.headers()["x-elastic-product"], "Elasticsearch");
        let error: Value = missing.json().await.expect("json");
        assert_eq!(error["error"]["type"], "resource_not_found_exception");
        assert_eq!(error["status"], 404);
        let head = http.head(format!("{es}{path}")).send().await.expect("head");
        assert_eq!(head.status(), 404);
        let put = http
            .put(format!("{es}{path}"))
            .json(&json!({"index_patterns": ["x-*"]}))
            .send()
            .await
            .expect("put");
        assert_eq!(put.status(), 200, "{path}");
        let put: Value = put.json().await.expect("json");
        assert_eq!(put["acknowledged"], true);
    }
    let alias = http
        .head(format!("{es}/_alias/logstash"))
        .send()
        .await
        .expect("alias");
    assert_eq!(alias.status(), 404);

    let exists = http
        .head(format!("{es}/logs-app"))
        .send()
        .await
        .expect("head index");
    assert_eq!(exists.status(), 200);
    let created: Value = http
        .put(format!("{es}/logs-app"))
        .send()
        .await
        .expect("put index")
        .json()
        .await
        .expect("json");
    assert_eq!(
        created,
        json!({"acknowledged": true, "shards_acknowledged": true, "index": "logs-app"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_bulk_helper_stores_documents() {
    common::run_command(Command::new("bash").arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-deps/es.sh"
    )));
    let server = common::TestServer::start().await;
    let url = format!("{}/es", server.url());
    let script = format!("{CLIENTS}/es_bulk.py");
    let output = tokio::task::spawn_blocking(move || {
        common::run_command(Command::new("python3").arg(script).arg(url))
    })
    .await
    .expect("client thread");
    let result: Value = serde_json::from_str(&output).expect("client prints json");
    assert_eq!(result["info"]["tagline"], "You Know, for Search");
    assert_eq!(result["exists"], true);
    assert_eq!(result["created"]["acknowledged"], true);
    assert_eq!(result["success"], 2);
    let errors = result["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let bad = &errors[0]["index"];
    assert_eq!(bad["_id"], "bad-1");
    assert_eq!(bad["status"], 400);
    assert_eq!(bad["error"]["type"], "document_parsing_exception");
    assert!(
        bad["error"]["reason"]
            .as_str()
            .expect("reason")
            .contains("[@timestamp]")
    );

    let mut rows = logs(&server, "default").await;
    rows.sort_by_key(|row| row.timestamp_ns);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let trace: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("trace");
    let funding = &rows[0];
    assert_eq!(funding.timestamp_ns, 1_768_472_132_123_000_000);
    assert_eq!(funding.service, "funding");
    assert_eq!(funding.instance.as_deref(), Some("funding-7d9f-abc"));
    assert_eq!(funding.severity_text.as_deref(), Some("INFO"));
    assert_eq!(funding.severity_number, 9);
    assert!(
        funding.body.contains("支付成功 payment accepted"),
        "{}",
        funding.body
    );
    assert_eq!(funding.trace_id, Some(trace));
    assert_eq!(
        funding.span_id.map(|s| s.to_string()).as_deref(),
        Some("a3ce929d0e0e4736")
    );
    assert_eq!(
        funding.attributes,
        attrs(&[
            ("es.index", "logs-funding"),
            ("log.logger", "com.tabby.FundingService"),
            ("process.pid", "1"),
            ("process.thread.name", "nio-8080-exec-7"),
        ])
    );
    let orders = &rows[1];
    assert_eq!(orders.timestamp_ns, 1_768_472_133_000_000_000);
    assert_eq!(orders.service, "orders");
    assert_eq!(orders.instance.as_deref(), Some("orders-0"));
    assert_eq!(orders.severity_text.as_deref(), Some("ERROR"));
    assert_eq!(orders.severity_number, 17);
    assert_eq!(orders.body, "订单查询失败: timeout after 3000 ms");
    assert_eq!(orders.trace_id, Some(trace));
    assert_eq!(
        orders.span_id.map(|s| s.to_string()).as_deref(),
        Some("b3ce929d0e0e4736")
    );
    assert_eq!(
        orders.attributes,
        attrs(&[
            ("es.index", "logs-funding"),
            ("error.type", "java.net.SocketTimeoutException"),
            ("kubernetes.container.name", "orders"),
            ("kubernetes.pod.name", "orders-0"),
        ])
    );
    assert!(orders.resource.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_whole() {
    let server = common::TestServer::start().await;
    let http = reqwest::Client::new();
    let bulk = format!("{}/es/_bulk", server.url());
    let cases: [(&[u8], &str); 4] = [
        (
            b"{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"ok\"}\nnot json\n",
            "line [3]",
        ),
        (b"{\"explode\":{\"_index\":\"a\"}}\n{}\n", "[explode]"),
        (b"{\"index\":{\"_index\":\"a\"}}\n", "no source line"),
        (
            b"{\"index\":{}}\n{\"message\":\"no index\"}\n",
            "index is missing",
        ),
    ];
    for (body, expected) in cases {
        let response = http
            .post(&bulk)
            .header("content-type", "application/x-ndjson")
            .body(body.to_vec())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["status"], 400);
        assert_eq!(error["error"]["type"], "illegal_argument_exception");
        let reason = error["error"]["reason"].as_str().expect("reason");
        assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
    }
    let response = http
        .post(&bulk)
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    assert!(logs(&server, "default").await.is_empty());

    // A document dated far ahead is refused alone, as a per-item error.
    let future = "{\"index\":{\"_index\":\"a\"}}\n{\"@timestamp\":\"2999-01-01T00:00:00Z\",\"message\":\"x\"}\n";
    let response = http.post(&bulk).body(future).send().await.expect("post");
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.expect("json");
    assert_eq!(result["errors"], true);
    assert_eq!(result["items"][0]["index"]["status"], 400);
    assert_eq!(
        result["items"][0]["index"]["error"]["type"],
        "document_parsing_exception"
    );
    assert!(logs(&server, "default").await.is_empty());

    // gzip bodies are accepted (Beats, Logstash, Fluent Bit compress).
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(
        "{\"create\":{}}\n{\"message\":\"zipped 压缩\",\"level\":\"warn\"}\n".as_bytes(),
    )
    .expect("gzip");
    let response = http
        .post(format!("{}/es/filebeat-8.17.0/_bulk", server.url()))
        .header("content-encoding", "gzip")
        .body(gzip.finish().expect("gzip"))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.expect("json");
    assert_eq!(result["errors"], false);
    assert_eq!(result["items"][0]["create"]["_index"], "filebeat-8.17.0");
    let rows = logs(&server, "default").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].body, "zipped 压缩");
    assert_eq!(rows[0].severity_number, 13);
    assert_eq!(
        rows[0].attributes,
        attrs(&[("es.index", "filebeat-8.17.0")])
    );
}

/// Looks up `a.0.b` style paths.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |current, part| match part.parse::<usize>() {
            Ok(index) => current.get(index),
            Err(_) => current.get(part),
        })
}

/// The YAML files' cases that need index or alias management, which a log store
/// does not have; every other case runs.
const NOT_APPLICABLE: [&str; 3] = [
    "When setting require_alias flag per request",
    "When setting require_alias flag",
    "Return item-level error when no write index defined for an alias",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_bulk_rest_tests() {
    common::run_command(Command::new("bash").arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-deps/es.sh"
    )));
    let mut command = Command::new("python3");
    command.arg(format!("{CLIENTS}/es_yaml_cases.py"));
    for file in ["10_basic.yml", "20_list_of_strings.yml", "40_source.yml"] {
        command.arg(format!("{TESTDATA}/{file}"));
    }
    let cases: Vec<Value> =
        serde_json::from_str(&common::run_command(&mut command)).expect("cases json");
    assert_eq!(cases.len(), 9);
    let server = common::TestServer::start().await;
    let http = reqwest::Client::new();
    let mut not_applicable = Vec::new();
    let mut ran = 0;
    for (number, case) in cases.iter().enumerate() {
        let name = case["case"].as_str().expect("name");
        let steps = case["steps"].as_array().expect("steps");
        let uses_indices = steps.iter().any(|s| {
            s["api"]
                .as_str()
                .is_some_and(|api| api.starts_with("indices."))
        });
        if uses_indices {
            not_applicable.push(name);
            continue;
        }
        let tenant = format!("case-{number}");
        let mut last = Value::Null;
        for step in steps {
            match step["kind"].as_str().expect("kind") {
                "do" => last = run_step(&server, &http, &tenant, step, name).await,
                kind @ ("match" | "is_false") => check(&last, step, kind, name),
                _ => {}
            }
        }
        ran += 1;
    }
    assert_eq!(not_applicable, NOT_APPLICABLE);
    assert_eq!(ran, 6);
}

async fn run_step(
    server: &common::TestServer,
    http: &reqwest::Client,
    tenant: &str,
    step: &Value,
    case: &str,
) -> Value {
    let params = &step["params"];
    let index = params["index"].as_str();
    match step["api"].as_str().expect("api") {
        "bulk" => {
            let path = match index {
                Some(index) => format!("/es/{index}/_bulk"),
                None => "/es/_bulk".to_string(),
            };
            let query: Vec<(String, String)> = params
                .as_object()
                .expect("params")
                .iter()
                .filter(|(k, _)| k.as_str() != "index")
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect();
            let mut request = http
                .post(format!("{}{path}", server.url()))
                .query(&query)
                .header("x-scope-orgid", tenant)
                .header("content-type", "application/x-ndjson")
                .body(step["body"].as_str().expect("body").to_string());
            for (name, value) in step["headers"].as_object().expect("headers") {
                request = request.header(name.as_str(), value.as_str().expect("header"));
            }
            let response = request.send().await.expect("bulk");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            if let Some(pattern) = step["catch"].as_str() {
                let literal = pattern.trim_matches('/').replace('\\', "");
                assert_eq!(status, 400, "{case}: {body}");
                let reason = body["error"]["reason"].as_str().expect("reason");
                assert!(
                    reason.contains(&literal),
                    "{case}: {reason:?} lacks {literal:?}"
                );
            } else {
                assert_eq!(status, 200, "{case}: {body}");
            }
            body
        }
        "count" => {
            let index = index.expect("count index");
            let count = logs(server, tenant)
                .await
                .iter()
                .filter(|row| row.attributes.get("es.index").map(String::as_str) == Some(index))
                .count();
            json!({ "count": count })
        }
        "index" => {
            let id = params["id"].as_str().expect("id");
            let response = http
                .put(format!(
                    "{}/es/{}/_doc/{id}",
                    server.url(),
                    index.expect("index")
                ))
                .header("x-scope-orgid", tenant)
                .header("content-type", "application/json")
                .body(step["body"].as_str().expect("body").to_string())
                .send()
                .await
                .expect("index");
            assert_eq!(response.status(), 201, "{case}");
            response.json().await.expect("json")
        }
        other => panic!("{case}: api {other} is not translated"),
    }
}

/// Asserts a `match`/`is_false` step. `update` is refused per item by design (logs are
/// append-only), so assertions about an update's result check that refusal instead.
fn check(last: &Value, step: &Value, kind: &str, case: &str) {
    let path = step["path"].as_str().expect("path");
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() > 2 && parts[0] == "items" && parts[2] == "update" {
        let item = lookup(last, &parts[..3].join(".")).expect("update item");
        assert_eq!(item["status"], 400, "{case}: {path}");
        assert_eq!(
            item["error"]["type"], "illegal_argument_exception",
            "{case}: {path}"
        );
        return;
    }
    let actual = lookup(last, path);
    if kind == "is_false" {
        assert!(
            matches!(actual, None | Some(Value::Null | Value::Bool(false))),
            "{case}: {path}"
        );
    } else {
        assert_eq!(actual, Some(&step["value"]), "{case}: {path} in {last}");
    }
}
