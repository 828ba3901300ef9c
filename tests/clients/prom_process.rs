//! A real Prometheus (`/usr/bin/prometheus`, Debian package, installed by
//! `scripts/test-deps/prometheus.sh`) started for one test and killed when dropped.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub const BINARY: &str = "/usr/bin/prometheus";

/// A running Prometheus with its own config and TSDB in a temporary directory.
pub struct PrometheusProcess {
    child: Child,
    pub dir: tempfile::TempDir,
    pub listen: SocketAddr,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// The `(major, minor)` version of the installed binary.
pub fn version() -> (u32, u32) {
    let output = Command::new(BINARY)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("{BINARY} is missing ({e}); run scripts/test-deps/prometheus.sh")
        });
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("cannot read the version from {text:?}"));
    let mut numbers = word
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok());
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

impl PrometheusProcess {
    /// Writes `config` (YAML; `{listen}` is replaced by Prometheus' own address) and starts
    /// Prometheus with it.
    pub fn start(config: &str) -> PrometheusProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(
            &config_path,
            config.replace("{listen}", &listen.to_string()),
        )
        .expect("write config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("create log");
        let log_err = log.try_clone().expect("clone log handle");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {BINARY} ({e}); run scripts/test-deps/prometheus.sh")
            });
        PrometheusProcess { child, dir, listen }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    /// Prometheus' own output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
