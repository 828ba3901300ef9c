//! Helpers shared by the trace read tests (read_zipkin, read_tempo, read_jaeger).
#![allow(dead_code)]

use serde_json::Value;

use crate::common::TestServer;

pub const ZIPKIN_TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/zipkin");

/// Left-pads a hex id with zeros to `width` and lowercases it.
pub fn padded(id: &str, width: usize) -> String {
    format!("{:0>width$}", id.to_ascii_lowercase())
}

/// The Zipkin fixture files: the ten zipkin-lens traces and the two benchmark spans
/// (wrapped in a list), as (file name, request body, spans).
pub fn zipkin_fixtures() -> Vec<(String, Vec<u8>, Vec<Value>)> {
    let mut files: Vec<_> = std::fs::read_dir(format!("{ZIPKIN_TESTDATA}/zipkin-lens-testdata"))
        .expect("fixtures")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.push(format!("{ZIPKIN_TESTDATA}/benchmarks/zipkin2-client.json").into());
    files.push(format!("{ZIPKIN_TESTDATA}/benchmarks/zipkin2-chinese.json").into());
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("read fixture");
            match serde_json::from_str(&text).expect("json") {
                Value::Array(spans) => (name, text.into_bytes(), spans),
                single @ Value::Object(_) => (name, format!("[{text}]").into_bytes(), vec![single]),
                _ => panic!("{name}: not a span list"),
            }
        })
        .collect()
}

/// Posts Zipkin JSON spans for `tenant`.
pub async fn post_zipkin(server: &TestServer, tenant: &str, body: Vec<u8>) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/spans", server.url()))
        .header("content-type", "application/json")
        .header("x-scope-orgid", tenant)
        .body(body)
        .send()
        .await
        .expect("post spans");
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

/// GETs `url` for `tenant`, returning the status and the body.
pub async fn get(url: &str, tenant: &str, accept: &str) -> (u16, Vec<u8>, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("x-scope-orgid", tenant)
        .header("accept", accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        status,
        response.bytes().await.expect("body").to_vec(),
        content_type,
    )
}

/// GETs `url` for `tenant` and decodes a 200 JSON body.
pub async fn get_json(url: &str, tenant: &str) -> Value {
    let (status, body, _) = get(url, tenant, "application/json").await;
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Posts the Zipkin fixture `name` (a zipkin-lens file) for `tenant`, returning its spans.
pub async fn load_fixture(server: &TestServer, tenant: &str, name: &str) -> Vec<Value> {
    let (_, body, spans) = zipkin_fixtures()
        .into_iter()
        .find(|(file, _, _)| file == name)
        .expect("fixture");
    post_zipkin(server, tenant, body).await;
    spans
}
