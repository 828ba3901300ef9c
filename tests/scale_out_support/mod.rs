//! The peers of tests/scale_out.rs: a PostgreSQL server of the test's own (the shared
//! catalog) and `sightline serve --role ...` processes, each with its own config file,
//! data directory and log file, on free loopback ports, killed when dropped.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to become ready, and a condition to hold.
pub const DEADLINE: Duration = Duration::from_secs(45);

const PASSWORD: &str = "scale-out-test-password";

/// Ports that were free a moment ago; all bound at once so they differ from each other.
/// Drawn below Linux's ephemeral range, where other tests' `bind(0)` and outgoing
/// connections cannot take them before the process binds them.
pub fn free_ports<const N: usize>() -> [SocketAddr; N] {
    use rand::{Rng, SeedableRng};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(nanos ^ u64::from(std::process::id()));
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(N);
    let mut tries = 0;
    while listeners.len() < N {
        tries += 1;
        let port: u16 = rng.random_range(20_000..32_000);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
        assert!(tries < 10_000, "no free port below 32000");
    }
    std::array::from_fn(|index| listeners[index].local_addr().expect("addr"))
}

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

/// A PostgreSQL server of the test's own (Debian `postgresql`, installed by
/// scripts/test-deps/postgres.sh), stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    server: Child,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `program` as the `postgres` user when we are root (initdb and postgres refuse root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn postgres_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgresql is installed (scripts/test-deps/postgres.sh)")
        .map(|entry| entry.expect("entry").path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|dir| {
        dir.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().expect("an initdb under /usr/lib/postgresql")
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Postgres {
    /// initdb in a temporary directory, then the server on a free loopback port, with
    /// password authentication over TCP.
    pub fn start() -> Postgres {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password");
        if is_root() {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "sightline", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display())));
        let [port] = free_ports::<1>();
        let port = port.port();
        let server = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let postgres = Postgres {
            dir,
            bin,
            port,
            server,
        };
        let start = Instant::now();
        loop {
            let ready = Command::new(postgres.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        postgres
    }

    /// `postgres://sightline@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://sightline@127.0.0.1:{}/postgres", self.port)
    }

    /// The file holding the password of `sightline`.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// The rows of `sql` through psql, one line each, columns joined by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "sightline", "-d", "postgres", "-tAc", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The single value of `sql`.
    pub fn value(&self, sql: &str) -> String {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0].clone()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["stop", "-m", "immediate", "-w"])
            .output();
        let _ = self.server.kill();
        let _ = self.server.wait();
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
