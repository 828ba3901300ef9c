//! The peers of tests/scale_out.rs: a PostgreSQL server of the test's own (the shared
//! catalog) and `sightline serve --role ...` processes, each with its own config file,
//! data directory and log file, on free loopback ports, killed when dropped.
#![allow(dead_code)]

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../scale_support/ports.rs"]
mod ports;
#[path = "../scale_support/postgres.rs"]
mod postgres;
pub use ports::free_ports;
pub use postgres::Postgres;

/// How long a process may take to become ready, and a condition to hold.
pub const DEADLINE: Duration = Duration::from_secs(45);

/// How many times a node is started on new ports when one was taken in between.
const START_ATTEMPTS: usize = 3;

/// Polls `check` every 50 ms until it returns `Ok`; fails with its last `Err` after
/// [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; last: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `sightline serve` process: its role, config file and data directory stay the
/// same across restarts; each start gets new ports and appends to the same log file.
pub struct Node {
    pub name: String,
    role: &'static str,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    http: SocketAddr,
}

impl Node {
    /// Writes `config_text` as the node's config file and starts the process.
    pub fn start(dir: &Path, name: &str, role: &'static str, config_text: &str) -> Node {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text).expect("write config");
        let mut node = Node {
            name: name.to_string(),
            role,
            config,
            data_dir: dir.join(name),
            log: dir.join(format!("{name}.log")),
            child: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let [http, grpc] = free_ports::<2>();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--role", self.role])
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
            .stderr(log)
            .spawn()
            .expect("start sightline");
        self.child = Some(child);
        self.http = http;
    }

    /// `http://127.0.0.1:<port>` of the main listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Everything the node logged, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/ready` answers 200 (storage open), failing if the process exits
    /// (but for a port taken between choosing it and binding it: then it starts again).
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut attempts = 1;
        loop {
            let url = format!("{}/ready", self.url());
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                let log = self.log();
                if attempts < START_ATTEMPTS && log.contains("Address already in use") {
                    attempts += 1;
                    self.spawn();
                    continue;
                }
                panic!("{} exited ({status}) before ready; log:\n{log}", self.name);
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
                "{} not ready in time; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Starts the process again on the same config and data directory (new ports).
    pub async fn restart(&mut self) {
        self.kill_9();
        self.spawn();
        self.wait_ready().await;
    }

    /// `POST /api/v1/admin/flush`; returns the segments written.
    pub async fn flush(&self) -> u64 {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/admin/flush", self.url()))
            .send()
            .await
            .expect("flush");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("flush body");
        assert!(status.is_success(), "{}: flush: {status} {body}", self.name);
        body["data"]["segments"].as_u64().expect("segments")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_9();
    }
}
