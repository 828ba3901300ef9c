//! Segments in an S3 bucket (SeaweedFS's S3 gateway, started by each test on free
//! loopback ports): metrics, logs and spans written over OTLP/HTTP are flushed into the
//! bucket and read back through PromQL, the log search and the Zipkin trace API; a new
//! server with an empty data directory (no WAL, empty cache) answers the same from the
//! bucket alone; a server killed with SIGKILL before a flush replays its WAL and uploads
//! on restart; bad credentials stop the server at start with a message that says so;
//! a segment above `storage.s3.multipart_threshold` goes up as a multipart upload and
//! reads back whole.

mod common;
mod s3_support;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use s3_support::{ACCESS_KEY, SECRET_KEY, Seaweed};
use serde_json::{Value, json};

const BUCKET: &str = "sightline-test";
const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const ROOT_SPAN: &str = "eee19b7ec3c1b174";
const CHILD_SPAN: &str = "eee19b7ec3c1b175";
const POINTS: i64 = 20;
const STEP_S: i64 = 15;
const DEADLINE: Duration = Duration::from_secs(30);

/// Ten minutes ago, on a whole second (the PromQL range is given in seconds).
fn ten_minutes_ago_ns() -> i64 {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    (now_s - 600) * 1_000_000_000
}

/// Writes a gauge of 20 points, three log lines and a two-span trace, all after `t0_ns`.
async fn write_signals(base: &str, t0_ns: i64) {
    let http = reqwest::Client::new();
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let points: Vec<Value> = (0..POINTS)
        .map(|i| {
            json!({"timeUnixNano": (t0_ns + i * STEP_S * 1_000_000_000).to_string(),
                   "asDouble": i as f64 * 1.5,
                   "attributes": [attribute("queue", "orders")]})
        })
        .collect();
    let metrics = json!({"resourceMetrics": [{
        "resource": {"attributes": [attribute("service.name", "checkout")]},
        "scopeMetrics": [{"metrics": [{"name": "s3_queue_depth", "gauge": {"dataPoints": points}}]}]
    }]});
    let record = |offset_s: i64, severity: &str, body: &str| {
        json!({"timeUnixNano": (t0_ns + offset_s * 1_000_000_000).to_string(),
               "severityText": severity, "body": {"stringValue": body},
               "traceId": TRACE_ID, "spanId": CHILD_SPAN})
    };
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [attribute("service.name", "payments")]},
        "scopeLogs": [{"logRecords": [
            record(5, "ERROR", "payment declined: card gateway timeout"),
            record(6, "INFO", "charging card for order o-42"),
            record(7, "WARN", "retrying after upstream timeout"),
        ]}]
    }]});
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
    for (path, body) in [
        ("/v1/metrics", metrics),
        ("/v1/logs", logs),
        ("/v1/traces", traces),
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .expect("otlp write");
        let status = response.status();
        assert!(
            status.is_success(),
            "{path}: {status} {:?}",
            response.text().await
        );
    }
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

/// Queries the three signals back and checks every value.
async fn check_signals(base: &str, t0_ns: i64, phase: &str) {
    let t0_s = t0_ns / 1_000_000_000;
    let range = get_json(
        &format!("{base}/api/v1/query_range"),
        &[
            ("query", "s3_queue_depth{queue=\"orders\"}".to_string()),
            ("start", t0_s.to_string()),
            ("end", (t0_s + (POINTS - 1) * STEP_S).to_string()),
            ("step", format!("{STEP_S}s")),
        ],
    )
    .await;
    let result = range["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "{phase}: {range}");
    let values: Vec<f64> = result[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|pair| pair[1].as_str().expect("value").parse().expect("number"))
        .collect();
    let expected: Vec<f64> = (0..POINTS).map(|i| i as f64 * 1.5).collect();
    assert_eq!(values, expected, "{phase}: promql range");

    let search = get_json(
        &format!("{base}/api/v1/logs/search"),
        &[
            ("q", "timeout".to_string()),
            ("start", t0_ns.to_string()),
            ("end", (t0_ns + 60_000_000_000).to_string()),
        ],
    )
    .await;
    let bodies: BTreeSet<String> = search["data"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|line| line["body"].as_str().expect("body").to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "payment declined: card gateway timeout",
        "retrying after upstream timeout",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(bodies, expected, "{phase}: log search");

    let trace = get_json(&format!("{base}/api/v2/trace/{TRACE_ID}"), &[]).await;
    let mut spans: Vec<(String, String)> = trace
        .as_array()
        .expect("spans")
        .iter()
        .map(|span| {
            (
                span["id"].as_str().expect("id").to_string(),
                span["name"].as_str().expect("name").to_lowercase(),
            )
        })
        .collect();
    spans.sort();
    assert_eq!(
        spans,
        vec![
            (ROOT_SPAN.to_string(), "checkout".to_string()),
            (CHILD_SPAN.to_string(), "charge".to_string()),
        ],
        "{phase}: trace by id"
    );
}

fn s3_storage_config(
    config: &mut storage::Config,
    seaweed: &Seaweed,
    prefix: &str,
    credentials: &Path,
) {
    config.url = Some(format!("s3://{BUCKET}/{prefix}"));
    config.s3.endpoint = Some(seaweed.endpoint());
    config.s3.allow_http = true;
    config.s3.credentials_file = Some(credentials.to_path_buf());
    config.s3.request_timeout = proto::HumanDuration::secs(10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_go_to_the_bucket_and_come_back_after_a_restart_with_an_empty_cache() {
    let seaweed = Seaweed::start(&[BUCKET]).await;
    let secrets = tempfile::tempdir().unwrap();
    let credentials = seaweed.credentials_file(secrets.path(), SECRET_KEY);
    let prefix = "roundtrip/eu";
    let t0_ns = ten_minutes_ago_ns();

    let server = TestServer::start_with(|config| {
        s3_storage_config(&mut config.storage, &seaweed, prefix, &credentials)
    })
    .await;
    write_signals(&server.url(), t0_ns).await;
    check_signals(&server.url(), t0_ns, "before the flush").await;
    let report = server.storage().flush().await.expect("flush");
    assert!(report.segments >= 4, "{report:?}");

    // Everything the manifest names is in the bucket under the prefix, and nothing is on
    // local disk but the WAL and the cache.
    let keys = seaweed.keys(BUCKET, prefix).await;
    assert!(
        keys.contains(&format!("{prefix}/manifest.json")),
        "{keys:?}"
    );
    for segment in server.storage().segments() {
        assert!(
            keys.contains(&format!("{prefix}/{}", segment.path)),
            "{keys:?}"
        );
        if let Some(index) = &segment.index_path {
            assert!(keys.contains(&format!("{prefix}/{index}")), "{keys:?}");
        }
    }
    assert!(
        keys.iter().any(|k| k.ends_with(".idx")),
        "log index: {keys:?}"
    );
    assert!(!server.dir.path().join("segments").exists());

    check_signals(&server.url(), t0_ns, "after the flush").await;
    let first = server.storage().read_cache_stats().expect("a cache");
    assert!(first.misses > 0, "{first:?}");
    // The cache fills in the background; the same queries then hit it.
    let storage = server.storage();
    common::wait_until("the read cache to fill", || {
        let storage = storage.clone();
        async move { storage.read_cache_stats().is_some_and(|s| s.entries > 0) }
    })
    .await;
    check_signals(&server.url(), t0_ns, "warm cache").await;
    let warm = server.storage().read_cache_stats().expect("a cache");
    assert!(warm.hits > first.hits, "{first:?} then {warm:?}");
    drop(storage);
    server.stop().await;

    // A new node: empty data directory (no WAL, no cache), same bucket and prefix.
    let restarted = TestServer::start_with(|config| {
        s3_storage_config(&mut config.storage, &seaweed, prefix, &credentials)
    })
    .await;
    // Opening read only the series and metadata segments (the catalog) from the bucket.
    let cold = restarted.storage().read_cache_stats().expect("a cache");
    assert_eq!(cold.hits, 0, "{cold:?}");
    assert!(!restarted.storage().segments().is_empty());
    check_signals(&restarted.url(), t0_ns, "new node, cold cache").await;
    let after = restarted.storage().read_cache_stats().expect("a cache");
    assert!(after.misses > cold.misses, "{cold:?} then {after:?}");
    restarted.stop().await;
}

/// Ports that were free a moment ago; all bound at once so they differ from each other.
fn free_ports<const N: usize>() -> [SocketAddr; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|index| listeners[index].local_addr().unwrap())
}

/// The real `sightline` binary with its segments in the bucket; killed on drop.
struct Process {
    child: Child,
    http: SocketAddr,
    log: std::path::PathBuf,
}

impl Process {
    fn spawn(data_dir: &Path, config: &Path, env: &[(&str, &str)]) -> Process {
        let [http, grpc] = free_ports::<2>();
        let log = data_dir.with_extension(format!("{}.log", http.port()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_sightline"));
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(http.to_string())
            .arg("--grpc-listen")
            .arg(grpc.to_string())
            .args(["--otlp-http-listen", "off", "--jaeger-listen", "off"])
            .env("RUST_LOG", "info")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        Process {
            child: command.spawn().expect("start sightline"),
            http,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let url = format!("{}/ready", self.url());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "sightline exited ({status}) before ready; log:\n{}",
                    self.log()
                );
            }
            let ready = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "not ready in time; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit by itself and returns its status.
    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "still running; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(
    dir: &Path,
    seaweed: &Seaweed,
    prefix: &str,
    credentials: Option<&Path>,
) -> std::path::PathBuf {
    let path = dir.join(format!("sightline-{}.toml", prefix.replace('/', "-")));
    let credentials = credentials
        .map(|c| format!("credentials_file = {:?}\n", c.display().to_string()))
        .unwrap_or_default();
    let text = format!(
        "[storage]\nurl = \"s3://{BUCKET}/{prefix}\"\nflush_interval = \"1h\"\n\n[storage.s3]\nendpoint = \"{}\"\nallow_http = true\nrequest_timeout = \"10s\"\n{credentials}",
        seaweed.endpoint()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_before_its_flush_replays_the_wal_and_uploads_on_restart() {
    let seaweed = Seaweed::start(&[BUCKET]).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = "crash";
    // Credentials from the environment this time.
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let config = write_config(dir.path(), &seaweed, prefix, None);
    let data_dir = dir.path().join("node");
    let t0_ns = ten_minutes_ago_ns();

    let mut first = Process::spawn(&data_dir, &config, &env);
    first.wait_ready().await;
    write_signals(&first.url(), t0_ns).await;
    first.kill_9();
    let keys = seaweed.keys(BUCKET, prefix).await;
    assert!(
        !keys.iter().any(|k| k.ends_with(".parquet")),
        "nothing was flushed before the kill: {keys:?}"
    );

    let mut second = Process::spawn(&data_dir, &config, &env);
    second.wait_ready().await;
    check_signals(&second.url(), t0_ns, "replayed from the wal").await;
    let flushed: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/flush", second.url()))
        .send()
        .await
        .expect("flush")
        .json()
        .await
        .expect("flush body");
    assert!(
        flushed["data"]["segments"].as_u64().unwrap_or(0) >= 4,
        "{flushed}"
    );
    let keys = seaweed.keys(BUCKET, prefix).await;
    assert!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count() >= 4,
        "{keys:?}"
    );
    second.kill_9();
    // The WAL was trimmed after the upload: only the newest (empty) file is left.
    let wal_bytes: u64 = std::fs::read_dir(data_dir.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(wal_bytes < 1024, "the wal still holds {wal_bytes} bytes");

    // A node with nothing local answers from the bucket alone.
    let mut third = Process::spawn(&dir.path().join("fresh"), &config, &env);
    third.wait_ready().await;
    check_signals(&third.url(), t0_ns, "fresh node after the crash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_stop_the_server_at_start_with_a_clear_error() {
    let seaweed = Seaweed::start(&[BUCKET]).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = seaweed.credentials_file(dir.path(), "not-the-secret");
    let config = write_config(dir.path(), &seaweed, "denied", Some(&wrong));
    let mut process = Process::spawn(&dir.path().join("node"), &config, &[]);
    let status = process.wait_exit().await;
    assert!(!status.success());
    let log = process.log();
    assert!(
        log.contains("refused the credentials") && log.contains(ACCESS_KEY),
        "{log}"
    );
    assert!(
        log.contains("s3-credentials"),
        "names the credentials file: {log}"
    );

    // No credentials at all: the error says where they may come from.
    let config = write_config(dir.path(), &seaweed, "none", None);
    let mut process = Process::spawn(&dir.path().join("node2"), &config, &[]);
    assert!(!process.wait_exit().await.success());
    let log = process.log();
    assert!(log.contains("AWS_ACCESS_KEY_ID"), "{log}");

    // A bucket that does not exist.
    let good = seaweed.credentials_file(dir.path(), SECRET_KEY);
    let config = write_config(dir.path(), &seaweed, "nobucket", Some(&good))
        .display()
        .to_string();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(BUCKET, "no-such-bucket");
    std::fs::write(&config, text).unwrap();
    let mut process = Process::spawn(&dir.path().join("node3"), Path::new(&config), &[]);
    assert!(!process.wait_exit().await.success());
    let log = process.log();
    assert!(log.contains("bucket does not exist"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_above_the_multipart_threshold_is_uploaded_in_parts_and_reads_back() {
    use arrow::array::{Array, StringArray};
    use object_store::ObjectStoreExt;
    use object_store::path::Path as ObjectPath;
    use rand::SeedableRng;
    use rand::distr::{Alphanumeric, SampleString};
    use storage::model::{LogRecord, logs_batch};

    let seaweed = Seaweed::start(&[BUCKET]).await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = seaweed.credentials_file(dir.path(), SECRET_KEY);
    let prefix = "multipart";
    let mut config = storage::Config::default();
    s3_storage_config(&mut config, &seaweed, prefix, &credentials);
    // Parts of the smallest size S3 accepts, above a 1 MiB threshold.
    config.s3.multipart_threshold = proto::ByteSize::mib(1);
    config.s3.multipart_part_size = proto::ByteSize::mib(5);
    let storage = storage::Storage::open(config, &dir.path().join("node"))
        .await
        .expect("open");

    // About 8 MiB of incompressible log bodies: a logs segment of more than one part.
    let tenant = proto::TenantId::new("default").unwrap();
    let t0_ns = ten_minutes_ago_ns();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(8);
    let records: Vec<LogRecord> = (0..2048)
        .map(|i| LogRecord {
            timestamp_ns: t0_ns + i,
            observed_ns: t0_ns + i,
            service: "bulk".to_string(),
            body: Alphanumeric.sample_string(&mut rng, 4096),
            ..LogRecord::default()
        })
        .collect();
    for chunk in records.chunks(256) {
        storage
            .append_logs(&tenant, logs_batch(chunk).unwrap())
            .await
            .unwrap();
    }
    storage.flush().await.expect("flush");
    let segment = storage
        .segments()
        .into_iter()
        .find(|s| s.table == storage::Table::Logs)
        .expect("a logs segment");
    assert!(
        segment.parquet_bytes > 5 * 1024 * 1024,
        "the segment is larger than one part: {segment:?}"
    );

    // A multipart object's ETag is `<md5 of the parts' md5s>-<parts>`.
    let client = seaweed.client(BUCKET);
    let key = ObjectPath::from(format!("{prefix}/{}", segment.path));
    let meta = client.head(&key).await.expect("head");
    assert_eq!(meta.size, segment.parquet_bytes);
    let parts = meta
        .e_tag
        .as_deref()
        .and_then(|tag| tag.trim_matches('"').rsplit_once('-'))
        .map(|(_, parts)| parts.to_string());
    let expected_parts = segment.parquet_bytes.div_ceil(5 * 1024 * 1024).to_string();
    assert_eq!(parts.as_deref(), Some(expected_parts.as_str()), "{meta:?}");
    // An object under the threshold is a plain PUT.
    let manifest = client
        .head(&ObjectPath::from(format!("{prefix}/manifest.json")))
        .await
        .expect("manifest");
    assert!(
        !manifest.e_tag.unwrap_or_default().contains('-'),
        "the manifest is one PUT"
    );

    // Every body reads back, from a node that has only the bucket.
    storage.close().await.unwrap();
    drop(storage);
    let mut config = storage::Config::default();
    s3_storage_config(&mut config, &seaweed, prefix, &credentials);
    let fresh = storage::Storage::open(config, &dir.path().join("fresh"))
        .await
        .expect("open fresh");
    let scan = storage::LogScan {
        start_ns: t0_ns - 1,
        end_ns: t0_ns + 10_000,
        ..storage::LogScan::default()
    };
    let mut bodies: Vec<String> = Vec::new();
    for batch in fresh.scan_logs(&tenant, &scan).await.unwrap() {
        let column = batch.column_by_name("body").expect("body column");
        let column = column.as_any().downcast_ref::<StringArray>().expect("utf8");
        bodies.extend((0..column.len()).map(|row| column.value(row).to_string()));
    }
    let mut expected: Vec<String> = records.into_iter().map(|r| r.body).collect();
    bodies.sort();
    expected.sort();
    assert_eq!(bodies.len(), expected.len());
    assert!(bodies == expected, "the bodies read back differ");
    fresh.close().await.unwrap();
}
