//! A Sightline server started in-process for integration tests: every listener on
//! `127.0.0.1:0`, data in a temporary directory, stopped when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline::{Config, Listen, Running};
use storage::Storage;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server and waits until it is ready.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with a tweaked config and waits until it is ready.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = Config::default();
        config.server.listen = any;
        config.server.grpc_listen = any;
        config.server.otlp_http_listen = Listen::On(any);
        config.server.jaeger_listen = Listen::Off;
        config.server.es_listen = Listen::Off;
        config.server.data_dir = dir.path().to_path_buf();
        tweak(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = sightline::run(config, async move {
            let _ = stopped.await;
        })
        .await
        .expect("server starts");
        let start = Instant::now();
        while !running.is_ready() {
            assert!(start.elapsed() < DEADLINE, "storage did not open in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        TestServer {
            running: Some(running),
            dir,
            stop: Some(stop),
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    /// `http://127.0.0.1:<port>` of the main listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.running().http_addr())
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.running().http_addr()
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.running().grpc_addr()
    }

    pub fn otlp_http_addr(&self) -> SocketAddr {
        self.running()
            .otlp_http_addr()
            .expect("otlp http listener is on")
    }

    /// `http://127.0.0.1:<port>` of the Jaeger query listener; start the server with
    /// `config.server.jaeger_listen = Listen::On(127.0.0.1:0)` to have one.
    #[allow(dead_code)]
    pub fn jaeger_url(&self) -> String {
        let addr = self.running().jaeger_addr().expect("jaeger listener is on");
        format!("http://{addr}")
    }

    /// The service every write protocol goes through.
    pub fn ingest(&self) -> &ingest::IngestService {
        self.running().ingest()
    }

    /// The storage engine, to read back what was ingested.
    pub fn storage(&self) -> Arc<Storage> {
        self.running().storage().expect("storage is open")
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            tokio::time::timeout(DEADLINE, running.wait())
                .await
                .expect("shutdown in time")
                .expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `condition` every 20 ms until it holds or the deadline passes.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a command to completion and fails the test with its output if it fails.
pub fn run_command(command: &mut std::process::Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
