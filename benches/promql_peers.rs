//! End-to-end PromQL latency against Prometheus 2.x holding the same data: loads one
//! generated data set (default 100 k series × 1 h at a 15 s interval) into Sightline and
//! Prometheus (`--web.enable-remote-write-receiver`) through remote_write, then times a
//! set of typical Grafana queries, instant and range, over HTTP against each server
//! (median and p90 of several runs, the whole response read), and prints the ratio
//! Sightline / Prometheus per query. Sightline is measured twice: with the data still in
//! memtables ("hot") and after `POST /api/v1/admin/flush` ("cold", Parquet segments).
//! Every answer is also compared with Prometheus' (series count and values, 1e-6 relative)
//! so that both are known to hold the same data.
//!
//! Run: `scripts/bench-promql-peers.sh` (installs Prometheus, builds Sightline, runs this),
//! or `cargo bench --bench promql_peers -- [--series N] [--runs N] [--minutes N]`.
//! Env: `SIGHTLINE_BIN` (default `target/release/sightline`), `PROMETHEUS_BIN` (default
//! `/usr/bin/prometheus`). Figures in BENCHMARKS.md.
#![allow(clippy::print_stdout)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use proto::prometheus::v1::{Label, Sample, TimeSeries, WriteRequest};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const INTERVAL_MS: i64 = 15_000;
/// Samples of one series per request (2 min of data), so a series' samples go in order.
const STEPS_PER_REQUEST: usize = 8;
/// Series per request.
const SERIES_PER_REQUEST: usize = 500;
const CONNECTIONS: usize = 4;
const SERVICES: usize = 20;
const ROUTES: [&str; 5] = [
    "/api/orders",
    "/api/cart",
    "/api/users",
    "/login",
    "/health",
];
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];
/// Series per instance: 5 routes × 10 buckets, 5 routes × 2 statuses, 2 gauges.
const PER_INSTANCE: usize = ROUTES.len() * BUCKETS.len() + ROUTES.len() * 2 + 2;

struct Options {
    series: usize,
    runs: usize,
    minutes: i64,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| -> Option<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    Options {
        series: get("--series")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000),
        runs: get("--runs").and_then(|v| v.parse().ok()).unwrap_or(7),
        minutes: get("--minutes").and_then(|v| v.parse().ok()).unwrap_or(60),
    }
}

// ---------------------------------------------------------------------------------------
// Data

/// One generated series: labels and how its value moves.
struct Gen {
    labels: Vec<Label>,
    kind: Kind,
    value: f64,
}

enum Kind {
    /// A counter growing by a random amount up to this per interval.
    Counter(f64),
    /// A cumulative histogram bucket: grows by its share of its route's requests.
    Bucket(f64),
    /// A gauge wandering around this level.
    Gauge(f64),
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// The series of the data set: per instance (20 services × N instances), the latency
/// histogram of 5 routes (10 buckets), the request counter of 5 routes × 2 statuses and
/// two gauges; `instances` is chosen so the total is about `series`.
fn generate(series: usize) -> Vec<Gen> {
    let instances = (series / PER_INSTANCE).max(1);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(instances * PER_INSTANCE);
    for i in 0..instances {
        let service = format!("svc-{}", i % SERVICES);
        let instance = format!("pod-{i}");
        let base = |name: &str| {
            vec![
                label("__name__", name),
                label("instance", &instance),
                label("job", "app"),
                label("service", &service),
            ]
        };
        for route in ROUTES {
            let traffic = rng.random_range(1.0..20.0);
            for (b, le) in BUCKETS.iter().enumerate() {
                let mut labels = base("http_request_duration_seconds_bucket");
                labels.push(label("le", le));
                labels.push(label("route", route));
                let share = (b as f64 + 1.0) / BUCKETS.len() as f64;
                out.push(Gen {
                    labels,
                    kind: Kind::Bucket(traffic * share),
                    value: 0.0,
                });
            }
            for status in ["200", "500"] {
                let mut labels = base("http_requests_total");
                labels.push(label("route", route));
                labels.push(label("status", status));
                let rate = if status == "200" {
                    traffic
                } else {
                    traffic / 50.0
                };
                out.push(Gen {
                    labels,
                    kind: Kind::Counter(rate),
                    value: 0.0,
                });
            }
        }
        out.push(Gen {
            labels: base("process_resident_memory_bytes"),
            kind: Kind::Gauge(rng.random_range(2e8..8e8_f64).round()),
            value: 0.0,
        });
        out.push(Gen {
            labels: base("up"),
            kind: Kind::Gauge(1.0),
            value: 1.0,
        });
    }
    for g in &mut out {
        g.labels.sort_by(|a, b| a.name.cmp(&b.name));
    }
    out
}

fn next_value(g: &mut Gen, rng: &mut SmallRng) -> f64 {
    g.value = match g.kind {
        Kind::Counter(max) => g.value + (rng.random_range(0.0..max) * 15.0).round(),
        Kind::Bucket(share) => g.value + (share * 15.0 * rng.random_range(0.5..1.5)).round(),
        Kind::Gauge(1.0) => 1.0,
        Kind::Gauge(level) => (level * rng.random_range(0.9..1.1)).round(),
    };
    g.value
}

/// Encodes the whole data set as remote_write bodies, `rounds[r]` covering steps
/// `r*STEPS_PER_REQUEST ..` for every series, in chunks of `SERIES_PER_REQUEST`.
fn encode(series: &mut [Gen], first_ms: i64, steps: usize) -> Vec<Vec<axum::body::Bytes>> {
    let mut rng = SmallRng::seed_from_u64(11);
    let mut rounds = Vec::new();
    let mut step = 0;
    while step < steps {
        let count = STEPS_PER_REQUEST.min(steps - step);
        let mut bodies = Vec::new();
        for chunk in series.chunks_mut(SERIES_PER_REQUEST) {
            let timeseries = chunk
                .iter_mut()
                .map(|g| TimeSeries {
                    labels: g.labels.clone(),
                    samples: (step..step + count)
                        .map(|k| Sample {
                            value: next_value(g, &mut rng),
                            timestamp: first_ms + k as i64 * INTERVAL_MS,
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            let request = WriteRequest {
                timeseries,
                ..Default::default()
            };
            let raw = request.encode_to_vec();
            let compressed = snap::raw::Encoder::new()
                .compress_vec(&raw)
                .expect("snappy");
            bodies.push(axum::body::Bytes::from(compressed));
        }
        rounds.push(bodies);
        step += count;
    }
    rounds
}

// ---------------------------------------------------------------------------------------
// Servers

/// A server under test; killed (and its data removed) on drop.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Resident set size, bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start(name: &'static str) -> std::io::Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("promql-peers-{name}-"))
        .tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut command = if name == "sightline" {
        let bin = std::env::var("SIGHTLINE_BIN")
            .unwrap_or_else(|_| "target/release/sightline".to_string());
        let mut c = Command::new(bin);
        c.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &listen, "--grpc-listen", "127.0.0.1:0"])
            .args(["--otlp-http-listen", "off", "--jaeger-listen", "off"]);
        c
    } else {
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
        )?;
        let bin =
            std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".to_string());
        let mut c = Command::new(bin);
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={listen}"))
            .args([
                "--web.enable-remote-write-receiver",
                "--query.max-samples=50000000",
                "--query.timeout=2m",
            ]);
        c
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(Server {
        name,
        child,
        port,
        data,
        _dir: dir,
    })
}

async fn wait_ready(server: &mut Server, client: &reqwest::Client) -> Result<(), String> {
    let path = if server.name == "sightline" {
        "/ready"
    } else {
        "/-/ready"
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{} exited: {status}", server.name));
        }
        if let Ok(response) = client.get(server.url(path)).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{} not ready after 90 s", server.name))
}

/// Posts one body, retrying 429/5xx (as Prometheus' remote_write client does).
async fn post(client: &reqwest::Client, url: &str, body: &axum::body::Bytes) -> Result<(), String> {
    for attempt in 0..60u64 {
        let result = client
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {}
            Ok(r) => {
                let status = r.status();
                return Err(format!(
                    "{url}: {status}: {}",
                    r.text().await.unwrap_or_default()
                ));
            }
            Err(e) if attempt >= 5 => return Err(format!("{url}: {e}")),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100 * attempt.min(20))).await;
    }
    Err(format!("{url}: still refused after 60 attempts"))
}

/// Sends every round to every target: the chunks of a round concurrently, rounds in order.
async fn load(client: &reqwest::Client, targets: &[String], rounds: &[Vec<axum::body::Bytes>]) {
    for bodies in rounds {
        let jobs: Vec<(String, axum::body::Bytes)> = targets
            .iter()
            .flat_map(|url| bodies.iter().map(move |b| (url.clone(), b.clone())))
            .collect();
        let mut pending = jobs.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < CONNECTIONS * targets.len() {
                let Some((url, body)) = pending.next() else {
                    break;
                };
                let client = client.clone();
                running.spawn(async move { post(&client, &url, &body).await });
            }
            match running.join_next().await {
                Some(result) => result.expect("sender task").expect("remote_write"),
                None => break,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Queries

/// The query set: typical Grafana panels over the data set.
const QUERIES: [(&str, &str); 9] = [
    (
        "rate_sum_by",
        "sum by (service) (rate(http_requests_total[5m]))",
    ),
    (
        "histogram_quantile",
        "histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "error_ratio",
        "sum by (service) (rate(http_requests_total{status=\"500\"}[5m])) / sum by (service) (rate(http_requests_total[5m]))",
    ),
    (
        "topk_instances",
        "topk(10, sum by (instance) (rate(http_requests_total[5m])))",
    ),
    (
        "sum_all_buckets",
        "sum(rate(http_request_duration_seconds_bucket[5m]))",
    ),
    (
        "one_service_rate",
        "rate(http_requests_total{service=\"svc-3\"}[5m])",
    ),
    (
        "high_cardinality_selector",
        "http_requests_total{status=\"500\"}",
    ),
    (
        "gauge_avg_by",
        "avg by (service) (process_resident_memory_bytes)",
    ),
    ("regex_count", "count(up{service=~\"svc-1.*\"} == 1)"),
];

/// Series in a response and their values, by label set (for the cross-check).
type Answer = std::collections::BTreeMap<String, Vec<f64>>;

fn answer(body: &serde_json::Value) -> Result<Answer, String> {
    if body["status"] != "success" {
        return Err(format!("query failed: {body}"));
    }
    let mut out = Answer::new();
    let Some(result) = body["data"]["result"].as_array() else {
        return Ok(out);
    };
    for series in result {
        let key = series["metric"].to_string();
        let values: Vec<f64> = match series.get("values") {
            Some(values) => values
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p[1].as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN))
                .collect(),
            None => vec![
                series["value"][1]
                    .as_str()
                    .unwrap_or("NaN")
                    .parse()
                    .unwrap_or(f64::NAN),
            ],
        };
        out.insert(key, values);
    }
    Ok(out)
}

/// Differences between two answers (empty when they agree within 1e-6 relative).
fn compare(ours: &Answer, theirs: &Answer) -> Vec<String> {
    let mut problems = Vec::new();
    if ours.len() != theirs.len() {
        problems.push(format!("{} series vs {}", ours.len(), theirs.len()));
    }
    for (key, values) in theirs {
        let Some(mine) = ours.get(key) else {
            problems.push(format!("missing {key}"));
            continue;
        };
        if mine.len() != values.len() {
            problems.push(format!("{key}: {} points vs {}", mine.len(), values.len()));
            continue;
        }
        for (i, (a, b)) in mine.iter().zip(values).enumerate() {
            let equal = (a.is_nan() && b.is_nan())
                || a == b
                || (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
            if !equal {
                problems.push(format!("{key}: point {i}: {a} vs {b}"));
                break;
            }
        }
        if problems.len() > 3 {
            break;
        }
    }
    problems
}

struct Timing {
    median_ms: f64,
    p90_ms: f64,
    answer: Answer,
    bytes: usize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs one query `runs` times (after one unmeasured warm-up run).
async fn time_query(
    client: &reqwest::Client,
    server: &Server,
    query: &str,
    range: Option<(i64, i64, i64)>,
    instant_ms: i64,
    runs: usize,
) -> Result<Timing, String> {
    let params: Vec<(&str, String)> = match range {
        Some((start, end, step)) => vec![
            ("query", query.to_string()),
            ("start", format!("{:.3}", start as f64 / 1000.0)),
            ("end", format!("{:.3}", end as f64 / 1000.0)),
            ("step", format!("{}", step / 1000)),
        ],
        None => vec![
            ("query", query.to_string()),
            ("time", format!("{:.3}", instant_ms as f64 / 1000.0)),
        ],
    };
    let path = if range.is_some() {
        "/api/v1/query_range"
    } else {
        "/api/v1/query"
    };
    let url = server.url(path);
    let mut times = Vec::with_capacity(runs);
    let mut last = (Answer::new(), 0);
    for run in 0..=runs {
        let started = Instant::now();
        let response = client
            .post(&url)
            .form(&params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if run == 0 {
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            last = (answer(&body)?, bytes.len());
        } else {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(Timing {
        median_ms: percentile(&times, 0.5),
        p90_ms: percentile(&times, 0.9),
        answer: last.0,
        bytes: last.1,
    })
}

// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Row {
    name: String,
    kind: &'static str,
    prometheus: Option<Timing>,
    hot: Option<Timing>,
    cold: Option<Timing>,
    check: String,
}

async fn run(options: Options) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(16)
        .build()
        .map_err(|e| e.to_string())?;
    let mut series = generate(options.series);
    let steps = (options.minutes * 60_000 / INTERVAL_MS) as usize;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // Sample times never sit on a multiple of the 60 s query step (2.x vs 3.x range ends).
    let first_ms = (now_ms - 120_000 - steps as i64 * INTERVAL_MS) / 60_000 * 60_000 + 7_321;
    let last_ms = first_ms + (steps as i64 - 1) * INTERVAL_MS;
    println!(
        "data: {} series × {} samples at {} s = {} samples; {} queries × {} runs",
        series.len(),
        steps,
        INTERVAL_MS / 1000,
        series.len() * steps,
        QUERIES.len() * 2,
        options.runs
    );
    let started = Instant::now();
    let rounds = encode(&mut series, first_ms, steps);
    drop(series);
    println!(
        "encoded {} requests in {:.1} s",
        rounds.iter().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );

    let mut prometheus = start("prometheus").map_err(|e| e.to_string())?;
    let mut sightline = start("sightline").map_err(|e| e.to_string())?;
    wait_ready(&mut prometheus, &client).await?;
    wait_ready(&mut sightline, &client).await?;
    let started = Instant::now();
    let targets = vec![
        prometheus.url("/api/v1/write"),
        sightline.url("/api/v1/write"),
    ];
    load(&client, &targets, &rounds).await;
    drop(rounds);
    println!(
        "loaded both in {:.1} s (concurrently); RSS Prometheus {} MiB, Sightline {} MiB",
        started.elapsed().as_secs_f64(),
        prometheus.rss() >> 20,
        sightline.rss() >> 20
    );

    // Instant queries at the last sample; range queries over the last 55 min at 60 s.
    let at = (last_ms / 60_000) * 60_000 + 30_000;
    let range = (at - 55 * 60_000, at, 60_000);
    let mut rows = Vec::new();
    for (name, query) in QUERIES {
        for kind in ["instant", "range"] {
            rows.push(Row {
                name: name.to_string(),
                kind,
                ..Row::default()
            });
            let _ = query;
        }
    }
    let query_of = |row: &Row| {
        QUERIES
            .iter()
            .find(|(n, _)| *n == row.name)
            .map(|(_, q)| *q)
            .unwrap_or_default()
    };
    for phase in ["prometheus", "hot", "cold"] {
        if phase == "cold" {
            let flushed = client
                .post(sightline.url("/api/v1/admin/flush"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            println!("sightline flush: {}", flushed.status());
        }
        let server = if phase == "prometheus" {
            &prometheus
        } else {
            &sightline
        };
        for row in &mut rows {
            let query = query_of(row);
            let window = (row.kind == "range").then_some(range);
            let timing = time_query(&client, server, query, window, at, options.runs).await;
            let timing = match timing {
                Ok(t) => t,
                Err(e) => {
                    println!("  {phase} {} {}: {e}", row.name, row.kind);
                    continue;
                }
            };
            println!(
                "  {phase:10} {:26} {:7} median {:9.1} ms  p90 {:9.1} ms  {} series, {} KiB",
                row.name,
                row.kind,
                timing.median_ms,
                timing.p90_ms,
                timing.answer.len(),
                timing.bytes >> 10
            );
            match phase {
                "prometheus" => row.prometheus = Some(timing),
                "hot" => {
                    if let Some(theirs) = &row.prometheus {
                        let problems = compare(&timing.answer, &theirs.answer);
                        if !problems.is_empty() {
                            println!("    hot answer differs: {}", problems.join("; "));
                        }
                    }
                    row.hot = Some(timing);
                }
                _ => {
                    if let Some(theirs) = &row.prometheus {
                        let problems = compare(&timing.answer, &theirs.answer);
                        row.check = if problems.is_empty() {
                            "same".to_string()
                        } else {
                            problems.join("; ")
                        };
                    }
                    row.cold = Some(timing);
                }
            }
        }
        if phase == "prometheus" {
            println!(
                "RSS Prometheus after queries: {} MiB",
                prometheus.rss() >> 20
            );
        }
    }
    println!("RSS Sightline after queries: {} MiB", sightline.rss() >> 20);
    println!(
        "Prometheus data dir {}, Sightline data dir {}",
        prometheus.data.display(),
        sightline.data.display()
    );

    println!();
    println!(
        "| query | kind | Prometheus median / p90 ms | Sightline hot median / p90 ms | Sightline cold median / p90 ms | cold / Prometheus (median) | answers |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cell = |t: &Option<Timing>| {
        t.as_ref().map_or("failed".to_string(), |t| {
            format!("{:.1} / {:.1}", t.median_ms, t.p90_ms)
        })
    };
    for row in &rows {
        let ratio = match (&row.cold, &row.prometheus) {
            (Some(c), Some(p)) => format!("{:.2}×", c.median_ms / p.median_ms),
            _ => "–".to_string(),
        };
        println!(
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.kind,
            cell(&row.prometheus),
            cell(&row.hot),
            cell(&row.cold),
            ratio,
            row.check
        );
    }
    Ok(())
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = runtime.block_on(run(options)) {
        println!("promql_peers: {e}");
        std::process::exit(1);
    }
}
