//! `--es-listen`: the Elasticsearch API served unprefixed on its own address, and the
//! templates and ILM policies collectors install, kept across a restart.

mod common;

use std::net::SocketAddr;

use sightline::Listen;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_works_unprefixed_on_the_es_listener() {
    let server = common::TestServer::start_with(|config| {
        config.server.es_listen = Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let es = server
        .running
        .as_ref()
        .unwrap()
        .es_addr()
        .expect("es listener is on");
    let client = reqwest::Client::new();
    let info = client.get(format!("http://{es}/")).send().await.unwrap();
    assert_eq!(info.status(), 200);
    assert_eq!(info.headers()["x-elastic-product"], "Elasticsearch");
    let ready = client
        .get(format!("http://{es}/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body = "{\"index\":{\"_index\":\"logs-app\"}}\n{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"message\":\"hello from filebeat\",\"service.name\":\"sms\"}\n";
    let response = client
        .post(format!("http://{es}/_bulk"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result: serde_json::Value = response.json().await.unwrap();
    assert_eq!(result["errors"], false, "{result}");
    let scan = storage::LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..Default::default()
    };
    let batches = server
        .storage()
        .scan_logs(&proto::TenantId::default(), &scan)
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    server.stop().await;
}

/// What Filebeat 8 installs at start-up (trimmed: the real one maps every ECS field).
fn filebeat_template() -> serde_json::Value {
    serde_json::json!({
        "index_patterns": ["filebeat-8.17.0"],
        "data_stream": {},
        "priority": 150,
        "template": {
            "settings": {"index": {"lifecycle": {"name": "filebeat"}, "max_docvalue_fields_search": 200}},
            "mappings": {"dynamic_templates": [{"labels": {"path_match": "labels.*", "mapping": {"type": "keyword"}}}],
                         "properties": {"message": {"type": "match_only_text"}, "@timestamp": {"type": "date"}}}
        },
        "_meta": {"description": "default filebeat template", "managed": true}
    })
}

async fn start_in(dir: std::path::PathBuf) -> (common::TestServer, String) {
    let server = common::TestServer::start_with(move |config| {
        config.server.data_dir = dir;
        config.server.es_listen = Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let es = server
        .running
        .as_ref()
        .unwrap()
        .es_addr()
        .expect("es listener is on");
    (server, format!("http://{es}"))
}

/// One request with an optional JSON body: the status and the answer parsed as JSON
/// (`Null` when the answer has no JSON body, as for HEAD or a refusal in plain text).
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_and_policies_survive_a_restart() {
    use reqwest::Method;
    use serde_json::{Value, json};
    let data = tempfile::tempdir().expect("tempdir");
    let (server, es) = start_in(data.path().to_path_buf()).await;
    let prefixed = format!("{}/es", server.url());
    let client = reqwest::Client::new();
    let template = format!("{es}/_index_template/filebeat-8.17.0");

    // Filebeat: HEAD (404), PUT, then the next start finds it.
    assert_eq!(call(&client, Method::HEAD, &template, None).await.0, 404);
    assert_eq!(
        call(&client, Method::PUT, &template, Some(&filebeat_template())).await,
        (200, json!({"acknowledged": true}))
    );
    let legacy = json!({"index_patterns": ["logstash-*"], "order": 0, "settings": {"index.refresh_interval": "5s"}});
    let policy =
        json!({"policy": {"phases": {"hot": {"actions": {"rollover": {"max_age": "30d"}}}}}});
    let component = json!({"template": {"settings": {"number_of_shards": 1}}});
    let scratch = json!({"index_patterns": ["scratch-*"]});
    for (url, body) in [
        (format!("{prefixed}/_template/logstash"), &legacy),
        (format!("{es}/_ilm/policy/logstash-policy"), &policy),
        (format!("{es}/_component_template/ecs-base"), &component),
        (format!("{es}/_index_template/scratch"), &scratch),
    ] {
        assert_eq!(
            call(&client, Method::PUT, &url, Some(body)).await.0,
            200,
            "{url}"
        );
    }

    // Refusals: create=true on a taken name, a body that is not JSON, a bad name.
    let (status, error) = call(
        &client,
        Method::PUT,
        &format!("{template}?create=true"),
        Some(&filebeat_template()),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["type"], "resource_already_exists_exception");
    let garbage = client
        .put(format!("{es}/_index_template/other"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let bad_name = format!("{es}/_index_template/_hidden");
    assert_eq!(
        call(&client, Method::PUT, &bad_name, Some(&json!({})))
            .await
            .0,
        400
    );
    let scratch_url = format!("{es}/_index_template/scratch");
    assert_eq!(
        call(&client, Method::DELETE, &scratch_url, None).await.0,
        200
    );
    // Another tenant sees none of them.
    let other = client
        .get(&template)
        .header("X-Scope-OrgID", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert!(data.path().join("es_templates.json").is_file());

    server.stop().await;
    let (server, es) = start_in(data.path().to_path_buf()).await;
    let prefixed = format!("{}/es", server.url());
    let get = |path: String| {
        let client = client.clone();
        async move {
            let (status, body) = call(&client, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };

    for base in [&es, &prefixed] {
        let url = format!("{base}/_index_template/filebeat-8.17.0");
        assert_eq!(
            call(&client, Method::HEAD, &url, None).await.0,
            200,
            "{base}"
        );
        assert_eq!(
            get(url).await,
            json!({"index_templates": [{"name": "filebeat-8.17.0", "index_template": filebeat_template()}]})
        );
    }
    let listed = get(format!("{es}/_index_template/filebeat-*")).await;
    assert_eq!(listed["index_templates"].as_array().unwrap().len(), 1);
    let all = get(format!("{es}/_index_template")).await;
    let names: Vec<&str> = all["index_templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["filebeat-8.17.0"], "scratch was deleted");
    let legacy_back: Value = get(format!("{es}/_template/logstash")).await;
    assert_eq!(
        legacy_back["logstash"]["index_patterns"],
        json!(["logstash-*"])
    );
    assert_eq!(legacy_back["logstash"]["settings"], legacy["settings"]);
    let policy_back = get(format!("{es}/_ilm/policy/logstash-policy")).await;
    assert_eq!(policy_back["logstash-policy"]["policy"], policy["policy"]);
    assert_eq!(policy_back["logstash-policy"]["version"], 1);
    assert_eq!(
        get(format!("{es}/_component_template/ecs-base")).await,
        json!({"component_templates": [{"name": "ecs-base", "component_template": component}]})
    );
    let scratch_url = format!("{es}/_index_template/scratch");
    assert_eq!(call(&client, Method::HEAD, &scratch_url, None).await.0, 404);
    server.stop().await;
}
