//! Per-tenant bearer tokens: with tokens configured, a write needs a token, lands in
//! the token's tenant, and cannot name another tenant.

mod common;

use proto::TenantId;
use storage::LogScan;

const TOKEN_A: &str = "team-a-secret-token-0001";
const TOKEN_B: &str = "team-b-secret-token-0002";

fn push_body(line: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    serde_json::json!({ "streams": [{ "stream": { "service_name": "sms" }, "values": [[now.to_string(), line]] }] })
}

async fn rows(server: &common::TestServer, tenant: &str) -> usize {
    let scan = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..Default::default()
    };
    let batches = server
        .storage()
        .scan_logs(&TenantId::new(tenant).unwrap(), &scan)
        .await
        .unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_bind_writes_to_their_tenant() {
    let server = common::TestServer::start_with(|config| {
        config.ingest.tenant_tokens = vec![
            ingest::TenantToken {
                tenant: "team-a".into(),
                token: TOKEN_A.into(),
            },
            ingest::TenantToken {
                tenant: "team-b".into(),
                token: TOKEN_B.into(),
            },
        ];
    })
    .await;
    let client = reqwest::Client::new();
    let push = |token: Option<&str>, tenant: Option<&str>, line: &str| {
        let mut request = client
            .post(format!("{}/loki/api/v1/push", server.url()))
            .json(&push_body(line));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        request.send()
    };
    assert_eq!(push(None, None, "anonymous").await.unwrap().status(), 401);
    assert_eq!(
        push(Some("not-a-known-token-at-all"), None, "forged")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        push(Some(TOKEN_A), Some("team-b"), "cross-tenant")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        push(Some(TOKEN_A), None, "from a").await.unwrap().status(),
        204
    );
    assert_eq!(
        push(Some(TOKEN_B), Some("team-b"), "from b")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(rows(&server, "team-a").await, 1);
    assert_eq!(rows(&server, "team-b").await, 1);
    assert_eq!(
        rows(&server, "default").await,
        0,
        "refused writes stored nothing"
    );
    // The same rule holds for the other protocols, e.g. OTLP/HTTP.
    let otlp = client
        .post(format!("{}/v1/logs", server.url()))
        .header("content-type", "application/json")
        .body("{\"resourceLogs\":[]}")
        .send()
        .await
        .unwrap();
    assert_eq!(otlp.status(), 401);
    server.stop().await;
}
