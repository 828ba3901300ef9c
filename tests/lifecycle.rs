//! The real `sightline` binary: start, health, readiness, self-metrics, admin flush,
//! SIGTERM, and a bad config. Every listener binds 127.0.0.1 on a free port; every
//! wait polls with a deadline.

use std::fs::File;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const START_DEADLINE: Duration = Duration::from_secs(30);
/// The server's default `shutdown_grace` is 10 s; allow start-up noise on top.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

/// Ports that were free a moment ago; all bound at once so they differ from each other.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|index| listeners[index].local_addr().unwrap().port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A `sightline` child process with its own temporary directory, killed on drop.
struct Process {
    child: Child,
    stderr_path: PathBuf,
    dir: TempDir,
}

impl Process {
    /// Spawns `sightline` as `configure` sets it up (given a fresh tempdir), stderr to a file there.
    fn spawn(configure: impl FnOnce(&mut Command, &Path)) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sightline"));
        command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap());
        configure(&mut command, dir.path());
        let child = command.spawn().unwrap();
        Process {
            child,
            stderr_path,
            dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls `check` every 20 ms until it returns true; panics with the process's log
    /// if the deadline passes or the process exits first.
    async fn wait_until<F, Fut>(&mut self, what: &str, deadline: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if check().await {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "server exited ({status}) before {what}; log:\n{}",
                    self.stderr()
                );
            }
            if start.elapsed() > deadline {
                panic!("timed out waiting for {what}; log:\n{}", self.stderr());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_ready(&mut self, http: SocketAddr) {
        let client = reqwest::Client::new();
        let url = format!("http://{http}/ready");
        self.wait_until("/ready to answer 200", START_DEADLINE, || {
            let request = client.get(&url).send();
            async move { request.await.is_ok_and(|response| response.status() == 200) }
        })
        .await;
    }

    fn terminate(&self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }

    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > deadline {
                panic!("still running after {deadline:?}; log:\n{}", self.stderr());
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sightline serve` with every listener on its own loopback port.
struct Server {
    process: Process,
    http: SocketAddr,
    grpc: SocketAddr,
    otlp_http: SocketAddr,
    jaeger: SocketAddr,
    es: SocketAddr,
}

impl Server {
    async fn start_ready() -> Server {
        let [http, grpc, otlp_http, jaeger, es] = free_ports::<5>().map(loopback);
        let mut process = Process::spawn(|command, dir| {
            command
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.join("data"))
                .args(["--listen", &http.to_string()])
                .args(["--grpc-listen", &grpc.to_string()])
                .args(["--otlp-http-listen", &otlp_http.to_string()])
                .args(["--jaeger-listen", &jaeger.to_string()])
                .args(["--es-listen", &es.to_string()]);
        });
        process.wait_ready(http).await;
        Server {
            process,
            http,
            grpc,
            otlp_http,
            jaeger,
            es,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

#[tokio::test]
async fn health_and_ready_answer_on_every_http_listener() {
    let server = Server::start_ready().await;
    let client = reqwest::Client::new();
    for addr in [server.http, server.otlp_http, server.jaeger, server.es] {
        for path in ["/health", "/ready"] {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{addr}{path}");
        }
    }
    // The OTLP/gRPC port is reserved (bound) until the ingest work serves it.
    TcpStream::connect(server.grpc).unwrap();
    assert!(server.process.dir.path().join("data").is_dir());
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = Server::start_ready().await;
    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    check_exposition_format(&text);
    assert!(text.contains("\nsightline_ready 1\n"), "{text}");
    assert!(text.contains("\nsightline_wal_records_total "), "{text}");
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
}

/// Checks the text exposition format: HELP/TYPE comments, then samples
/// `name{label="value",...} number`, each name declared by a TYPE line before it.
fn check_exposition_format(text: &str) {
    let is_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed = Vec::new();
    let mut samples = 0;
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(is_name(name), "bad metric name in {line:?}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind));
            typed.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(is_name(rest.split(' ').next().unwrap()), "{line:?}");
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = series.split('{').next().unwrap();
            assert!(is_name(name), "bad metric name in {line:?}");
            if let Some(labels) = series
                .strip_prefix(name)
                .filter(|labels| !labels.is_empty())
            {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line:?}");
            }
            assert!(
                typed.iter().any(|typed_name| typed_name == name),
                "{name} has no TYPE line"
            );
            samples += 1;
        }
    }
    assert!(samples > 0);
    assert!(typed.iter().any(|name| name.starts_with("sightline_")));
}

#[tokio::test]
async fn admin_flush_answers_json_once_done() {
    let server = Server::start_ready().await;
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/admin/flush"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "success", "{body}");
    for field in ["segments", "rows", "bytes"] {
        assert!(body["data"][field].is_u64(), "{body}");
    }
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let mut server = Server::start_ready().await;
    server.process.terminate();
    let status = server.process.wait_exit(EXIT_DEADLINE);
    let log = server.process.stderr();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(log.contains("storage closed"), "{log}");
}

#[tokio::test]
async fn serve_without_data_dir_uses_data_in_the_working_directory() {
    let [http, grpc] = free_ports::<2>().map(loopback);
    let mut process = Process::spawn(|command, dir| {
        command
            .current_dir(dir)
            .args(["serve", "--listen", &http.to_string()])
            .args(["--grpc-listen", &grpc.to_string()])
            .args(["--otlp-http-listen", "off", "--jaeger-listen", "off"]);
    });
    process.wait_ready(http).await;
    assert!(process.dir.path().join("data").is_dir());
}

#[test]
fn unknown_config_key_fails_naming_the_key() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrong_key.toml");
    let mut process = Process::spawn(|command, dir| {
        command
            .arg("serve")
            .arg("--config")
            .arg(&fixture)
            .arg("--data-dir")
            .arg(dir.join("data"));
    });
    let status = process.wait_exit(EXIT_DEADLINE);
    let stderr = process.stderr();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("data_directory"), "{stderr}");
}
