//! The log data set of the log read tests, written through Loki push, Elasticsearch
//! `_bulk` and OTLP/HTTP JSON, and small HTTP helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::TestServer;

pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The lines of the data set, by protocol, with their offsets in seconds from `t0`.
pub const MYSQL: &str = "connection timeout to mysql host=db-1 duration=1.5s status=504";
pub const DECLINED: &str = "payment declined for user-42 status=402 duration=20ms";
pub const SERVED_BO: &str =
    r#"{"msg":"request served","status":200,"user":{"name":"bo"},"took":"12ms"}"#;
pub const SERVED_AL: &str =
    r#"{"msg":"request served","status":500,"user":{"name":"al"},"took":"250ms"}"#;
pub const RETRY: &str = "WARN retrying order 1234 after 100ms";
pub const INVOICE_TIMEOUT: &str = "invoice generation timeout for customer 77";
pub const INVOICE_OK: &str = "invoice generated for customer 78";
pub const CART_FAILED: &str = "cart checkout failed: timeout contacting payment";
pub const CART_UPDATED: &str = "cart updated items=3";

pub const ALL: [&str; 9] = [
    MYSQL,
    DECLINED,
    SERVED_BO,
    SERVED_AL,
    RETRY,
    INVOICE_TIMEOUT,
    INVOICE_OK,
    CART_FAILED,
    CART_UPDATED,
];

/// A start time 30 minutes ago on a whole minute, ns.
pub fn t0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    (now - now % 60 - 1800) * 1_000_000_000
}

pub fn at(t0: i64, seconds: i64) -> i64 {
    t0 + seconds * 1_000_000_000
}

/// Writes the nine lines: four and one through Loki, two through ES, two through OTLP.
pub async fn write_all(server: &TestServer, t0: i64) {
    let http = reqwest::Client::new();
    let ns = |s: i64| at(t0, s).to_string();
    let loki = json!({"streams": [
        {"stream": {"job": "api", "env": "prod", "level": "error"},
         "values": [[ns(1), MYSQL], [ns(2), DECLINED]]},
        {"stream": {"job": "api", "env": "prod", "level": "info"},
         "values": [[ns(3), SERVED_BO], [ns(4), SERVED_AL]]},
        {"stream": {"service_name": "checkout", "pod": "checkout-0"},
         "values": [[ns(5), RETRY, {"trace_id": TRACE, "user": "u1"}]]},
    ]});
    let response = http
        .post(format!("{}/loki/api/v1/push", server.url()))
        .json(&loki)
        .send()
        .await
        .expect("loki push");
    assert_eq!(response.status(), 204, "{:?}", response.text().await);

    // epoch_millis, as a string (ES's `strict_date_optional_time||epoch_millis`).
    let rfc = |s: i64| (at(t0, s) / 1_000_000).to_string();
    let mut bulk = String::new();
    for (seconds, line, level) in [(6, INVOICE_TIMEOUT, "error"), (7, INVOICE_OK, "info")] {
        bulk.push_str("{\"create\":{\"_index\":\"logs-billing\"}}\n");
        bulk.push_str(
            &json!({"@timestamp": rfc(seconds), "message": line,
                "service": {"name": "billing"}, "log": {"level": level},
                "customer": {"tier": "gold"}})
            .to_string(),
        );
        bulk.push('\n');
    }
    let response = http
        .post(format!("{}/es/_bulk", server.url()))
        .header("content-type", "application/x-ndjson")
        .body(bulk)
        .send()
        .await
        .expect("es bulk");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("bulk json");
    assert_eq!(body["errors"], false, "{body}");

    let record = |seconds: i64, line: &str, text: &str, number: i32| {
        json!({"timeUnixNano": ns(seconds), "severityText": text, "severityNumber": number,
            "body": {"stringValue": line}, "traceId": TRACE,
            "attributes": [{"key": "http.status_code", "value": {"intValue": "503"}}]})
    };
    let otlp = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "cart"}},
            {"key": "process.pid", "value": {"intValue": "42"}}]},
        "scopeLogs": [{"logRecords": [
            record(8, CART_FAILED, "ERROR", 17), record(9, CART_UPDATED, "INFO", 9)]}]}]});
    let response = http
        .post(format!("http://{}/v1/logs", server.otlp_http_addr()))
        .json(&otlp)
        .send()
        .await
        .expect("otlp");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

/// Flushes memtables to segments (the cold path).
pub async fn flush(server: &TestServer) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/flush", server.url()))
        .send()
        .await
        .expect("flush");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "success", "{body}");
}

/// GET `path` with `params`, returning status and JSON.
pub async fn get(server: &TestServer, path: &str, params: &[(&str, String)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .query(params)
        .send()
        .await
        .expect("get");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|s| s.to_string()).collect()
}
