//! PromQL differential test: a real Prometheus (the Debian 2.x package) and Sightline get
//! the same remote_write requests, then every expression of
//! `tests/fixtures/promql/differential.txt` is run as a range query on both and the
//! matrices are compared: same series, same labels, same timestamps, floats within
//! 1e-9 relative. Mismatches fail the test unless the data file lists them as known
//! differences.
//!
//! Why remote_write to both rather than a scrape: the two stores then hold bit-identical
//! samples at timestamps we choose (with a millisecond jitter, so no sample ever sits on a
//! range boundary and 2.x left-closed / 3.x left-open windows agree); a scrape would give
//! each side its own timestamps. Prometheus accepts the writes with
//! `--web.enable-remote-write-receiver`.

mod common;
#[path = "clients/prom_process.rs"]
mod prom_process;
#[path = "clients/prom_wire.rs"]
mod prom_wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use proto::prometheus::v1;
use serde_json::Value;

use common::TestServer;
use prom_process::{BINARY, free_port};
use prom_wire::{STALE_NAN, V1_TYPE, now_ms, post, snappy};

const DATA_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/promql/differential.txt"
);
const SCRAPE_MS: i64 = 15_000;
/// One hour of data at 15 s.
const SAMPLES: i64 = 240;
/// Query steps: odd seconds, so no query time is a multiple of a subquery step.
const QUERY_STEP_S: i64 = 150;
const QUERY_POINTS: i64 = 15;

/// A Prometheus with the remote-write receiver on, in its own temporary directory.
struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    listen: SocketAddr,
}

impl Prometheus {
    fn start() -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.path().join("prometheus.yml");
        // Subqueries without a step use the evaluation interval: 1m, as Prometheus' default.
        std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").expect("config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--query.lookback-delta=5m")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {BINARY} ({e}); run scripts/test-deps/prometheus.sh")
            });
        Prometheus { child, dir, listen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(format!("{}/-/ready", self.url())).await
                && response.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "prometheus not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic generator (64-bit LCG), so both sides and every run see the same data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One series of the fixture: labels and `(t_ms, value)` samples in time order.
struct Series {
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
}

fn series(pairs: &[(&str, &str)]) -> Series {
    Series {
        labels: pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        samples: Vec::new(),
    }
}

/// The fixture data, first sample at `t0` (ms). Each series gets its own jitter of
/// 101–899 ms past the 15 s grid, so no sample is on a whole second.
fn generate(t0: i64) -> Vec<Series> {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    let mut jitter_index = 0i64;
    let mut next_jitter = || {
        jitter_index += 1;
        101 + (jitter_index * 137) % 799
    };
    let time = |i: i64, jitter: i64| t0 + i * SCRAPE_MS + jitter;

    for (job, instances) in [("api", &["a1", "a2"][..]), ("web", &["w1"][..])] {
        for instance in instances {
            for method in ["get", "post"] {
                for code in ["200", "500"] {
                    let mut s = series(&[
                        ("__name__", "http_requests_total"),
                        ("job", job),
                        ("instance", instance),
                        ("method", method),
                        ("code", code),
                    ]);
                    let jitter = next_jitter();
                    let scale = if code == "200" { 40.0 } else { 4.0 };
                    let resets = *instance == "w1" && method == "post" && code == "500";
                    let mut value = rng.next() * 100.0;
                    for i in 0..SAMPLES {
                        if resets && i == SAMPLES / 2 {
                            value = rng.next() * 3.0;
                        }
                        value += (rng.next() * scale * 10.0).round() / 10.0;
                        s.samples.push((time(i, jitter), value));
                    }
                    out.push(s);
                }
            }
        }
    }

    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    for job in ["api", "web"] {
        let jitter = next_jitter();
        let mut buckets: Vec<Series> = bounds
            .iter()
            .map(|le| {
                series(&[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", job),
                    ("le", le),
                ])
            })
            .collect();
        let mut sum = series(&[
            ("__name__", "http_request_duration_seconds_sum"),
            ("job", job),
        ]);
        let mut count = series(&[
            ("__name__", "http_request_duration_seconds_count"),
            ("job", job),
        ]);
        let mut cumulative = [0.0f64; 6];
        let mut total_sum = 0.0;
        for i in 0..SAMPLES {
            // A few requests per scrape, each with a latency drawn from a skewed distribution.
            let requests = 1 + (rng.next() * 6.0) as usize;
            for _ in 0..requests {
                let latency = rng.next().powi(3) * 1.5;
                total_sum += latency;
                for (b, le) in bounds.iter().enumerate() {
                    let bound: f64 = if *le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    if latency <= bound {
                        cumulative[b] += 1.0;
                    }
                }
            }
            for (b, bucket) in buckets.iter_mut().enumerate() {
                bucket.samples.push((time(i, jitter), cumulative[b]));
            }
            sum.samples.push((time(i, jitter), total_sum));
            count.samples.push((time(i, jitter), cumulative[5]));
        }
        out.extend(buckets);
        out.push(sum);
        out.push(count);
    }

    for instance in ["n1", "n2", "n3"] {
        for zone in ["a", "b"] {
            let mut s = series(&[
                ("__name__", "node_temperature_celsius"),
                ("instance", instance),
                ("zone", zone),
            ]);
            let jitter = next_jitter();
            let phase = rng.next() * 6.0;
            let base = rng.next() * 30.0 - 5.0;
            for i in 0..SAMPLES {
                let value = base + 12.0 * ((i as f64) / 20.0 + phase).sin() + rng.next() * 2.0;
                s.samples.push((time(i, jitter), value));
            }
            out.push(s);
        }
    }

    for queue in ["q1", "q2", "q3"] {
        let mut s = series(&[("__name__", "queue_depth"), ("queue", queue)]);
        let jitter = next_jitter();
        for i in 0..SAMPLES {
            if queue == "q3" && i >= SAMPLES * 6 / 10 {
                break;
            }
            if queue == "q2" && (SAMPLES * 7 / 10..SAMPLES * 85 / 100).contains(&i) {
                if i == SAMPLES * 7 / 10 {
                    s.samples.push((time(i, jitter), f64::from_bits(STALE_NAN)));
                }
                continue;
            }
            s.samples
                .push((time(i, jitter), (rng.next() * 9.0).floor()));
        }
        out.push(s);
    }

    for (job, instance, version) in [
        ("api", "a1", "1.0"),
        ("api", "a2", "1.1"),
        ("web", "w1", "1.1"),
    ] {
        let jitter = next_jitter();
        let mut info = series(&[
            ("__name__", "build_info"),
            ("job", job),
            ("instance", instance),
            ("version", version),
        ]);
        let mut up = series(&[("__name__", "up"), ("job", job), ("instance", instance)]);
        for i in 0..SAMPLES {
            info.samples.push((time(i, jitter), 1.0));
            let down = instance == "w1" && (SAMPLES / 3..SAMPLES / 2).contains(&i);
            up.samples
                .push((time(i, jitter), if down { 0.0 } else { 1.0 }));
        }
        out.push(info);
        out.push(up);
    }

    for sensor in ["s1", "s2"] {
        let mut s = series(&[("__name__", "sensor_reading"), ("sensor", sensor)]);
        let jitter = next_jitter();
        for i in 0..SAMPLES {
            let value = match (sensor, i) {
                ("s1", 100) => f64::NAN,
                ("s2", 150) => f64::INFINITY,
                _ => rng.next() * 50.0,
            };
            s.samples.push((time(i, jitter), value));
        }
        out.push(s);
    }
    out
}

/// Splits the data into remote_write requests of 5 minutes each, in time order, as a
/// sender would (Prometheus' head only takes samples within an hour of its newest).
fn write_requests(data: &[Series], t0: i64) -> Vec<Vec<u8>> {
    let chunk_ms = 5 * 60_000;
    let chunks = (SAMPLES * SCRAPE_MS + chunk_ms - 1) / chunk_ms + 1;
    (0..chunks)
        .map(|chunk| {
            let (from, to) = (t0 + chunk * chunk_ms, t0 + (chunk + 1) * chunk_ms);
            let timeseries = data
                .iter()
                .filter_map(|s| {
                    let samples: Vec<v1::Sample> = s
                        .samples
                        .iter()
                        .filter(|(t, _)| (from..to).contains(t))
                        .map(|(t, v)| v1::Sample {
                            value: *v,
                            timestamp: *t,
                        })
                        .collect();
                    (!samples.is_empty()).then(|| v1::TimeSeries {
                        labels: s
                            .labels
                            .iter()
                            .map(|(n, v)| v1::Label {
                                name: n.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                        samples,
                        ..v1::TimeSeries::default()
                    })
                })
                .collect();
            snappy(
                &v1::WriteRequest {
                    timeseries,
                    metadata: Vec::new(),
                }
                .encode_to_vec(),
            )
        })
        .collect()
}

/// One case of the data file.
struct Case {
    expr: String,
    reference: String,
    known_difference: Option<String>,
}

fn read_cases(at_seconds: i64) -> Vec<Case> {
    let text = std::fs::read_to_string(DATA_FILE).expect("read the differential data file");
    let mut known = false;
    let mut cases = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[known-differences]" {
            known = true;
            continue;
        }
        let line = line.replace("{AT}", &at_seconds.to_string());
        let (body, reason) = match line.split_once("|||") {
            Some((body, reason)) => (body.trim().to_string(), Some(reason.trim().to_string())),
            None => (line.clone(), None),
        };
        assert!(
            !known || reason.is_some(),
            "known difference without a reason: {line}"
        );
        let (expr, reference) = match body.split_once(";;") {
            Some((expr, reference)) => (expr.trim().to_string(), reference.trim().to_string()),
            None => (body.clone(), body.clone()),
        };
        cases.push(Case {
            expr,
            reference,
            known_difference: reason,
        });
    }
    cases
}

/// A range-query answer: series by label set (sorted pairs), or the error type.
type Matrix = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

async fn range_query(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    (start, end, step): (i64, i64, i64),
) -> Result<Matrix, String> {
    let response = client
        .post(format!("{url}/api/v1/query_range"))
        .form(&[
            ("query", query),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", &step.to_string()),
        ])
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("not json: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    if body["data"]["resultType"] != "matrix" {
        return Err(format!("resultType {}", body["data"]["resultType"]));
    }
    let mut matrix = Matrix::new();
    for series in body["data"]["result"]
        .as_array()
        .ok_or("result is not an array")?
    {
        let mut labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .ok_or("metric is not an object")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let mut points = Vec::new();
        for point in series["values"]
            .as_array()
            .ok_or("values is not an array")?
        {
            let t = point[0].as_f64().ok_or("timestamp is not a number")?;
            let v: f64 = match point[1].as_str().ok_or("value is not a string")? {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                text => text.parse().map_err(|_| format!("bad value {text:?}"))?,
            };
            points.push(((t * 1000.0).round() as i64, v));
        }
        if matrix.insert(labels.clone(), points).is_some() {
            return Err(format!("duplicate series {labels:?}"));
        }
    }
    Ok(matrix)
}

fn same_float(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let scale = a.abs().max(b.abs());
    (a - b).abs() <= 1e-9 * scale || (a - b).abs() <= 1e-12
}

/// Describes the first difference between two answers, or `None` when they agree.
fn difference(ours: &Result<Matrix, String>, theirs: &Result<Matrix, String>) -> Option<String> {
    let (ours, theirs) = match (ours, theirs) {
        (Err(a), Err(b)) => {
            let kind = |e: &str| e.split(':').next().unwrap_or_default().to_string();
            return (kind(a) != kind(b))
                .then(|| format!("both fail differently: ours {a}, prometheus {b}"));
        }
        (Err(a), Ok(_)) => return Some(format!("ours fails: {a}")),
        (Ok(_), Err(b)) => return Some(format!("prometheus fails: {b}")),
        (Ok(a), Ok(b)) => (a, b),
    };
    let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    if !only_ours.is_empty() || !only_theirs.is_empty() {
        return Some(format!(
            "series differ: only ours {only_ours:?}, only prometheus {only_theirs:?}"
        ));
    }
    for (labels, points) in ours {
        let other = &theirs[labels];
        let times: Vec<i64> = points.iter().map(|p| p.0).collect();
        let other_times: Vec<i64> = other.iter().map(|p| p.0).collect();
        if times != other_times {
            return Some(format!(
                "{labels:?}: timestamps {times:?} vs {other_times:?}"
            ));
        }
        for ((t, a), (_, b)) in points.iter().zip(other) {
            if !same_float(*a, *b) {
                return Some(format!("{labels:?} at {t}: ours {a} vs prometheus {b}"));
            }
        }
    }
    None
}

async fn wait_for_all_samples(client: &reqwest::Client, url: &str, series: usize, at: i64) {
    let start = Instant::now();
    let query = "count({__name__=~\".+\"})";
    loop {
        let response = client
            .get(format!("{url}/api/v1/query"))
            .query(&[("query", query), ("time", &at.to_string())])
            .send()
            .await;
        if let Ok(response) = response
            && let Ok(body) = response.json::<Value>().await
            && body["data"]["result"][0]["value"][1] == series.to_string().as_str()
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{url} never showed {series} series"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn promql_matches_prometheus() {
    let mut prometheus = Prometheus::start();
    let server = TestServer::start().await;
    prometheus.wait_ready().await;

    // An hour of data ending two minutes ago, first sample on a whole minute.
    let t0 = (now_ms() - 62 * 60_000) / 60_000 * 60_000;
    let data = generate(t0);
    for body in write_requests(&data, t0) {
        for url in [server.url(), prometheus.url()] {
            let response = post(&url, V1_TYPE, Some("snappy"), body.clone()).await;
            let status = response.status();
            assert!(
                status.is_success(),
                "{url}: {status} {:?}",
                response.text().await
            );
        }
    }
    // Queries from 20 to 55 minutes into the data, at odd seconds.
    let start = t0 / 1000 + 20 * 60 + 7;
    let range = (
        start,
        start + QUERY_STEP_S * (QUERY_POINTS - 1),
        QUERY_STEP_S,
    );
    let client = reqwest::Client::new();
    // At 40 minutes every series has a sample within the lookback window.
    let live_at = t0 / 1000 + 40 * 60 + 7;
    let live = data.len();
    wait_for_all_samples(&client, &prometheus.url(), live, live_at).await;

    let cases = read_cases(t0 / 1000 + 30 * 60 + 3);
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let (mut passed, mut known, mut failures) = (0, Vec::new(), Vec::new());
    let mut answered = 0;
    for case in &cases {
        let ours = range_query(&client, &server.url(), &case.expr, range).await;
        let theirs = range_query(&client, &prometheus.url(), &case.reference, range).await;
        if theirs.as_ref().is_ok_and(|m| !m.is_empty()) {
            answered += 1;
        }
        match (difference(&ours, &theirs), &case.known_difference) {
            (None, _) => passed += 1,
            (Some(diff), Some(reason)) => known.push(format!("{} ({reason}): {diff}", case.expr)),
            (Some(diff), None) => failures.push(format!("{}: {diff}", case.expr)),
        }
    }
    eprintln!(
        "promql differential: {passed}/{} expressions agree with Prometheus {:?} ({answered} with series there); {} known differences",
        cases.len(),
        prom_process::version(),
        known.len()
    );
    // The comparison means something only if Prometheus saw the data: most cases have series.
    assert!(
        answered * 10 >= cases.len() * 8,
        "prometheus answered only {answered} of {} cases with series:\n{}",
        cases.len(),
        prometheus.log()
    );
    for line in &known {
        eprintln!("  known: {line}");
    }
    for line in &failures {
        eprintln!("  MISMATCH: {line}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions differ from Prometheus",
        failures.len(),
        cases.len()
    );
}
