//! A real S3 gateway for tests and benchmarks: SeaweedFS (`weed server -s3`, installed by
//! `scripts/test-deps/seaweedfs.sh`) started on free loopback ports in a temporary
//! directory, with one static identity, and killed when dropped.
//!
//! Ready means writable, not only listable. The filer and the S3 gateway answer (a
//! bucket can be created and listed) before the volume server has registered with the
//! master; a PUT in that window waits inside SeaweedFS until it has, and then until the
//! master has grown the bucket's volumes. With a multi-master raft bootstrap the volume
//! server's first heartbeat lands before the election ("Not current leader") and the
//! next one comes seconds later, longer on a loaded machine: that was the first segment
//! PUT timing out under CI load. So the master runs as a lone master (`-master.peers=none`,
//! leader at once), and `start` returns only once the master assigns a file id in the
//! bucket's collection, which also grows its volumes before any test writes.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;

pub const ACCESS_KEY: &str = "sightline-test";
pub const SECRET_KEY: &str = "sightline-test-secret";
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running SeaweedFS master + volume + filer + S3 gateway.
pub struct Seaweed {
    child: Child,
    dir: tempfile::TempDir,
    s3_port: u16,
    filer_port: u16,
    master_port: u16,
}

/// Ports that were free a moment ago; all bound at once so they differ from each other.
///
/// They are drawn below Linux's ephemeral range (32768 and up), where `bind(0)` and
/// outgoing connections of the other tests take theirs: weed binds them only a moment
/// later, and a port from the ephemeral range may be gone by then.
fn free_ports<const N: usize>() -> [u16; N] {
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
    std::array::from_fn(|index| listeners[index].local_addr().expect("addr").port())
}

/// How many times `start` tries new ports when one was taken before weed bound it.
const START_ATTEMPTS: usize = 3;

/// The `weed` binary: `$WEED` if set, else the first `weed` on `PATH`.
fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WEED") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
        .expect("the weed binary (SeaweedFS) is not on PATH: run scripts/test-deps/seaweedfs.sh")
}

impl Seaweed {
    /// Starts SeaweedFS with the buckets given and waits until its S3 API lists them and
    /// its master can place writes in them. A start whose port was taken by another
    /// process in between is made again on new ports.
    pub async fn start(buckets: &[&str]) -> Seaweed {
        for attempt in 1..=START_ATTEMPTS {
            let mut seaweed = Seaweed::spawn();
            let mut outcome = Ok(());
            for bucket in buckets {
                outcome = seaweed.create_bucket(bucket).await;
                if outcome.is_err() {
                    break;
                }
            }
            match outcome {
                Ok(()) => return seaweed,
                Err(error)
                    if attempt < START_ATTEMPTS && error.contains("address already in use") =>
                {
                    continue;
                }
                Err(error) => panic!("{error}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn() -> Seaweed {
        let dir = tempfile::tempdir().expect("tempdir");
        let identities = serde_json::json!({"identities": [{
            "name": "sightline",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        let s3_config = dir.path().join("s3.json");
        std::fs::write(&s3_config, identities.to_string()).expect("write s3.json");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let [
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3,
            s3_grpc,
        ] = free_ports::<8>();
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("weed.log");
        let child = Command::new(weed_binary())
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg("-master.telemetry=false")
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            // A single master is leader at once: no raft bootstrap for heartbeats to race.
            .arg("-master.peers=none")
            .arg("-master.volumeSizeLimitMB=64")
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg("-volume.max=16")
            .arg("-filer")
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.config={}", s3_config.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start weed server");
        Seaweed {
            child,
            dir,
            s3_port: s3,
            filer_port: filer,
            master_port: master,
        }
    }

    /// `http://127.0.0.1:<port>` of the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The gateway's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// A credentials file (AWS shared-credentials format) with the given secret.
    pub fn credentials_file(&self, dir: &Path, secret: &str) -> PathBuf {
        let path = dir.join("s3-credentials");
        std::fs::write(
            &path,
            format!(
                "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {secret}\n"
            ),
        )
        .expect("write credentials");
        path
    }

    /// A client of `bucket`, to look at what the server uploaded.
    pub fn client(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .expect("s3 client"),
        )
    }

    /// Every key under `prefix` in `bucket`, sorted.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let client = self.client(bucket);
        let prefix = ObjectPath::from(prefix);
        let mut keys: Vec<String> = client
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("list bucket");
        keys.sort();
        keys
    }

    /// An error if weed has exited or `START_DEADLINE` has passed.
    fn check_alive(&mut self, started: Instant, waiting_for: &str) -> Result<(), String> {
        if let Some(status) = self.child.try_wait().expect("weed status") {
            return Err(format!(
                "weed exited ({status}) while starting; log:\n{}",
                self.log()
            ));
        }
        if started.elapsed() > START_DEADLINE {
            return Err(format!(
                "SeaweedFS: no {waiting_for} in time; log:\n{}",
                self.log()
            ));
        }
        Ok(())
    }

    /// Creates a bucket (a directory under `/buckets` of the filer), waits until the S3
    /// API lists it, then until the master assigns a file id in its collection (a
    /// volume server has registered and the collection's volumes are grown).
    async fn create_bucket(&mut self, bucket: &str) -> Result<(), String> {
        // Every request is short: a step that does not answer is retried, never waited on.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/buckets/{bucket}/", self.filer_port);
        loop {
            self.check_alive(started, &format!("bucket {bucket}"))?;
            // 201 when created; 409 when an earlier attempt created it.
            let created = http.post(&url).send().await.is_ok_and(|r| {
                r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT
            });
            if created {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let client = self.client(bucket);
        loop {
            self.check_alive(started, &format!("listing of bucket {bucket}"))?;
            let listed =
                tokio::time::timeout(Duration::from_secs(2), client.list_with_delimiter(None))
                    .await
                    .is_ok_and(|listed| listed.is_ok());
            if listed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let assign = format!(
            "http://127.0.0.1:{}/dir/assign?collection={bucket}",
            self.master_port
        );
        loop {
            self.check_alive(started, &format!("writable volume for bucket {bucket}"))?;
            let assigned = match http.get(&assign).send().await {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|body| body["fid"].is_string()),
                Err(_) => false,
            };
            if assigned {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
