//! `deploy/grafana/datasources.yaml`: the file parses (PyYAML, as installed by
//! `scripts/test-deps/es.sh`), every cross-link uid names a datasource of the right type,
//! `$` is escaped for provisioning, and every API path those datasources call (health
//! checks, editors, the links between them) is answered by a running Sightline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sightline::Listen;

use common::{TestServer, run_command};

const PROVISIONING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/datasources.yaml"
);
const MAIN_URL: &str = "http://sightline:7700";
const JAEGER_URL: &str = "http://sightline:16686";

/// The provisioning file as JSON.
fn provisioning() -> Value {
    let script = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)";
    let text = run_command(Command::new("python3").args(["-c", script, PROVISIONING]));
    serde_json::from_str(&text).expect("provisioning file as JSON")
}

fn datasources(file: &Value) -> &Vec<Value> {
    file["datasources"].as_array().expect("datasources list")
}

/// Every `datasourceUid` in a datasource's settings, with the key path leading to it.
fn links(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if key == "datasourceUid" {
                    out.push((child_path, child.as_str().expect("uid string").to_string()));
                } else {
                    links(child, &child_path, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                links(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every string in the settings.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[test]
fn datasources_and_their_links_are_consistent() {
    let file = provisioning();
    assert_eq!(file["apiVersion"], json!(1));
    let sources = datasources(&file);
    let by_uid: BTreeMap<&str, &str> = sources
        .iter()
        .map(|ds| {
            (
                ds["uid"].as_str().expect("uid"),
                ds["type"].as_str().expect("type"),
            )
        })
        .collect();
    assert_eq!(by_uid.len(), sources.len(), "uids are unique");
    let names: BTreeSet<&str> = sources
        .iter()
        .map(|ds| ds["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names.len(), sources.len(), "names are unique");
    let types: BTreeSet<&str> = by_uid.values().copied().collect();
    assert_eq!(
        types,
        BTreeSet::from(["prometheus", "loki", "tempo", "zipkin", "jaeger"])
    );
    assert_eq!(
        sources
            .iter()
            .filter(|ds| ds["isDefault"] == json!(true))
            .count(),
        1,
        "one default datasource"
    );

    let mut checked = 0;
    for ds in sources {
        let kind = ds["type"].as_str().expect("type");
        assert_eq!(ds["access"], json!("proxy"), "{kind}");
        let expected_url = if kind == "jaeger" {
            JAEGER_URL
        } else {
            MAIN_URL
        };
        assert_eq!(ds["url"], json!(expected_url), "{kind}");

        let mut found = Vec::new();
        links(&ds["jsonData"], kind, &mut found);
        for (path, uid) in found {
            let target = by_uid
                .get(uid.as_str())
                .unwrap_or_else(|| panic!("{path} names {uid}, which no datasource has"));
            let wanted = if path.contains("tracesToLogs") || path.contains("lokiSearch") {
                "loki"
            } else if path.contains("tracesToMetrics") || path.contains("serviceMap") {
                "prometheus"
            } else if path.contains("exemplarTraceIdDestinations") || path.contains("derivedFields")
            {
                "tempo"
            } else {
                panic!("unexpected link {path}")
            };
            assert_eq!(*target, wanted, "{path} links to a {target} datasource");
            checked += 1;
        }

        // Provisioning expands `$VAR`; a literal `$` must be written `$$`.
        let mut texts = Vec::new();
        strings(&ds["jsonData"], &mut texts);
        for text in texts {
            let unescaped = text.replace("$$", "");
            assert!(!unescaped.contains('$'), "{kind}: unescaped $ in {text:?}");
        }
    }
    // exemplars, 2 derived fields, tempo: logs, metrics, service map, loki search;
    // zipkin and jaeger: logs.
    assert_eq!(checked, 9);

    let tempo = sources
        .iter()
        .find(|ds| ds["type"] == json!("tempo"))
        .expect("tempo");
    assert_eq!(tempo["jsonData"]["nodeGraph"]["enabled"], json!(true));
    assert_eq!(tempo["jsonData"]["search"]["hide"], json!(false));
    for query in tempo["jsonData"]["tracesToMetrics"]["queries"]
        .as_array()
        .expect("queries")
    {
        assert!(
            query["query"].as_str().expect("query").contains("$$__tags"),
            "{query}"
        );
    }
    let prometheus = sources
        .iter()
        .find(|ds| ds["type"] == json!("prometheus"))
        .expect("prometheus");
    assert_eq!(
        prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["name"],
        json!("trace_id"),
        "the exemplar label the Prometheus API returns"
    );
}

/// A request a datasource makes, and what the answer must contain.
struct Probe {
    datasource: &'static str,
    method: &'static str,
    path: String,
    form: Vec<(&'static str, String)>,
    check: fn(&str) -> bool,
}

fn json_success(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| v["status"] == json!("success"))
}

fn json_data_list_has_gateway(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        let list = if v.is_array() { &v } else { &v["data"] };
        list.as_array()
            .is_some_and(|items| items.iter().any(|i| i == &json!("gateway")))
    })
}

fn vector_of_two(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        v["status"] == json!("success") && v["data"]["result"][0]["value"][1] == json!("2")
    })
}

fn probes(now_s: i64) -> Vec<Probe> {
    let range = |query: &str| {
        vec![
            ("query", query.to_string()),
            ("start", (now_s - 600).to_string()),
            ("end", now_s.to_string()),
            ("step", "15".to_string()),
        ]
    };
    vec![
        // Prometheus "Save & test": 1+1 at time 4, then buildinfo.
        Probe {
            datasource: "prometheus",
            method: "POST",
            path: "/api/v1/query".into(),
            form: vec![("query", "1+1".into()), ("time", "4".into())],
            check: |body| {
                serde_json::from_str::<Value>(body)
                    .is_ok_and(|v| v["data"]["result"][1] == json!("2"))
            },
        },
        Probe {
            datasource: "prometheus",
            method: "GET",
            path: "/api/v1/status/buildinfo".into(),
            form: Vec::new(),
            check: |body| {
                serde_json::from_str::<Value>(body).is_ok_and(|v| v["data"]["version"].is_string())
            },
        },
        Probe {
            datasource: "prometheus",
            method: "GET",
            path: "/api/v1/label/__name__/values".into(),
            form: Vec::new(),
            check: |body| body.contains("traces_spanmetrics_calls_total"),
        },
        Probe {
            datasource: "prometheus",
            method: "POST",
            path: "/api/v1/labels".into(),
            form: Vec::new(),
            check: json_success,
        },
        Probe {
            datasource: "prometheus",
            method: "POST",
            path: "/api/v1/query_exemplars".into(),
            form: range("traces_spanmetrics_latency_bucket"),
            check: json_success,
        },
        // Tempo's traces-to-metrics and service map, through the Prometheus datasource.
        Probe {
            datasource: "prometheus",
            method: "POST",
            path: "/api/v1/query_range".into(),
            form: range("sum(rate(traces_spanmetrics_calls_total{service=\"gateway\"}[5m]))"),
            check: json_success,
        },
        Probe {
            datasource: "prometheus",
            method: "POST",
            path: "/api/v1/query".into(),
            form: vec![
                (
                    "query",
                    "sum by (client, server) (rate(traces_service_graph_request_total[5m]))".into(),
                ),
                ("time", now_s.to_string()),
            ],
            check: json_success,
        },
        // Loki "Save & test" (current and older Grafana), and the label browser.
        Probe {
            datasource: "loki",
            method: "GET",
            path: "/loki/api/v1/query?query=vector(1)%2Bvector(1)&time=4000000000".into(),
            form: Vec::new(),
            check: vector_of_two,
        },
        Probe {
            datasource: "loki",
            method: "GET",
            path: format!(
                "/loki/api/v1/labels?start={}&end={}",
                (now_s - 600) * 1_000_000_000,
                now_s * 1_000_000_000
            ),
            form: Vec::new(),
            check: json_success,
        },
        // Tempo "Save & test", search and its editor.
        Probe {
            datasource: "tempo",
            method: "GET",
            path: "/api/echo".into(),
            form: Vec::new(),
            check: |body| body.trim() == "echo",
        },
        Probe {
            datasource: "tempo",
            method: "GET",
            path: format!(
                "/api/search?q=%7B%7D&limit=20&start={}&end={now_s}",
                now_s - 600
            ),
            form: Vec::new(),
            check: |body| serde_json::from_str::<Value>(body).is_ok_and(|v| v["traces"].is_array()),
        },
        Probe {
            datasource: "tempo",
            method: "GET",
            path: "/api/v2/search/tags".into(),
            form: Vec::new(),
            check: |body| serde_json::from_str::<Value>(body).is_ok_and(|v| v["scopes"].is_array()),
        },
        // Zipkin "Save & test".
        Probe {
            datasource: "zipkin",
            method: "GET",
            path: "/api/v2/services".into(),
            form: Vec::new(),
            check: json_data_list_has_gateway,
        },
        // Jaeger "Save & test", on its own port.
        Probe {
            datasource: "jaeger",
            method: "GET",
            path: "/api/services".into(),
            form: Vec::new(),
            check: json_data_list_has_gateway,
        },
    ]
}

#[tokio::test]
async fn every_path_the_datasources_call_is_answered() {
    let file = provisioning();
    let server = TestServer::start_with(|config| {
        config.server.jaeger_listen = Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let spans = json!([
        {"traceId": "5af7183fb1d4cf5f0000000000000001", "id": "00000000000000a1", "kind": "SERVER",
         "name": "get /", "timestamp": now_us - 30_000_000, "duration": 1_000,
         "localEndpoint": {"serviceName": "gateway"}}
    ]);
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v2/spans", server.url()))
        .json(&spans)
        .send()
        .await
        .expect("zipkin");
    assert_eq!(response.status().as_u16(), 202);
    // Span-derived metrics are written every 15 s; write them now.
    server
        .ingest()
        .write_span_metrics()
        .await
        .expect("span metrics");

    // The provisioned URLs, pointed at this server.
    let base_of = |kind: &str| -> String {
        let ds = datasources(&file)
            .iter()
            .find(|ds| ds["type"] == json!(kind))
            .unwrap_or_else(|| panic!("no {kind} datasource"));
        let url = ds["url"].as_str().expect("url");
        url.replace(MAIN_URL, &server.url())
            .replace(JAEGER_URL, &server.jaeger_url())
    };
    let now_s = now_us / 1_000_000;
    let mut failures = Vec::new();
    for probe in probes(now_s) {
        let url = format!("{}{}", base_of(probe.datasource), probe.path);
        let request = match probe.method {
            "POST" => client.post(&url).form(&probe.form),
            _ => client.get(&url),
        };
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        if status != 200 || !(probe.check)(&body) {
            let shown: String = body.chars().take(300).collect();
            failures.push(format!(
                "{} {} {} -> {status} {shown}",
                probe.datasource, probe.method, probe.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "unanswered datasource calls:\n{}",
        failures.join("\n")
    );
    server.stop().await;
}
