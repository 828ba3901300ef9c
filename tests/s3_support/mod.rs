//! A real S3 gateway for tests and benchmarks: SeaweedFS (`weed server -s3`, installed by
//! `scripts/test-deps/seaweedfs.sh`) started on free loopback ports in a temporary
//! directory, with one static identity, and killed when dropped.
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
}

/// Ports that were free a moment ago; all bound at once so they differ from each other.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|index| listeners[index].local_addr().expect("addr").port())
}

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
    /// Starts SeaweedFS with the buckets given and waits until its S3 API lists them.
    pub async fn start(buckets: &[&str]) -> Seaweed {
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
        let mut seaweed = Seaweed {
            child,
            dir,
            s3_port: s3,
            filer_port: filer,
        };
        for bucket in buckets {
            seaweed.create_bucket(bucket).await;
        }
        seaweed
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

    /// Creates a bucket (a directory under `/buckets` of the filer) and waits until the
    /// S3 API lists it.
    async fn create_bucket(&mut self, bucket: &str) {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/buckets/{bucket}/", self.filer_port);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("weed status") {
                panic!(
                    "weed exited ({status}) while starting; log:\n{}",
                    self.log()
                );
            }
            let created = http
                .post(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if created {
                let client = self.client(bucket);
                if client.list_with_delimiter(None).await.is_ok() {
                    return;
                }
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "SeaweedFS did not serve bucket {bucket} in time; log:\n{}",
                self.log()
            );
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
