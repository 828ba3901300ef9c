//! End-to-end remote_write ingest benchmark against peers: drives the same generated
//! load (27 services × 2 replicas, 1 sample per TimeSeries, 2000 samples per request,
//! 4 concurrent connections, 15 s of data per round) against Sightline, Prometheus 2.x
//! (`--web.enable-remote-write-receiver`) and VictoriaMetrics, one after the other, and
//! prints per target: accepted samples/s, CPU seconds per million samples, peak RSS and
//! bytes per sample on disk after a flush, with the ratios Sightline / peer.
//!
//! Run: `scripts/bench-peers.sh` (installs the peers, builds Sightline, runs this), or
//! `cargo bench --bench ingest_peers -- --series 10000,100000`. Options (or env vars):
//! `--series N[,N…]` (`PEERS_SERIES`), `--samples N` samples per size, default 4.8 M
//! (`PEERS_SAMPLES`), `--max-rounds N` (`PEERS_MAX_ROUNDS`), `--seconds S` per target
//! (`PEERS_SECONDS`, default 60), `--targets sightline,prometheus,victoria-metrics`
//! (`PEERS_TARGETS`), binaries in `SIGHTLINE_BIN`, `PROMETHEUS_BIN`, `VM_BIN`.
//! Figures in BENCHMARKS.md.
#![allow(clippy::print_stdout)]

#[path = "workload.rs"]
mod workload;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use proto::prometheus::v1::{Label, Sample, TimeSeries, WriteRequest};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

const SAMPLES_PER_REQUEST: usize = 2000;
const CONNECTIONS: usize = 4;
const ROUND_MS: i64 = 15_000;

use workload::SERVICES;
const BUCKETS: [&str; 8] = ["0.005", "0.01", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"];
/// Series per (route, status) group of one instance: 8 buckets, count, sum, max, active.
const FAMILY: usize = 12;

// ---------------------------------------------------------------------------------------
// Options

struct Options {
    series: Vec<usize>,
    samples: usize,
    max_rounds: usize,
    seconds: u64,
    targets: Vec<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str, env: &str| -> Option<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var(env).ok())
    };
    let list = |s: String| -> Vec<String> {
        s.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let number = |s: &str| -> usize {
        let s = s.replace('_', "");
        let (digits, mul) = match s.chars().next_back() {
            Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
            Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
            _ => (s.as_str(), 1),
        };
        digits
            .parse::<f64>()
            .map(|v| (v * mul as f64) as usize)
            .unwrap_or_else(|_| panic!("not a number: {s}"))
    };
    Options {
        series: list(get("--series", "PEERS_SERIES").unwrap_or_else(|| "10000,100000".into()))
            .iter()
            .map(|s| number(s))
            .collect(),
        samples: get("--samples", "PEERS_SAMPLES").map_or(4_800_000, |s| number(&s)),
        max_rounds: get("--max-rounds", "PEERS_MAX_ROUNDS").map_or(480, |s| number(&s)),
        seconds: get("--seconds", "PEERS_SECONDS").map_or(60, |s| number(&s) as u64),
        targets: list(
            get("--targets", "PEERS_TARGETS")
                .unwrap_or_else(|| "sightline,prometheus,victoria-metrics".into()),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Load generator

/// How a series' value evolves from round to round.
#[derive(Clone, Copy)]
enum Kind {
    /// A counter growing by about `rate` per round (integral values).
    Counter,
    /// Seconds accumulated from nanosecond timings (Micrometer `_sum`).
    Seconds,
    /// An integer gauge that jumps around its base now and then.
    Gauge,
    /// A ratio in [0, 1] with 4 decimals.
    Ratio,
}

struct SeriesState {
    kind: Kind,
    rate: f64,
    base: f64,
    value: f64,
}

/// The generated series (labels encoded once) and their value state.
struct Load {
    labels: Vec<Vec<Label>>,
    state: Vec<SeriesState>,
    rng: SmallRng,
}

impl Load {
    fn new(series: usize, seed: u64) -> Load {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut labels = Vec::with_capacity(series);
        let mut state = Vec::with_capacity(series);
        let instances = SERVICES.len() * 2;
        for i in 0..series {
            let k = i % instances;
            let j = i / instances;
            let service = SERVICES[k / 2];
            let instance = format!("{service}-7d9f8c6b5-{}x{}:8080", k % 2, service.len());
            let f = j % FAMILY;
            let group = j / FAMILY;
            let status = if group.is_multiple_of(2) {
                "200"
            } else {
                "500"
            };
            let route = format!(
                "/api/v1/{}/r{}",
                ["query", "save", "detail", "list"][group / 2 % 4],
                group / 8
            );
            let traffic = if status == "200" {
                rng.random_range(5.0..200.0)
            } else {
                rng.random_range(0.0..2.0)
            };
            let (name, le, kind, rate, base) = match f {
                0..8 => {
                    let share = ((f + 1) as f64 / 8.0).powf(0.3);
                    (
                        "http_server_requests_seconds_bucket",
                        Some(BUCKETS[f]),
                        Kind::Counter,
                        traffic * share,
                        0.0,
                    )
                }
                8 => (
                    "http_server_requests_seconds_count",
                    None,
                    Kind::Counter,
                    traffic,
                    0.0,
                ),
                9 => (
                    "http_server_requests_seconds_sum",
                    None,
                    Kind::Seconds,
                    traffic * 0.04,
                    0.0,
                ),
                10 => (
                    "http_server_requests_active_seconds_active_count",
                    None,
                    Kind::Gauge,
                    0.0,
                    rng.random_range(1.0..50.0),
                ),
                _ => (
                    "http_server_requests_seconds_max",
                    None,
                    Kind::Ratio,
                    0.0,
                    0.1,
                ),
            };
            let mut pairs: Vec<(&str, String)> = vec![
                ("__name__", name.to_string()),
                ("application", service.to_string()),
                ("cluster", "prod-sh-1".to_string()),
                ("exception", "None".to_string()),
                ("instance", instance),
                ("job", service.to_string()),
                (
                    "method",
                    if group.is_multiple_of(3) {
                        "POST"
                    } else {
                        "GET"
                    }
                    .to_string(),
                ),
                ("namespace", "trust-prod".to_string()),
                (
                    "outcome",
                    if status == "200" {
                        "SUCCESS"
                    } else {
                        "SERVER_ERROR"
                    }
                    .to_string(),
                ),
                ("status", status.to_string()),
                ("uri", route),
            ];
            if let Some(le) = le {
                pairs.push(("le", le.to_string()));
            }
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            labels.push(
                pairs
                    .into_iter()
                    .map(|(name, value)| Label {
                        name: name.to_string(),
                        value,
                    })
                    .collect(),
            );
            state.push(SeriesState {
                kind,
                rate,
                base,
                value: base,
            });
        }
        Load { labels, state, rng }
    }

    /// Advances every series by one round and returns its value.
    fn step(&mut self, i: usize) -> f64 {
        let rng = &mut self.rng;
        let s = &mut self.state[i];
        match s.kind {
            Kind::Counter => s.value += (s.rate * rng.random_range(0.6..1.4)).round(),
            Kind::Seconds => {
                let nanos =
                    (s.value * 1e9).round() + (s.rate * 1e9 * rng.random_range(0.5..1.5)).round();
                s.value = nanos / 1e9;
            }
            Kind::Gauge => {
                if rng.random_bool(0.3) {
                    s.value = (s.base * rng.random_range(0.8..1.2)).round();
                }
            }
            Kind::Ratio => {
                s.value = ((s.value + rng.random_range(-0.02..0.02)).clamp(0.0, 1.0) * 10_000.0)
                    .round()
                    / 10_000.0;
            }
        }
        s.value
    }

    /// One round: every series gets one sample at `ts_ms`, in snappy-compressed requests
    /// of `SAMPLES_PER_REQUEST` series; returns the bodies and the raw proto bytes.
    fn round(&mut self, ts_ms: i64) -> (Vec<Body>, usize) {
        let mut bodies = Vec::new();
        let mut raw = 0;
        let mut encoder = snap::raw::Encoder::new();
        let mut buf = Vec::new();
        let n = self.labels.len();
        let mut start = 0;
        while start < n {
            let end = (start + SAMPLES_PER_REQUEST).min(n);
            let timeseries = (start..end)
                .map(|i| TimeSeries {
                    labels: self.labels[i].clone(),
                    samples: vec![Sample {
                        value: self.step(i),
                        timestamp: ts_ms,
                    }],
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                })
                .collect();
            let request = WriteRequest {
                timeseries,
                metadata: Vec::new(),
            };
            buf.clear();
            request.encode(&mut buf).expect("encode into a Vec");
            raw += buf.len();
            let compressed = encoder.compress_vec(&buf).expect("snappy compress");
            bodies.push(Body {
                bytes: axum::body::Bytes::from(compressed),
                samples: end - start,
            });
            start = end;
        }
        (bodies, raw)
    }
}

#[derive(Clone)]
struct Body {
    bytes: axum::body::Bytes,
    samples: usize,
}

/// All requests of a run, pre-encoded: `rounds[r][c]` is chunk `c` of round `r`.
struct Encoded {
    rounds: Vec<Vec<Body>>,
    raw_bytes: usize,
    compressed_bytes: usize,
    samples: usize,
    encode_seconds: f64,
}

fn encode(series: usize, rounds: usize) -> Encoded {
    let started = Instant::now();
    let mut load = Load::new(series, 42);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // The last round lands 1 min before now, so every target accepts the whole range.
    let first = (now_ms - 60_000 - rounds as i64 * ROUND_MS) / ROUND_MS * ROUND_MS;
    let mut out = Encoded {
        rounds: Vec::with_capacity(rounds),
        raw_bytes: 0,
        compressed_bytes: 0,
        samples: 0,
        encode_seconds: 0.0,
    };
    for r in 0..rounds {
        let (bodies, raw) = load.round(first + r as i64 * ROUND_MS);
        out.raw_bytes += raw;
        out.compressed_bytes += bodies.iter().map(|b| b.bytes.len()).sum::<usize>();
        out.samples += bodies.iter().map(|b| b.samples).sum::<usize>();
        out.rounds.push(bodies);
    }
    out.encode_seconds = started.elapsed().as_secs_f64();
    out
}

// ---------------------------------------------------------------------------------------
// Sender

#[derive(Default)]
struct SendStats {
    accepted_samples: u64,
    rejected_requests: u64,
    retries: u64,
    first_error: Option<String>,
    seconds: f64,
    rounds_sent: usize,
}

/// Sends the rounds over `CONNECTIONS` concurrent connections. Requests go out in order
/// (round-major); a chunk's request for round r+1 waits until its round-r request is
/// answered, so no target ever sees a series' samples out of order. 429/5xx are retried
/// (as Prometheus' remote_write client does); only 2xx-acknowledged samples count.
async fn send(url: &str, encoded: &Encoded, deadline: Duration) -> SendStats {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let chunks = encoded.rounds.first().map_or(0, Vec::len);
    let total = encoded.rounds.len() * chunks;
    let next = Arc::new(AtomicUsize::new(0));
    let done: Arc<Vec<AtomicUsize>> = Arc::new((0..chunks).map(|_| AtomicUsize::new(0)).collect());
    let notify = Arc::new(Notify::new());
    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let max_round = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let stop_at = started + deadline;
    let rounds: Arc<Vec<Vec<Body>>> = Arc::new(encoded.rounds.clone());
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, url) = (client.clone(), url.to_string());
        let (next, done, notify) = (next.clone(), done.clone(), notify.clone());
        let (accepted, rejected, retries) = (accepted.clone(), rejected.clone(), retries.clone());
        let (max_round, first_error, rounds) =
            (max_round.clone(), first_error.clone(), rounds.clone());
        workers.push(tokio::spawn(async move {
            loop {
                if Instant::now() >= stop_at {
                    break;
                }
                let q = next.fetch_add(1, Ordering::SeqCst);
                if q >= total {
                    break;
                }
                let (round, chunk) = (q / chunks, q % chunks);
                loop {
                    let notified = notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if done[chunk].load(Ordering::SeqCst) >= round {
                        break;
                    }
                    notified.await;
                }
                let body = &rounds[round][chunk];
                let mut attempt = 0u32;
                loop {
                    let result = client
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body.bytes.clone())
                        .send()
                        .await;
                    let (ok, retry, error) = match result {
                        Ok(response) => {
                            let status = response.status();
                            let text = if status.is_success() {
                                String::new()
                            } else {
                                response.text().await.unwrap_or_default()
                            };
                            let retry = status.as_u16() == 429 || status.is_server_error();
                            (
                                status.is_success(),
                                retry,
                                format!("{status}: {}", text.trim()),
                            )
                        }
                        Err(e) => (false, true, e.to_string()),
                    };
                    if ok {
                        accepted.fetch_add(body.samples as u64, Ordering::SeqCst);
                        break;
                    }
                    {
                        let mut first = first_error.lock().expect("lock");
                        if first.is_none() {
                            *first = Some(error);
                        }
                    }
                    if retry && attempt < 30 && Instant::now() < stop_at {
                        attempt += 1;
                        retries.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt.min(10))))
                            .await;
                        continue;
                    }
                    rejected.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                max_round.fetch_max(round + 1, Ordering::SeqCst);
                done[chunk].store(round + 1, Ordering::SeqCst);
                notify.notify_waiters();
            }
        }));
    }
    for worker in workers {
        worker.await.expect("sender task");
    }
    let seconds = started.elapsed().as_secs_f64();
    let first_error = first_error.lock().expect("lock").take();
    SendStats {
        accepted_samples: accepted.load(Ordering::SeqCst),
        rejected_requests: rejected.load(Ordering::SeqCst),
        retries: retries.load(Ordering::SeqCst),
        first_error,
        seconds,
        rounds_sent: max_round.load(Ordering::SeqCst),
    }
}

/// The generator's own ceiling: the same sender against an in-process sink that reads
/// each body and answers 204 (on its own thread and runtime).
async fn generator_ceiling(encoded: &Encoded) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let addr = listener.local_addr().expect("sink addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sink = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sink runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("sink listener");
            let app = axum::Router::new().route(
                "/api/v1/write",
                axum::routing::post(|body: axum::body::Bytes| async move {
                    drop(body);
                    axum::http::StatusCode::NO_CONTENT
                }),
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("sink serve");
        });
    });
    let stats = send(
        &format!("http://{addr}/api/v1/write"),
        encoded,
        Duration::from_secs(20),
    )
    .await;
    let _ = stop_tx.send(());
    sink.join().expect("sink thread");
    stats.accepted_samples as f64 / stats.seconds
}

// ---------------------------------------------------------------------------------------
// Servers

/// A server under test; killed (and its data removed) on drop.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("PEERS_KEEP_DATA").is_some() {
            // Keep the data directory for inspection (the TempDir then deletes nothing).
            let kept = std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("tempdir"));
            println!("    kept {} data in {}", self.name, kept.keep().display());
        }
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn binary(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

fn start(name: &'static str) -> std::io::Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("peers-{name}-"))
        .tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut command = match name {
        "sightline" => {
            let mut c = Command::new(binary("SIGHTLINE_BIN", "target/release/sightline"));
            c.arg("serve")
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen", &listen, "--grpc-listen", "127.0.0.1:0"])
                .args(["--otlp-http-listen", "off", "--jaeger-listen", "off"]);
            c
        }
        "prometheus" => {
            let config = dir.path().join("prometheus.yml");
            std::fs::write(
                &config,
                "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
            )?;
            let mut c = Command::new(binary("PROMETHEUS_BIN", "/usr/bin/prometheus"));
            c.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address={listen}"))
                .args([
                    "--web.enable-remote-write-receiver",
                    "--web.enable-admin-api",
                ]);
            c
        }
        _ => {
            let mut c = Command::new(binary("VM_BIN", "/usr/bin/victoria-metrics"));
            c.arg(format!("-storageDataPath={}", data.display()))
                .arg(format!("-httpListenAddr={listen}"))
                .arg("-retentionPeriod=1y");
            c
        }
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
        dir,
    })
}

async fn wait_ready(server: &mut Server, client: &reqwest::Client) -> Result<(), String> {
    let path = match server.name {
        "sightline" => "/ready",
        "prometheus" => "/-/ready",
        _ => "/health",
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

/// (utime + stime) of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A `kB` field of /proc/<pid>/status, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes on disk (allocated blocks, as `du` counts them) under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            total += disk_bytes(&path);
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

/// Apparent size (sum of file lengths) under `dir`.
fn file_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            total += file_bytes(&path);
        } else {
            total += meta.len();
        }
    }
    total
}

/// Waits until the size under `dir` stays the same for `quiet`, at most `max`.
async fn settle(dir: &Path, quiet: Duration, max: Duration) {
    let started = Instant::now();
    let mut last = file_bytes(dir);
    let mut since = Instant::now();
    while started.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = file_bytes(dir);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

struct Measured {
    target: &'static str,
    series: usize,
    send: SendStats,
    cpu_ingest: f64,
    cpu_with_flush: f64,
    peak_rss: u64,
    disk: u64,
    disk_note: String,
    extra: Vec<(String, u64)>,
}

/// Flushes the target and returns (bytes counted, what was counted, other sizes).
async fn flush_and_measure(
    server: &Server,
    client: &reqwest::Client,
) -> (u64, String, Vec<(String, u64)>) {
    let post = |path: &str| {
        client
            .post(server.url(path))
            .timeout(Duration::from_secs(300))
            .send()
    };
    match server.name {
        "sightline" => {
            let flushed = post("/api/v1/admin/flush")
                .await
                .map(|r| r.status().to_string());
            settle(
                &server.data,
                Duration::from_secs(2),
                Duration::from_secs(30),
            )
            .await;
            let bytes = disk_bytes(&server.data);
            (
                bytes,
                format!(
                    "du of data dir after POST /api/v1/admin/flush ({})",
                    flushed.unwrap_or_else(|e| e.to_string())
                ),
                Vec::new(),
            )
        }
        "prometheus" => {
            let whole = disk_bytes(&server.data);
            let wal = disk_bytes(&server.data.join("wal"));
            let head = disk_bytes(&server.data.join("chunks_head"));
            // A snapshot writes the head out as a persisted block (XOR chunks + index):
            // what the same data takes once compacted.
            let snap = post("/api/v1/admin/tsdb/snapshot").await;
            let name = match snap {
                Ok(r) => {
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    v["data"]["name"].as_str().unwrap_or("").to_string()
                }
                Err(e) => {
                    println!("  prometheus snapshot failed: {e}");
                    String::new()
                }
            };
            let snapshot = if name.is_empty() {
                0
            } else {
                disk_bytes(&server.data.join("snapshots").join(&name))
            };
            let extra = vec![
                (
                    "tsdb dir (WAL + head chunks, uncompacted)".to_string(),
                    whole,
                ),
                ("  of which wal".to_string(), wal),
                ("  of which chunks_head".to_string(), head),
                (
                    "snapshot block (head written as a compacted block)".to_string(),
                    snapshot,
                ),
            ];
            if snapshot > 0 {
                (
                    snapshot,
                    "snapshot block of the head (= compacted XOR chunks + index)".to_string(),
                    extra,
                )
            } else {
                (
                    whole,
                    "tsdb dir (WAL + head chunks, not compacted)".to_string(),
                    extra,
                )
            }
        }
        _ => {
            let flushed = post("/internal/force_flush")
                .await
                .map(|r| r.status().to_string());
            settle(
                &server.data,
                Duration::from_secs(3),
                Duration::from_secs(30),
            )
            .await;
            let after_flush = disk_bytes(&server.data);
            let month = {
                // Partition names are YYYY_MM of the data (UTC); the load ends ~now.
                let out = Command::new("date").args(["-u", "+%Y_%m"]).output().ok();
                out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default()
            };
            let merged = post(&format!("/internal/force_merge?partition_prefix={month}"))
                .await
                .map(|r| r.status().to_string());
            settle(
                &server.data,
                Duration::from_secs(5),
                Duration::from_secs(120),
            )
            .await;
            let after_merge = disk_bytes(&server.data);
            let extra = vec![
                (
                    format!(
                        "after /internal/force_flush ({})",
                        flushed.unwrap_or_else(|e| e.to_string())
                    ),
                    after_flush,
                ),
                (
                    format!(
                        "after /internal/force_merge ({})",
                        merged.unwrap_or_else(|e| e.to_string())
                    ),
                    after_merge,
                ),
            ];
            (
                after_flush,
                "du of -storageDataPath after /internal/force_flush".to_string(),
                extra,
            )
        }
    }
}

async fn run_target(
    name: &'static str,
    series: usize,
    encoded: &Encoded,
    seconds: u64,
) -> Result<Measured, String> {
    let mut server = start(name).map_err(|e| format!("{name}: cannot start: {e}"))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    wait_ready(&mut server, &client).await?;
    let pid = server.pid();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "  {name}: start, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let cpu_before = cpu_seconds(pid);
    let send = send(
        &server.url("/api/v1/write"),
        encoded,
        Duration::from_secs(seconds),
    )
    .await;
    let cpu_after = cpu_seconds(pid);
    let (disk, disk_note, extra) = flush_and_measure(&server, &client).await;
    let cpu_flushed = cpu_seconds(pid);
    let peak_rss = status_bytes(pid, "VmHWM:");
    if let Ok(Some(status)) = server.child.try_wait() {
        return Err(format!("{name} exited during the run: {status}"));
    }
    let log = server.dir.path().join("server.log");
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    let errors: Vec<&str> = tail
        .lines()
        .filter(|l| l.contains("level=error") || l.contains("ERROR") || l.contains("\terror\t"))
        .take(3)
        .collect();
    for line in errors {
        println!(
            "  {name} log: {}",
            line.chars().take(300).collect::<String>()
        );
    }
    drop(server);
    Ok(Measured {
        target: name,
        series,
        send,
        cpu_ingest: cpu_after - cpu_before,
        cpu_with_flush: cpu_flushed - cpu_before,
        peak_rss,
        disk,
        disk_note,
        extra,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(results: &[Measured]) {
    println!();
    println!(
        "| series | target | rounds sent | accepted samples | accepted samples/s | CPU s per M samples (ingest / incl. flush) | peak RSS | bytes on disk | B/sample |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for m in results {
        let accepted = m.send.accepted_samples.max(1) as f64;
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} / {:.2} | {:.0} MiB | {:.1} MiB | {:.2} |",
            m.series,
            m.target,
            m.send.rounds_sent,
            m.send.accepted_samples,
            accepted / m.send.seconds,
            m.cpu_ingest / accepted * 1e6,
            m.cpu_with_flush / accepted * 1e6,
            mib(m.peak_rss),
            mib(m.disk),
            m.disk as f64 / accepted,
        );
    }
    println!();
    println!(
        "Ratios Sightline / peer (samples/s: higher is better; CPU, RSS, B/sample: lower is better):"
    );
    println!("| series | peer | samples/s | CPU s per M samples | peak RSS | B/sample |");
    println!("|---|---|---|---|---|---|");
    for s in results.iter().filter(|m| m.target == "sightline") {
        for p in results
            .iter()
            .filter(|m| m.target != "sightline" && m.series == s.series)
        {
            let per = |m: &Measured| m.send.accepted_samples.max(1) as f64;
            println!(
                "| {} | {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
                s.series,
                p.target,
                (per(s) / s.send.seconds) / (per(p) / p.send.seconds),
                (s.cpu_ingest / per(s)) / (p.cpu_ingest / per(p)),
                s.peak_rss as f64 / p.peak_rss.max(1) as f64,
                (s.disk as f64 / per(s)) / (p.disk as f64 / per(p)),
            );
        }
    }
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    let mut ceiling_done = false;
    for &series in &options.series {
        let rounds = (options.samples / series.max(1)).clamp(1, options.max_rounds.max(1));
        println!(
            "== {series} series × {rounds} rounds ({} samples), {SAMPLES_PER_REQUEST} samples/request, {CONNECTIONS} connections",
            series * rounds
        );
        let encoded = encode(series, rounds);
        println!(
            "  pre-encoded {} requests in {:.1} s ({:.2} M samples/s encode): {:.0} B/sample raw proto, {:.1} B/sample snappy, {:.0} MiB held",
            encoded.rounds.iter().map(Vec::len).sum::<usize>(),
            encoded.encode_seconds,
            encoded.samples as f64 / encoded.encode_seconds / 1e6,
            encoded.raw_bytes as f64 / encoded.samples as f64,
            encoded.compressed_bytes as f64 / encoded.samples as f64,
            mib(encoded.compressed_bytes as u64),
        );
        if !ceiling_done {
            let rate = runtime.block_on(generator_ceiling(&encoded));
            println!(
                "  generator ceiling (in-process sink that reads each body, answers 204): {:.2} M samples/s",
                rate / 1e6
            );
            ceiling_done = true;
        }
        for target in &options.targets {
            let name: &'static str = match target.as_str() {
                "sightline" => "sightline",
                "prometheus" => "prometheus",
                "victoria-metrics" | "vm" | "victoriametrics" => "victoria-metrics",
                other => {
                    println!("  unknown target {other}, skipped");
                    continue;
                }
            };
            match runtime.block_on(run_target(name, series, &encoded, options.seconds)) {
                Ok(m) => {
                    println!(
                        "  {name}: {} samples accepted in {:.1} s ({:.0}/s), {} rounds, {} requests refused, {} retries{}",
                        m.send.accepted_samples,
                        m.send.seconds,
                        m.send.accepted_samples as f64 / m.send.seconds,
                        m.send.rounds_sent,
                        m.send.rejected_requests,
                        m.send.retries,
                        m.send
                            .first_error
                            .as_ref()
                            .map(|e| format!(
                                ", first error: {}",
                                e.chars().take(200).collect::<String>()
                            ))
                            .unwrap_or_default(),
                    );
                    println!("    disk: {} = {:.1} MiB", m.disk_note, mib(m.disk));
                    for (what, bytes) in &m.extra {
                        println!("    {what}: {:.1} MiB", mib(*bytes));
                    }
                    results.push(m);
                }
                Err(e) => println!("  {name}: FAILED: {e}"),
            }
        }
        drop(encoded);
        report(&results);
    }
}
