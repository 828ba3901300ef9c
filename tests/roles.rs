//! `sightline serve --role all|ingest|query|compact`: each role serves only its part
//! (an ingester the write protocols, a querier the read APIs, a compactor neither), the
//! flag is on the command line with `all` as the default, and a querier sharing an
//! ingester's segment store reads what the ingester flushed.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use proto::HumanDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sightline::{Config, Listen, Role};

use common::{TestServer, wait_until};

const PUSH: &str = "/loki/api/v1/push";
const QUERY_RANGE: &str = "/loki/api/v1/query_range";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Every listener on, so that a role's missing ones show.
fn with_role(role: Role, shared_store: Option<&Path>) -> impl FnOnce(&mut Config) {
    let shared = shared_store.map(|dir| format!("file://{}", dir.display()));
    move |config| {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.role = role;
        config.server.jaeger_listen = Listen::On(any);
        config.storage.url = shared;
        config.storage.catalog.refresh_interval = HumanDuration::millis(50);
    }
}

async fn push_line(server: &TestServer, ts_ns: i64, line: &str) -> StatusCode {
    let body = json!({"streams": [{
        "stream": {"service_name": "checkout"},
        "values": [[ts_ns.to_string(), line]],
    }]});
    reqwest::Client::new()
        .post(format!("{}{PUSH}", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn query_lines(server: &TestServer, start_ns: i64) -> (StatusCode, Vec<String>) {
    let response = reqwest::Client::new()
        .get(format!("{}{QUERY_RANGE}", server.url()))
        .query(&[
            ("query", "{service_name=\"checkout\"}".to_string()),
            ("start", (start_ns - 60_000_000_000).to_string()),
            ("end", (start_ns + 60_000_000_000).to_string()),
            ("limit", "100".to_string()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status != StatusCode::OK {
        return (status, Vec::new());
    }
    let body: Value = response.json().await.unwrap();
    let mut lines: Vec<String> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|stream| stream["values"].as_array().unwrap().clone())
        .map(|value| value[1].as_str().unwrap().to_string())
        .collect();
    lines.sort();
    (status, lines)
}

async fn status_of(server: &TestServer, method: reqwest::Method, path: &str) -> StatusCode {
    reqwest::Client::new()
        .request(method, format!("{}{path}", server.url()))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn each_role_serves_only_its_part() {
    let t0 = now_ns();
    let ingester = TestServer::start_with(with_role(Role::Ingest, None)).await;
    let querier = TestServer::start_with(with_role(Role::Query, None)).await;
    let compactor = TestServer::start_with(with_role(Role::Compact, None)).await;
    let all = TestServer::start_with(with_role(Role::All, None)).await;
    for server in [&ingester, &querier, &compactor, &all] {
        assert_eq!(
            status_of(server, reqwest::Method::GET, "/health").await,
            200
        );
        assert_eq!(status_of(server, reqwest::Method::GET, "/ready").await, 200);
        assert_eq!(
            status_of(server, reqwest::Method::GET, "/metrics").await,
            200
        );
    }

    // The ingester takes writes and flushes, answers no query, has no Jaeger listener.
    assert_eq!(
        push_line(&ingester, t0, "written").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(query_lines(&ingester, t0).await.0, StatusCode::NOT_FOUND);
    let flush = status_of(&ingester, reqwest::Method::POST, "/api/v1/admin/flush").await;
    assert_eq!(flush, 200);
    let running = ingester.running.as_ref().unwrap();
    assert!(running.otlp_http_addr().is_some());
    assert!(running.jaeger_addr().is_none());

    // The querier answers queries, refuses writes (no route), has no OTLP/HTTP listener.
    assert_eq!(
        push_line(&querier, t0, "refused").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        query_lines(&querier, t0).await,
        (StatusCode::OK, Vec::new())
    );
    let flush = status_of(&querier, reqwest::Method::POST, "/api/v1/admin/flush").await;
    assert_eq!(flush, StatusCode::NOT_FOUND);
    let running = querier.running.as_ref().unwrap();
    assert!(running.otlp_http_addr().is_none());
    assert!(running.jaeger_addr().is_some());

    // The compactor: neither.
    assert_eq!(
        push_line(&compactor, t0, "refused").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(query_lines(&compactor, t0).await.0, StatusCode::NOT_FOUND);
    assert!(compactor.running.as_ref().unwrap().jaeger_addr().is_none());

    // `all` is the single-node server: a write is visible to its own queries at once.
    assert_eq!(
        push_line(&all, t0, "everything").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        query_lines(&all, t0).await,
        (StatusCode::OK, vec!["everything".to_string()])
    );
    for server in [ingester, querier, compactor, all] {
        server.stop().await;
    }
}

#[tokio::test]
async fn a_querier_reads_what_an_ingester_flushed_to_the_shared_store() {
    let shared = tempfile::tempdir().unwrap();
    let t0 = now_ns();
    let ingester = TestServer::start_with(with_role(Role::Ingest, Some(shared.path()))).await;
    let querier = TestServer::start_with(with_role(Role::Query, Some(shared.path()))).await;
    for (i, line) in ["first", "second"].iter().enumerate() {
        let status = push_line(&ingester, t0 + i as i64, line).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    // Unflushed data is only on the ingester (queriers do not fan out to ingesters yet).
    assert_eq!(query_lines(&querier, t0).await.1, Vec::<String>::new());
    let flush = status_of(&ingester, reqwest::Method::POST, "/api/v1/admin/flush").await;
    assert_eq!(flush, 200);
    // The querier reloads the catalog every refresh_interval (50 ms here).
    wait_until("the querier sees the flushed segment", || async {
        query_lines(&querier, t0).await.1.len() == 2
    })
    .await;
    assert_eq!(
        query_lines(&querier, t0).await.1,
        vec!["first".to_string(), "second".to_string()]
    );
    let segments = querier.storage().segments();
    assert!(segments.iter().any(|s| s.table == storage::Table::Logs));
    ingester.stop().await;
    querier.stop().await;
}

#[test]
fn the_cli_takes_a_role_and_rejects_unknown_ones() {
    let help = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--role"), "{help}");
    assert!(help.contains("all|ingest|query|compact"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--role", "querier", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("querier") && stderr.contains("compact"),
        "{stderr}"
    );
}
