//! Querier fan-out to ingesters (issue 8): one ingester process and one querier
//! process (the `sightline` binary) share a PostgreSQL catalog and a segment
//! directory. Metrics, logs and spans written to the ingester are answered by the
//! querier's Prometheus, Loki and Tempo APIs before any flush (through the fan-out),
//! the same right after a flush (the querier's segment list may predate it: no row is
//! lost or doubled) and once the querier has loaded the new segments, and still after
//! the ingester is killed. Prints the measured visibility delay.

mod scale_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use scale_support::postgres::Postgres;

const TRACE_ID: &str = "6b8efff798038103d269b633813fc60c";
const ROOT_SPAN: &str = "aee19b7ec3c1b174";
const CHILD_SPAN: &str = "aee19b7ec3c1b175";
const POINTS: i64 = 12;
const STEP_S: i64 = 15;
const DEADLINE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `sightline serve` child process, killed on drop.
struct Node {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Node {
    fn start(role: &str, node_id: &str, postgres: &Postgres, shared: &Path) -> Node {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            r#"
[server]
role = "{role}"
listen = "127.0.0.1:{port}"
grpc_listen = "127.0.0.1:{grpc}"
otlp_http_listen = "off"
jaeger_listen = "off"
es_listen = "off"
data_dir = "{data}"

[storage]
url = "file://{shared}"
flush_interval = "1h"
compaction_interval = "1h"

[storage.catalog]
url = "{url}"
password_file = "{password}"
node_id = "{node_id}"
refresh_interval = "300ms"

[storage.fanout]
timeout = "2s"
series_interval = "100ms"
keep_flushed = "20s"
"#,
            grpc = free_port(),
            data = data.path().display(),
            shared = shared.display(),
            url = postgres.url(),
            password = postgres.password_file().display(),
        );
        let config_path = data.path().join("sightline.toml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sightline starts");
        Node {
            child,
            port,
            _data: data,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let ready = reqwest::get(format!("{}/ready", self.url()))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(started.elapsed() < DEADLINE, "{} not ready", self.url());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two minutes ago, on a whole second.
fn t0_ns() -> i64 {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now_s - 300) * 1_000_000_000
}

fn attribute(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

async fn post(base: &str, path: &str, body: &Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("write");
    let status = response.status();
    assert!(
        status.is_success(),
        "{path}: {status} {:?}",
        response.text().await
    );
}

fn gauge(name: &str, t0_ns: i64, values: &[(i64, f64)]) -> Value {
    let points: Vec<Value> = values
        .iter()
        .map(|(i, value)| {
            json!({"timeUnixNano": (t0_ns + i * STEP_S * 1_000_000_000).to_string(),
                   "asDouble": value, "attributes": [attribute("queue", "orders")]})
        })
        .collect();
    json!({"resourceMetrics": [{
        "resource": {"attributes": [attribute("service.name", "checkout")]},
        "scopeMetrics": [{"metrics": [{"name": name, "gauge": {"dataPoints": points}}]}]
    }]})
}

/// A gauge of `POINTS` points, three log lines and a two-span trace, after `t0_ns`.
async fn write_signals(base: &str, t0_ns: i64) {
    let values: Vec<(i64, f64)> = (0..POINTS).map(|i| (i, i as f64 * 1.5)).collect();
    post(
        base,
        "/v1/metrics",
        &gauge("fanout_queue_depth", t0_ns, &values),
    )
    .await;
    let record = |offset_s: i64, body: &str| {
        json!({"timeUnixNano": (t0_ns + offset_s * 1_000_000_000).to_string(),
               "severityText": "INFO", "body": {"stringValue": body},
               "traceId": TRACE_ID, "spanId": CHILD_SPAN})
    };
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [attribute("service.name", "payments")]},
        "scopeLogs": [{"logRecords": [
            record(5, "payment declined: gateway timeout"),
            record(6, "charging card for order o-42"),
            record(7, "retrying after upstream timeout"),
        ]}]
    }]});
    post(base, "/v1/logs", &logs).await;
    let span = |id: &str, parent: &str, name: &str, start_s: i64, millis: i64| {
        let start = t0_ns + start_s * 1_000_000_000;
        json!({"traceId": TRACE_ID, "spanId": id, "parentSpanId": parent, "name": name,
               "kind": 2, "startTimeUnixNano": start.to_string(),
               "endTimeUnixNano": (start + millis * 1_000_000).to_string()})
    };
    let traces = json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", "payments")]},
        "scopeSpans": [{"spans": [
            span(ROOT_SPAN, "", "checkout", 4, 900),
            span(CHILD_SPAN, ROOT_SPAN, "charge", 5, 600),
        ]}]
    }]});
    post(base, "/v1/traces", &traces).await;
}

async fn get_json(url: &str, params: &[(&str, String)]) -> Value {
    let response = reqwest::Client::new()
        .get(url)
        .query(params)
        .send()
        .await
        .expect("get");
    let status = response.status();
    let body: Value = response.json().await.expect("json body");
    assert!(status.is_success(), "{url} {params:?}: {status} {body}");
    body
}

/// The values of `query` at every step of the written range (one series expected).
async fn promql_values(base: &str, query: &str, t0_ns: i64) -> Vec<Vec<f64>> {
    let t0_s = t0_ns / 1_000_000_000;
    let range = get_json(
        &format!("{base}/api/v1/query_range"),
        &[
            ("query", query.to_string()),
            ("start", t0_s.to_string()),
            ("end", (t0_s + (POINTS - 1) * STEP_S).to_string()),
            ("step", format!("{STEP_S}s")),
        ],
    )
    .await;
    range["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|series| {
            series["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|pair| pair[1].as_str().unwrap().parse().unwrap())
                .collect()
        })
        .collect()
}

/// Every log line of the `payments` service, sorted (duplicates kept).
async fn loki_lines(base: &str, t0_ns: i64) -> Vec<String> {
    let body = get_json(
        &format!("{base}/loki/api/v1/query_range"),
        &[
            ("query", "{service_name=\"payments\"}".to_string()),
            ("start", t0_ns.to_string()),
            ("end", (t0_ns + 60_000_000_000).to_string()),
            ("limit", "100".to_string()),
        ],
    )
    .await;
    let mut lines: Vec<String> = body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .flat_map(|stream| stream["values"].as_array().unwrap().clone())
        .map(|value| value[1].as_str().unwrap().to_string())
        .collect();
    lines.sort();
    lines
}

/// `(span id, name)` of every span of the trace, sorted (duplicates kept).
async fn tempo_spans(base: &str) -> Vec<(String, String)> {
    let response = reqwest::get(format!("{base}/api/traces/{TRACE_ID}"))
        .await
        .expect("trace");
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let trace: Value = response.json().await.expect("trace json");
    let mut spans: Vec<(String, String)> = trace["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
        .map(|span| {
            (
                span["spanId"].as_str().unwrap_or("").to_string(),
                span["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    spans.sort();
    spans
}

/// Checks that the querier answers exactly what was written, once each.
async fn check_signals(base: &str, t0_ns: i64, phase: &str) {
    let expected: Vec<f64> = (0..POINTS).map(|i| i as f64 * 1.5).collect();
    assert_eq!(
        promql_values(base, "fanout_queue_depth{queue=\"orders\"}", t0_ns).await,
        vec![expected],
        "{phase}: promql"
    );
    assert_eq!(
        promql_values(
            base,
            "count_over_time(fanout_queue_depth[10m])",
            t0_ns + 180 * 1_000_000_000
        )
        .await
        .first()
        .and_then(|values| values.first().copied()),
        Some(POINTS as f64),
        "{phase}: every sample once"
    );
    assert_eq!(
        loki_lines(base, t0_ns).await,
        vec![
            "charging card for order o-42",
            "payment declined: gateway timeout",
            "retrying after upstream timeout",
        ],
        "{phase}: loki"
    );
    let mut want = vec![
        (ROOT_SPAN.to_string(), "checkout".to_string()),
        (CHILD_SPAN.to_string(), "charge".to_string()),
    ];
    want.sort();
    assert_eq!(tempo_spans(base).await, want, "{phase}: tempo");
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Polls until `query` has a sample at `t0_ns`; returns how long that took.
async fn time_until_visible(base: &str, query: &str, t0_ns: i64) -> Duration {
    let started = Instant::now();
    loop {
        if !promql_values(base, query, t0_ns).await.is_empty() {
            return started.elapsed();
        }
        assert!(started.elapsed() < DEADLINE, "{query} never became visible");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the measured visibility delay is printed
async fn a_querier_answers_unflushed_rows_through_the_ingester_and_nothing_twice() {
    let postgres = Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let mut ingester = Node::start("ingest", "fanout-ingester", &postgres, shared.path());
    let querier = Node::start("query", "fanout-querier", &postgres, shared.path());
    ingester.wait_ready().await;
    querier.wait_ready().await;
    let (ingest, query) = (ingester.url(), querier.url());

    // The querier finds the ingester through its heartbeat.
    let started = Instant::now();
    while metric(&query, "sightline_fanout_ingesters").await != 1.0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the querier never found the ingester"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Visibility delay of a brand-new series (series sync) and of a new sample of a
    // known series (one fan-out round trip).
    let t0 = t0_ns();
    post(
        &ingest,
        "/v1/metrics",
        &gauge("fanout_probe", t0, &[(0, 1.0)]),
    )
    .await;
    let new_series = time_until_visible(&query, "fanout_probe", t0).await;
    post(
        &ingest,
        "/v1/metrics",
        &gauge("fanout_probe", t0, &[(1, 2.0)]),
    )
    .await;
    let started = Instant::now();
    while promql_values(&query, "fanout_probe", t0).await[0].len() < 2 {
        assert!(started.elapsed() < DEADLINE, "second sample never visible");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let known_series = started.elapsed();
    eprintln!(
        "visibility delay (write acknowledged by the ingester -> answered by the querier): \
         new series {new_series:?}, new sample of a known series {known_series:?}"
    );

    // Before any flush: everything comes from the ingester's memtables.
    write_signals(&ingest, t0).await;
    let started = Instant::now();
    while promql_values(&query, "fanout_queue_depth", t0)
        .await
        .is_empty()
    {
        assert!(started.elapsed() < DEADLINE, "the new series never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check_signals(&query, t0, "unflushed").await;
    assert_eq!(metric(&query, "sightline_segments").await, 0.0);

    // Right after a flush (the querier may still list the old segments) and once the
    // querier has loaded the new ones: the same answers, nothing twice.
    let flush = reqwest::Client::new()
        .post(format!("{ingest}/api/v1/admin/flush"))
        .send()
        .await
        .unwrap();
    assert!(flush.status().is_success());
    check_signals(&query, t0, "just flushed").await;
    let started = Instant::now();
    while metric(&query, "sightline_segments").await < 3.0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the querier never loaded the segments"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check_signals(&query, t0, "flushed and loaded").await;

    // More unflushed rows on top of flushed ones are merged into the same series.
    post(
        &ingest,
        "/v1/metrics",
        &gauge("fanout_queue_depth", t0, &[(POINTS, 99.0)]),
    )
    .await;
    let t0_s = t0 / 1_000_000_000;
    let last = get_json(
        &format!("{query}/api/v1/query"),
        &[
            ("query", "fanout_queue_depth".to_string()),
            ("time", (t0_s + POINTS * STEP_S).to_string()),
        ],
    )
    .await;
    assert_eq!(last["data"]["result"][0]["value"][1], "99", "{last}");

    // The ingester dies: the querier keeps answering the flushed data.
    ingester.kill();
    check_signals(&query, t0, "ingester killed").await;
    let started = Instant::now();
    while metric(&query, "sightline_fanout_ingesters").await != 0.0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the dead ingester stayed listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let partial = metric(&query, "sightline_fanout_partial_total").await;
    check_signals(&query, t0, "ingester gone").await;
    assert_eq!(
        metric(&query, "sightline_fanout_partial_total").await,
        partial,
        "reads after the ingester left the list are complete"
    );
}
