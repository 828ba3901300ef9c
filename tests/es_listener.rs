//! `--es-listen`: the Elasticsearch API served unprefixed on its own address.

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
