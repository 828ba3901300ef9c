//! End-to-end OTLP/HTTP ingest benchmark, Sightline alone: spans/s and log MB/s.
//!
//! Generates the trust-platform request workload (`workload.rs`: gateway-rooted call
//! trees of 4–9 spans, 1–3 logback lines per span, each carrying its trace id),
//! pre-encodes it as OTLP/HTTP protobuf `ExportTraceServiceRequest` /
//! `ExportLogsServiceRequest` bodies (one `ResourceSpans`/`ResourceLogs` per service
//! and replica, as an SDK per process sends them), and posts them over several
//! connections to a fresh `sightline serve` per signal. Then it flushes
//! (`POST /api/v1/admin/flush`: Parquet segments, and for logs the full-text index) and
//! prints accepted records/s, the server's CPU seconds (utime + stime from
//! `/proc/<pid>/stat`) with and without the flush, and the rate per CPU-second, which
//! is what the per-core targets of issue 3 compare against (spans ≥ 100 k/s per core;
//! logs ≥ 50 MB/s of raw text per core, ingested and indexed).
//!
//! The `bulk` signal sends the same log lines as Filebeat does, to the Elasticsearch
//! `_bulk` endpoint (`/es/_bulk`, NDJSON `create` actions): each line an ECS document with
//! the metadata a Filebeat container input and its Kubernetes processor add (agent, ecs,
//! input, `log.file.path`, `log.offset`, stream, `kubernetes.*`, `host.name`). The trace
//! id is only in the logback text, as Filebeat leaves it.
//!
//! Run: `cargo bench --bench ingest_otlp -- [--spans N] [--logs N] [--seconds S]
//! [--connections C] [--signals traces,logs,bulk]` (env `OTLP_SPANS`, `OTLP_LOGS`,
//! `OTLP_SECONDS`, `OTLP_CONNECTIONS`, `OTLP_SIGNALS`; `SIGHTLINE_BIN`, default
//! `target/release/sightline`). Defaults: 1 M spans, 1 M log lines, 60 s cap per signal,
//! 4 connections. Figures in BENCHMARKS.md.
#![allow(clippy::print_stdout)]

#[path = "workload.rs"]
mod workload;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use proto::otlp::{
    AnyValue, ExportLogsServiceRequest, ExportLogsServiceResponse, ExportTraceServiceRequest,
    ExportTraceServiceResponse, InstrumentationScope, KeyValue, LogRecord, Resource, ResourceLogs,
    ResourceSpans, ScopeLogs, ScopeSpans, Span, Status, any_value,
};
use storage::model::{LogRecord as StoredLog, SpanRecord};
use workload::RequestWorkload;

/// Spans per request (an SDK batch span processor exports up to 512).
const SPANS_PER_REQUEST: usize = 512;
/// Log records per request.
const LOGS_PER_REQUEST: usize = 1000;

struct Options {
    spans: usize,
    logs: usize,
    seconds: u64,
    connections: usize,
    signals: Vec<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str, env: &str| -> Option<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var(env).ok())
    };
    let number = |s: String| -> usize {
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
        spans: get("--spans", "OTLP_SPANS").map_or(1_000_000, number),
        logs: get("--logs", "OTLP_LOGS").map_or(1_000_000, number),
        seconds: get("--seconds", "OTLP_SECONDS").map_or(60, |s| number(s) as u64),
        connections: get("--connections", "OTLP_CONNECTIONS").map_or(4, number),
        signals: get("--signals", "OTLP_SIGNALS")
            .unwrap_or_else(|| "traces,logs".to_string())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Encoding

fn string_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str, instance: Option<&str>) -> Resource {
    let mut attributes = vec![
        string_value("service.name", service),
        string_value("telemetry.sdk.language", "java"),
        string_value("deployment.environment", "prod"),
    ];
    if let Some(instance) = instance {
        attributes.push(string_value("service.instance.id", instance));
        attributes.push(string_value("host.name", instance));
    }
    Resource {
        attributes,
        ..Resource::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "io.opentelemetry.spring-webmvc-6.0".to_string(),
        version: "2.10.0-alpha".to_string(),
        ..InstrumentationScope::default()
    }
}

/// A resource: (service, instance).
type ResourceKey = (String, Option<String>);

/// Groups records by (service, instance), in first-seen order.
fn by_resource<T>(records: Vec<T>, key: impl Fn(&T) -> ResourceKey) -> Vec<(ResourceKey, Vec<T>)> {
    let mut groups: Vec<(ResourceKey, Vec<T>)> = Vec::new();
    for record in records {
        let k = key(&record);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, list)) => list.push(record),
            None => groups.push((k, vec![record])),
        }
    }
    groups
}

fn span_kind(kind: &str) -> i32 {
    match kind {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => 0,
    }
}

fn encode_spans(spans: Vec<SpanRecord>) -> Vec<u8> {
    let resource_spans = by_resource(spans, |s| (s.service.clone(), s.instance.clone()))
        .into_iter()
        .map(|((service, instance), spans)| ResourceSpans {
            resource: Some(resource(&service, instance.as_deref())),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans: spans
                    .into_iter()
                    .map(|s| {
                        let mut attributes: Vec<KeyValue> = s
                            .attributes
                            .iter()
                            .map(|(k, v)| string_value(k, v))
                            .collect();
                        if let Some(peer) = &s.peer_service {
                            attributes.push(string_value("peer.service", peer));
                        }
                        Span {
                            trace_id: s.trace_id.as_bytes().to_vec(),
                            span_id: s.span_id.as_bytes().to_vec(),
                            parent_span_id: s
                                .parent_span_id
                                .map(|p| p.as_bytes().to_vec())
                                .unwrap_or_default(),
                            name: s.name,
                            kind: span_kind(&s.kind),
                            start_time_unix_nano: s.start_ns as u64,
                            end_time_unix_nano: (s.start_ns + s.duration_ns) as u64,
                            attributes,
                            status: Some(Status {
                                code: s.status_code,
                                message: s.status_message.unwrap_or_default(),
                            }),
                            ..Span::default()
                        }
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn encode_logs(logs: Vec<StoredLog>) -> Vec<u8> {
    let resource_logs = by_resource(logs, |l| (l.service.clone(), l.instance.clone()))
        .into_iter()
        .map(|((service, instance), logs)| ResourceLogs {
            resource: Some(resource(&service, instance.as_deref())),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "com.trust.app".to_string(),
                    ..InstrumentationScope::default()
                }),
                log_records: logs
                    .into_iter()
                    .map(|l| LogRecord {
                        time_unix_nano: l.timestamp_ns as u64,
                        observed_time_unix_nano: l.observed_ns as u64,
                        severity_number: l.severity_number,
                        severity_text: l.severity_text.unwrap_or_default(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(l.body)),
                        }),
                        trace_id: l
                            .trace_id
                            .map(|t| t.as_bytes().to_vec())
                            .unwrap_or_default(),
                        span_id: l.span_id.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
                        ..LogRecord::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }.encode_to_vec()
}

/// One pre-encoded request: its body, its record count and raw log text bytes.
struct Body {
    bytes: axum::body::Bytes,
    records: usize,
    text_bytes: usize,
}

struct Encoded {
    bodies: Vec<Body>,
    records: usize,
    text_bytes: usize,
    wire_bytes: usize,
    seconds: f64,
}

/// `_bulk` NDJSON of log lines as Filebeat ships them from Kubernetes containers.
fn encode_bulk(
    logs: Vec<StoredLog>,
    offsets: &mut std::collections::HashMap<String, u64>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for log in logs {
        let pod = log.instance.clone().unwrap_or_else(|| log.service.clone());
        let offset = offsets.entry(pod.clone()).or_default();
        let document = serde_json::json!({
            "@timestamp": chrono::DateTime::from_timestamp_nanos(log.timestamp_ns)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "message": log.body,
            "log": {
                "offset": *offset,
                "file": {"path": format!("/var/log/containers/{pod}_trust_{}-0a1b2c3d.log", log.service)},
            },
            "stream": "stdout",
            "input": {"type": "container"},
            "agent": {"type": "filebeat", "version": "8.11.0", "name": "node-3"},
            "ecs": {"version": "8.0.0"},
            "service": {"name": log.service},
            "host": {"name": pod},
            "kubernetes": {
                "namespace": "trust",
                "pod": {"name": pod},
                "container": {"name": log.service},
                "node": {"name": "node-3"},
            },
        });
        *offset += log.body.len() as u64 + 1;
        out.extend_from_slice(b"{\"create\":{\"_index\":\"filebeat-8.11.0\"}}\n");
        serde_json::to_writer(&mut out, &document).expect("json");
        out.push(b'\n');
    }
    out
}

/// Generates `spans` spans (or `logs` log lines) of the request workload, moved so
/// that the last one lands about a minute before now, in requests of the batch size.
fn encode(signal: &str, target: usize) -> Encoded {
    let started = Instant::now();
    let mut workload = RequestWorkload::new(7);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    let mut count = 0;
    while count < target {
        let (s, l) = workload.request();
        count += if signal == "traces" { s.len() } else { l.len() };
        if signal == "traces" {
            spans.extend(s);
        } else {
            logs.extend(l);
        }
    }
    // Shift the generated clock so that the whole run ends a minute before now.
    let shift = now_ns - 60_000_000_000 - workload.now_ns;
    let mut bodies = Vec::new();
    if signal == "traces" {
        spans.truncate(target);
        for span in &mut spans {
            span.start_ns += shift;
        }
        let mut rest = spans.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<SpanRecord> = rest.by_ref().take(SPANS_PER_REQUEST).collect();
            let records = chunk.len();
            bodies.push(Body {
                bytes: encode_spans(chunk).into(),
                records,
                text_bytes: 0,
            });
        }
    } else {
        logs.truncate(target);
        for log in &mut logs {
            log.timestamp_ns += shift;
            log.observed_ns += shift;
        }
        let mut rest = logs.into_iter().peekable();
        let mut offsets = std::collections::HashMap::new();
        while rest.peek().is_some() {
            let chunk: Vec<StoredLog> = rest.by_ref().take(LOGS_PER_REQUEST).collect();
            let records = chunk.len();
            let text_bytes = chunk.iter().map(|l| l.body.len()).sum();
            let bytes = if signal == "bulk" {
                encode_bulk(chunk, &mut offsets)
            } else {
                encode_logs(chunk)
            };
            bodies.push(Body {
                bytes: bytes.into(),
                records,
                text_bytes,
            });
        }
    }
    Encoded {
        records: bodies.iter().map(|b| b.records).sum(),
        text_bytes: bodies.iter().map(|b| b.text_bytes).sum(),
        wire_bytes: bodies.iter().map(|b| b.bytes.len()).sum(),
        bodies,
        seconds: started.elapsed().as_secs_f64(),
    }
}

// ---------------------------------------------------------------------------------------
// Sending

#[derive(Default)]
struct Sent {
    accepted: u64,
    accepted_text: u64,
    rejected_records: u64,
    failed_requests: u64,
    first_error: Option<String>,
    seconds: f64,
}

/// Records a request's partial success refused (from the protobuf response body, or
/// the `_bulk` items that carry an error).
fn refused(signal: &str, body: &[u8]) -> u64 {
    if signal == "bulk" {
        let reply: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        return reply["items"].as_array().map_or(u64::MAX, |items| {
            items
                .iter()
                .filter(|item| item["create"].get("error").is_some())
                .count() as u64
        });
    }
    if signal == "traces" {
        ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| p.rejected_spans.max(0) as u64)
    } else {
        ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| p.rejected_log_records.max(0) as u64)
    }
}

async fn send(
    url: &str,
    signal: &'static str,
    encoded: &Encoded,
    connections: usize,
    deadline: Duration,
) -> Sent {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let bodies: Arc<Vec<(axum::body::Bytes, usize, usize)>> = Arc::new(
        encoded
            .bodies
            .iter()
            .map(|b| (b.bytes.clone(), b.records, b.text_bytes))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let accepted_text = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let stop_at = started + deadline;
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, bodies, next) = (
            client.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
        );
        let (accepted, accepted_text, rejected, failed, first_error) = (
            accepted.clone(),
            accepted_text.clone(),
            rejected.clone(),
            failed.clone(),
            first_error.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= bodies.len() || Instant::now() >= stop_at {
                    break;
                }
                let (body, records, text) = &bodies[i];
                let mut attempt = 0u32;
                loop {
                    let content_type = if signal == "bulk" {
                        "application/x-ndjson"
                    } else {
                        "application/x-protobuf"
                    };
                    let result = client
                        .post(&url)
                        .header("Content-Type", content_type)
                        .body(body.clone())
                        .send()
                        .await;
                    let error = match result {
                        Ok(response) if response.status().is_success() => {
                            let reply = response.bytes().await.unwrap_or_default();
                            let refused = refused(signal, &reply).min(*records as u64);
                            accepted.fetch_add(*records as u64 - refused, Ordering::SeqCst);
                            rejected.fetch_add(refused, Ordering::SeqCst);
                            if refused == 0 {
                                accepted_text.fetch_add(*text as u64, Ordering::SeqCst);
                            }
                            break;
                        }
                        Ok(response) => {
                            let status = response.status();
                            let retry = status.as_u16() == 429 || status.is_server_error();
                            (retry, format!("{status}"))
                        }
                        Err(e) => (true, e.to_string()),
                    };
                    {
                        let mut first = first_error.lock().expect("lock");
                        if first.is_none() {
                            *first = Some(error.1.clone());
                        }
                    }
                    if error.0 && attempt < 30 && Instant::now() < stop_at {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt.min(10))))
                            .await;
                        continue;
                    }
                    failed.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("sender task");
    }
    let first_error = first_error.lock().expect("lock").take();
    Sent {
        accepted: accepted.load(Ordering::SeqCst),
        accepted_text: accepted_text.load(Ordering::SeqCst),
        rejected_records: rejected.load(Ordering::SeqCst),
        failed_requests: failed.load(Ordering::SeqCst),
        first_error,
        seconds: started.elapsed().as_secs_f64(),
    }
}

// ---------------------------------------------------------------------------------------
// The server

/// `sightline serve` on a free loopback port with a fresh data dir; killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn start() -> Result<Server, String> {
    let dir = tempfile::Builder::new()
        .prefix("otlp-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| e.to_string())?;
    let binary =
        std::env::var("SIGHTLINE_BIN").unwrap_or_else(|_| "target/release/sightline".to_string());
    let child = Command::new(&binary)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .args(["--otlp-http-listen", "off", "--jaeger-listen", "off"])
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let mut server = Server {
        child,
        port,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("sightline exited: {status}"));
        }
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            && response.status().is_success()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("sightline not ready after 90 s".to_string())
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

/// Peak RSS (`VmHWM`), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run(signal: &'static str, encoded: &Encoded, options: &Options) -> Result<(), String> {
    let mut server = start().await?;
    let pid = server.child.id();
    println!("  {signal}: server up, load average {}", load_average());
    let path = match signal {
        "traces" => "/v1/traces",
        "bulk" => "/es/_bulk",
        _ => "/v1/logs",
    };
    let url = format!("http://127.0.0.1:{}{path}", server.port);
    let cpu_start = cpu_seconds(pid);
    let sent = send(
        &url,
        signal,
        encoded,
        options.connections,
        Duration::from_secs(options.seconds),
    )
    .await;
    let cpu_sent = cpu_seconds(pid);
    let flush_started = Instant::now();
    let flushed = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/v1/admin/flush",
            server.port
        ))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map(|r| r.status().to_string())
        .unwrap_or_else(|e| e.to_string());
    let flush_seconds = flush_started.elapsed().as_secs_f64();
    let cpu_flushed = cpu_seconds(pid);
    let rss = peak_rss(pid);
    if let Ok(Some(status)) = server.child.try_wait() {
        return Err(format!("sightline exited during the run: {status}"));
    }
    drop(server);
    let accepted = sent.accepted.max(1) as f64;
    let ingest_cpu = cpu_sent - cpu_start;
    let total_cpu = cpu_flushed - cpu_start;
    println!(
        "  {signal}: {} accepted in {:.1} s, {} refused records, {} failed requests{}; flush {} in {:.1} s; load average {}",
        sent.accepted,
        sent.seconds,
        sent.rejected_records,
        sent.failed_requests,
        sent.first_error
            .as_ref()
            .map(|e| format!(", first error: {e}"))
            .unwrap_or_default(),
        flushed,
        flush_seconds,
        load_average(),
    );
    let unit = if signal == "traces" { "spans" } else { "lines" };
    println!(
        "| {signal} | {} {unit} | {:.0} {unit}/s | {:.1} / {:.1} CPU-s | {:.0} {unit} per CPU-s (ingest) / {:.0} (incl. flush) | {:.0} MiB |",
        sent.accepted,
        accepted / sent.seconds,
        ingest_cpu,
        total_cpu,
        accepted / ingest_cpu.max(1e-9),
        accepted / total_cpu.max(1e-9),
        rss as f64 / (1024.0 * 1024.0),
    );
    if signal != "traces" {
        let mb = sent.accepted_text as f64 / 1e6;
        println!(
            "| {signal} raw text | {mb:.1} MB | {:.1} MB/s | | {:.1} MB per CPU-s (ingest) / {:.1} (incl. flush + index) | |",
            mb / sent.seconds,
            mb / ingest_cpu.max(1e-9),
            mb / total_cpu.max(1e-9),
        );
    }
    Ok(())
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| signal | accepted | accepted/s | server CPU (ingest / incl. flush) | per CPU-second | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    for signal in &options.signals {
        let (signal, target) = match signal.as_str() {
            "traces" | "spans" => ("traces", options.spans),
            "logs" => ("logs", options.logs),
            "bulk" => ("bulk", options.logs),
            other => {
                println!("  unknown signal {other}, skipped");
                continue;
            }
        };
        let encoded = encode(signal, target);
        println!(
            "  {signal}: pre-encoded {} records in {} requests ({:.1} s): {:.0} B/record on the wire{}",
            encoded.records,
            encoded.bodies.len(),
            encoded.seconds,
            encoded.wire_bytes as f64 / encoded.records.max(1) as f64,
            if signal != "traces" {
                format!(
                    ", {:.0} B of text per line",
                    encoded.text_bytes as f64 / encoded.records.max(1) as f64
                )
            } else {
                String::new()
            },
        );
        if let Err(e) = runtime.block_on(run(signal, &encoded, &options)) {
            println!("  {signal}: FAILED: {e}");
        }
    }
}
