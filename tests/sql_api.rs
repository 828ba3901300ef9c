//! `POST /api/v1/sql`: a real server fed through Zipkin, OTLP/HTTP JSON logs, Loki push
//! and remote_write, queried before and after a flush (hot, then cold data): projections,
//! filters, aggregations, the cross-signal join, `match()`, Arrow IPC, limits, errors.

mod common;
#[path = "clients/prom_wire.rs"]
mod prom_wire;

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use proto::prometheus::v1;
use proto::{ByteSize, HumanDuration};
use serde_json::{Value, json};

use common::TestServer;
use prom_wire::{V1_TYPE, post, snappy, v1_series};

const SLOW_TRACE: &str = "5af7183fb1d4cf5f0000000000000001";
const FAST_TRACE: &str = "5af7183fb1d4cf5f0000000000000002";
const GATEWAY_SPAN: &str = "00000000000000a1";
const PAYMENTS_SPAN: &str = "00000000000000a2";
const FAST_SPAN: &str = "00000000000000b1";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// Sends one SQL query; returns the status and the JSON body.
async fn sql(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/sql"))
        .json(&body)
        .send()
        .await
        .expect("post sql");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

/// Runs a query that must succeed; returns its rows.
async fn rows(url: &str, query: &str) -> Vec<Value> {
    let (status, body) = sql(url, json!({ "sql": query })).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["truncated"], json!(false), "{query}");
    body["rows"].as_array().expect("rows").clone()
}

async fn ingest(url: &str, now: i64) {
    let client = reqwest::Client::new();
    let us = |ns: i64| ns / 1_000;
    // Traces through Zipkin v2: a slow checkout (gateway 3 s, payments 2.5 s, error) and a fast one.
    let slow_start = now - 60_000_000_000;
    let fast_start = now - 30_000_000_000;
    let spans = json!([
        {"traceId": SLOW_TRACE, "id": GATEWAY_SPAN, "kind": "SERVER", "name": "post /checkout",
         "timestamp": us(slow_start), "duration": 3_000_000,
         "localEndpoint": {"serviceName": "gateway"}, "tags": {"http.method": "POST"}},
        {"traceId": SLOW_TRACE, "id": PAYMENTS_SPAN, "parentId": GATEWAY_SPAN, "kind": "SERVER",
         "name": "charge", "timestamp": us(slow_start) + 200_000, "duration": 2_500_000,
         "localEndpoint": {"serviceName": "payments"}, "tags": {"error": "card gateway timeout"}},
        {"traceId": FAST_TRACE, "id": FAST_SPAN, "kind": "SERVER", "name": "get /cart",
         "timestamp": us(fast_start), "duration": 100_000,
         "localEndpoint": {"serviceName": "gateway"}},
    ]);
    let response = client
        .post(format!("{url}/api/v2/spans"))
        .json(&spans)
        .send()
        .await
        .expect("zipkin");
    assert_eq!(response.status().as_u16(), 202);

    // Logs through OTLP/HTTP JSON, linked to the spans.
    let record = |ts: i64, severity: &str, number: i32, body: &str, trace: &str, span: &str| {
        json!({"timeUnixNano": ts.to_string(), "severityText": severity, "severityNumber": number,
               "body": {"stringValue": body}, "traceId": trace, "spanId": span,
               "attributes": [{"key": "order.id", "value": {"stringValue": "o-42"}}]})
    };
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]},
        "scopeLogs": [{"logRecords": [
            record(slow_start + 2_600_000_000, "ERROR", 17, "payment declined: card gateway Timeout", SLOW_TRACE, PAYMENTS_SPAN),
            record(slow_start + 300_000_000, "INFO", 9, "charging card", SLOW_TRACE, PAYMENTS_SPAN),
            record(fast_start + 50_000_000, "ERROR", 17, "cart cache miss error", FAST_TRACE, FAST_SPAN),
        ]}]
    }]});
    let response = client
        .post(format!("{url}/v1/logs"))
        .json(&logs)
        .send()
        .await
        .expect("otlp logs");
    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.text().await
    );

    // A log line without trace through Loki push.
    let loki = json!({"streams": [{
        "stream": {"service_name": "legacy", "level": "error"},
        "values": [[(now - 10_000_000_000).to_string(), "connection refused by upstream db-7"]]
    }]});
    let response = client
        .post(format!("{url}/loki/api/v1/push"))
        .json(&loki)
        .send()
        .await
        .expect("loki");
    assert_eq!(response.status().as_u16(), 204);

    // Metrics through remote_write 1.0.
    let ms = now / 1_000_000;
    let request = v1::WriteRequest {
        timeseries: vec![
            v1_series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("service", "payments"),
                    ("path", "/charge"),
                ],
                &[(ms - 60_000, 10.0), (ms - 30_000, 15.0)],
            ),
            v1_series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("service", "gateway"),
                    ("path", "/checkout"),
                ],
                &[(ms - 60_000, 100.0), (ms - 30_000, 130.0)],
            ),
        ],
        ..v1::WriteRequest::default()
    };
    let response = post(
        url,
        V1_TYPE,
        Some("snappy"),
        snappy(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
}

/// The queries, checked on content; run on hot data and again after a flush.
async fn check_queries(url: &str, phase: &str) {
    // Projection and trace filter on spans; ids as lowercase hex, null parent on the root.
    let got = rows(
        url,
        &format!(
            "SELECT service, name, duration_ns, span_id, parent_span_id, status_code FROM spans \
             WHERE trace_id = '{SLOW_TRACE}' ORDER BY start"
        ),
    )
    .await;
    assert_eq!(
        got,
        vec![
            json!([
                "gateway",
                "post /checkout",
                3_000_000_000i64,
                GATEWAY_SPAN,
                null,
                0
            ]),
            json!([
                "payments",
                "charge",
                2_500_000_000i64,
                PAYMENTS_SPAN,
                GATEWAY_SPAN,
                2
            ]),
        ],
        "{phase}"
    );

    // Aggregation over a time window.
    let got = rows(
        url,
        "SELECT service, count(*) AS spans, max(duration_ns) AS slowest FROM spans \
         WHERE start > now() - INTERVAL '15 minutes' GROUP BY service ORDER BY service",
    )
    .await;
    assert_eq!(
        got,
        vec![
            json!(["gateway", 2, 3_000_000_000i64]),
            json!(["payments", 1, 2_500_000_000i64])
        ],
        "{phase}"
    );

    // The cross-signal join: error logs of the spans slower than 2 s in the last 15 minutes.
    let got = rows(
        url,
        "SELECT s.service, s.name, l.severity, l.body, l.trace_id \
         FROM spans s JOIN logs l ON l.trace_id = s.trace_id AND l.span_id = s.span_id \
         WHERE s.duration_ns > 2000000000 AND s.start > now() - INTERVAL '15 minutes' \
           AND l.ts > now() - INTERVAL '15 minutes' AND l.severity = 'ERROR'",
    )
    .await;
    assert_eq!(
        got,
        vec![json!([
            "payments",
            "charge",
            "ERROR",
            "payment declined: card gateway Timeout",
            SLOW_TRACE
        ])],
        "{phase}"
    );

    // match(): whole words, case-insensitive, prefixes; pushed into the log index.
    let got = rows(
        url,
        "SELECT service, body FROM logs WHERE match(body, 'refused') ORDER BY ts",
    )
    .await;
    assert_eq!(
        got,
        vec![json!(["legacy", "connection refused by upstream db-7"])],
        "{phase}"
    );
    let got = rows(
        url,
        "SELECT service, severity FROM logs WHERE match(body, 'TIMEOUT') AND service = 'payments'",
    )
    .await;
    assert_eq!(got, vec![json!(["payments", "ERROR"])], "{phase}");
    let got = rows(
        url,
        "SELECT count(*) FROM logs WHERE match(body, 'char*') OR match(body, 'cache')",
    )
    .await;
    assert_eq!(got, vec![json!([2])], "{phase}");
    // A word that is only part of a word does not match; LIKE does.
    assert_eq!(
        rows(url, "SELECT count(*) FROM logs WHERE match(body, 'refuse')").await,
        vec![json!([0])],
        "{phase}"
    );
    assert_eq!(
        rows(url, "SELECT count(*) FROM logs WHERE body LIKE '%refuse%'").await,
        vec![json!([1])],
        "{phase}"
    );

    // Log columns: attributes as a map, trace ids as hex, timestamps as RFC 3339.
    let got = rows(
        url,
        &format!(
            "SELECT attributes['order.id'], span_id, severity_number, ts > now() - INTERVAL '2 minutes' \
             FROM logs WHERE trace_id = '{SLOW_TRACE}' ORDER BY ts"
        ),
    )
    .await;
    assert_eq!(
        got,
        vec![
            json!(["o-42", PAYMENTS_SPAN, 9, true]),
            json!(["o-42", PAYMENTS_SPAN, 17, true])
        ],
        "{phase}"
    );

    // Metrics: name and label pushdown, convenience columns, aggregation.
    let got = rows(
        url,
        "SELECT service, job, labels['path'], value FROM metrics \
         WHERE metric = 'http_requests_total' AND service = 'payments' ORDER BY ts",
    )
    .await;
    assert_eq!(
        got,
        vec![
            json!(["payments", "api", "/charge", 10.0]),
            json!(["payments", "api", "/charge", 15.0])
        ],
        "{phase}"
    );
    let got = rows(
        url,
        "SELECT labels['path'] AS path, max(value) - min(value) AS increase FROM metrics \
         WHERE metric = 'http_requests_total' AND ts > now() - INTERVAL '5 minutes' \
         GROUP BY labels['path'] ORDER BY path",
    )
    .await;
    assert_eq!(
        got,
        vec![json!(["/charge", 5.0]), json!(["/checkout", 30.0])],
        "{phase}"
    );
}

#[tokio::test]
async fn sql_answers_across_signals_before_and_after_flush() {
    let server = TestServer::start().await;
    let url = server.url();
    ingest(&url, now_ns()).await;
    check_queries(&url, "hot").await;

    let flushed = reqwest::Client::new()
        .post(format!("{url}/api/v1/admin/flush"))
        .send()
        .await
        .expect("flush");
    assert_eq!(flushed.status().as_u16(), 200);
    assert!(
        server
            .storage()
            .segments()
            .iter()
            .any(|s| s.table == storage::Table::Logs),
        "logs were flushed to a segment"
    );
    check_queries(&url, "cold").await;

    // Column contract of the three tables.
    for (table, expected) in [
        (
            "logs",
            "ts observed_ts service instance severity severity_number body trace_id span_id attributes resource",
        ),
        (
            "spans",
            "trace_id span_id parent_span_id service instance name kind start duration_ns \
             status_code status_message peer_service attributes resource events links",
        ),
        ("metrics", "metric labels ts value service instance job"),
    ] {
        let (status, body) = sql(
            &url,
            json!({"sql": format!("SELECT * FROM {table} LIMIT 1")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let names: Vec<&str> = body["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names.join(" "),
            expected.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let (_, body) = sql(
        &url,
        json!({"sql": "SELECT ts, trace_id FROM logs LIMIT 1"}),
    )
    .await;
    assert_eq!(
        body["columns"][0]["type"],
        json!("Timestamp(ns, \"UTC\")"),
        "{body}"
    );
    assert_eq!(body["columns"][1]["type"], json!("Utf8"));

    // EXPLAIN shows the filters handed to the scan.
    let (status, body) = sql(
        &url,
        json!({"sql": "EXPLAIN SELECT body FROM logs WHERE match(body, 'refused') AND service = 'legacy'"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plan = body["rows"][0][1].as_str().expect("logical plan");
    let pushed = plan
        .split("full_filters=")
        .nth(1)
        .expect("filters pushed to the scan");
    assert!(
        pushed.contains("match(logs.body, Utf8(\"refused\"))"),
        "{plan}"
    );
    assert!(pushed.contains("logs.service = Utf8(\"legacy\")"), "{plan}");
    server.stop().await;
}

#[tokio::test]
async fn arrow_ipc_limits_and_errors() {
    let server = TestServer::start().await;
    let url = server.url();
    ingest(&url, now_ns()).await;
    let client = reqwest::Client::new();

    // Arrow IPC stream.
    let response = client
        .post(format!("{url}/api/v1/sql"))
        .header("Accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": "SELECT service, duration_ns, start FROM spans ORDER BY duration_ns DESC"}))
        .send()
        .await
        .expect("arrow");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = response.bytes().await.expect("body");
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
    let schema = reader.schema();
    assert_eq!(schema.field(0).name(), "service");
    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    let batch = arrow::compute::concat_batches(&schema, &batches).expect("concat");
    assert_eq!(batch.num_rows(), 3);
    let durations = batch
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("i64");
    assert_eq!(
        durations.values().to_vec(),
        vec![3_000_000_000, 2_500_000_000, 100_000_000]
    );

    // The row limit: the request lowers it and the answer says it was cut.
    let (status, body) = sql(&url, json!({"sql": "SELECT * FROM spans", "limit": 2})).await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"].as_array().expect("rows").len(), 2);
    assert_eq!(body["truncated"], json!(true));
    let (_, body) = sql(&url, json!({"sql": "SELECT * FROM spans", "limit": 3})).await;
    assert_eq!(body["truncated"], json!(false));

    // Bad SQL: 400 with the parser's message; plan errors: 400 naming the problem.
    let (status, body) = sql(&url, json!({"sql": "SELEC service FROM spans"})).await;
    assert_eq!(status, 400);
    let message = body["error"].as_str().expect("error");
    assert!(message.contains("SELEC"), "{message}");
    let (status, body) = sql(&url, json!({"sql": "SELECT nope FROM spans"})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().expect("error").contains("nope"),
        "{body}"
    );
    let (status, body) = sql(&url, json!({"sql": "SELECT * FROM traces"})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().expect("error").contains("traces"),
        "{body}"
    );
    let (status, body) = sql(
        &url,
        json!({"sql": "SELECT * FROM logs WHERE match(body, '--')"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Only SELECT, WITH and EXPLAIN.
    for statement in [
        "CREATE TABLE t (a INT)",
        "DROP TABLE logs",
        "INSERT INTO logs (body) VALUES ('x')",
        "DELETE FROM spans",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
    ] {
        let (status, body) = sql(&url, json!({ "sql": statement })).await;
        assert_eq!(status, 400, "{statement}: {body}");
    }
    let (status, body) = sql(&url, json!({"sql": "CREATE TABLE t (a INT)"})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("only SELECT"),
        "{body}"
    );
    let got = rows(
        &url,
        "WITH slow AS (SELECT trace_id FROM spans WHERE duration_ns > 2000000000) \
         SELECT count(DISTINCT trace_id) FROM slow",
    )
    .await;
    assert_eq!(got, vec![json!([1])]);
    let (status, _) = sql(&url, json!({"query": "SELECT 1"})).await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn timeout_and_memory_limit_are_enforced() {
    let server = TestServer::start_with(|config| {
        config.query.timeout = HumanDuration::millis(200);
    })
    .await;
    let url = server.url();
    // Far more work than 200 ms allows.
    let (status, body) = sql(
        &url,
        json!({"sql": "SELECT count(*) FROM generate_series(1, 20000000000) a WHERE a.value % 7 = 3"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("timed out"),
        "{body}"
    );
    server.stop().await;

    let server = TestServer::start_with(|config| {
        config.query.memory_limit = ByteSize::mib(1);
    })
    .await;
    let url = server.url();
    // A distinct count that needs more than 1 MiB fails with the memory bound, not the process.
    let (status, body) = sql(
        &url,
        json!({"sql": "SELECT count(DISTINCT value) FROM generate_series(1, 1000000)"}),
    )
    .await;
    assert_eq!(status, 413, "{body}");

    // A span scan that would hold more than the pool reserves it first and refuses;
    // the same table by trace id reads only that trace.
    let start_us = now_ns() / 1_000 - 60_000_000;
    let spans: Vec<Value> = (0..4000)
        .map(|i| {
            json!({"traceId": format!("{:032x}", i + 1), "id": format!("{:016x}", i + 1),
                   "name": "op", "timestamp": start_us + i, "duration": 10,
                   "localEndpoint": {"serviceName": "bulk"}})
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v2/spans"))
        .json(&spans)
        .send()
        .await
        .expect("zipkin");
    assert_eq!(response.status().as_u16(), 202);
    let flushed = reqwest::Client::new()
        .post(format!("{url}/api/v1/admin/flush"))
        .send()
        .await
        .expect("flush");
    assert_eq!(flushed.status().as_u16(), 200);
    let (status, body) = sql(&url, json!({"sql": "SELECT count(*) FROM spans"})).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("narrow the time range"),
        "{body}"
    );
    let got = rows(
        &url,
        &format!("SELECT name FROM spans WHERE trace_id = '{:032x}'", 7),
    )
    .await;
    assert_eq!(got, vec![json!(["op"])]);
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .to_lowercase()
            .contains("resources exhausted"),
        "{body}"
    );
    server.stop().await;
}
