//! What a Prometheus user configures beyond a plain target: `https` with `tls_config`
//! (against `openssl s_server` with a certificate signed by a CA the test makes),
//! `basic_auth` / `authorization`, `params`, `metrics_path`, `relabel_configs`,
//! `metric_relabel_configs`, `sample_limit` after relabelling, and YAML file SD.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use ingest::scrape::{
    Authorization, BasicAuth, FileSdConfig, RelabelAction, RelabelConfig, ScrapeConfig,
    StaticConfig, TlsConfig,
};
use proto::HumanDuration;

use crate::common::{TestServer, run_command, wait_until};
use crate::{job, select, series_values};

const METRICS: &str = "# TYPE http_requests_total counter\n\
http_requests_total{code=\"200\"} 10\n\
http_requests_total{code=\"500\"} 2\n\
# TYPE go_threads gauge\n\
go_threads 5\n";

/// A free loopback port (bound, then released for the child process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes a CA and a server certificate for `localhost` / 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        run_command(Command::new("openssl").args(args).current_dir(dir));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=sightline-test-ca",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    run(&ca);
    let mut request = vec!["req", "-subj", "/CN=localhost"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr"]);
    run(&request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

/// `openssl s_server -WWW`: serves the files of `dir` over TLS (`GET /metrics` → `metrics`).
struct HttpsTarget {
    child: Child,
    port: u16,
}

impl HttpsTarget {
    fn start(dir: &Path) -> HttpsTarget {
        std::fs::write(dir.join("metrics"), "tls_scraped_total 7\n").unwrap();
        let port = free_port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-cert",
                "server.pem",
                "-key",
                "server.key",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        HttpsTarget { child, port }
    }
}

impl Drop for HttpsTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn https_job(name: &str, address: String, tls_config: TlsConfig) -> ScrapeConfig {
    ScrapeConfig {
        scheme: "https".to_string(),
        tls_config,
        ..job(name, vec![address])
    }
}

async fn wait_for_up(server: &TestServer, job: &'static str, value: f64) {
    let storage = server.storage();
    wait_until(&format!("up{{job={job:?}}} = {value}"), || {
        let storage = storage.clone();
        async move {
            series_values(&storage, &[("__name__", "up"), ("job", job)])
                .await
                .contains(&value)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_https_with_a_ca_file_or_without_verification() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let target = HttpsTarget::start(dir.path());
    let ca_file = dir.path().join("ca.pem").display().to_string();
    let port = target.port;
    let server = TestServer::start_with(|config| {
        config.ingest.scrape_configs = vec![
            https_job(
                "tls-ca",
                format!("localhost:{port}"),
                TlsConfig {
                    ca_file: Some(ca_file),
                    ..TlsConfig::default()
                },
            ),
            https_job(
                "tls-skip",
                format!("127.0.0.1:{port}"),
                TlsConfig {
                    insecure_skip_verify: true,
                    ..TlsConfig::default()
                },
            ),
            https_job(
                "tls-untrusted",
                format!("localhost:{port}"),
                TlsConfig::default(),
            ),
        ];
    })
    .await;
    wait_for_up(&server, "tls-ca", 1.0).await;
    wait_for_up(&server, "tls-skip", 1.0).await;
    wait_for_up(&server, "tls-untrusted", 0.0).await;
    let storage = server.storage();
    for job in ["tls-ca", "tls-skip"] {
        let values =
            series_values(&storage, &[("__name__", "tls_scraped_total"), ("job", job)]).await;
        assert!(values.contains(&7.0), "{job}: {values:?}");
    }
    assert!(
        select(
            &storage,
            &[("__name__", "tls_scraped_total"), ("job", "tls-untrusted")]
        )
        .is_empty()
    );
    let untrusted = series_values(&storage, &[("__name__", "up"), ("job", "tls-untrusted")]).await;
    assert!(!untrusted.contains(&1.0), "{untrusted:?}");
    server.stop().await;
}

/// A target that wants `Basic user:pass` on `/custom/path` (echoing its query
/// parameters as `probe_target{…}`) and `Bearer s3cret` on `/bearer`.
async fn start_auth_target() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let authorized = |headers: &HeaderMap, expected: &str| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(expected)
    };
    let router = Router::new()
        .route(
            "/custom/path",
            get(
                move |headers: HeaderMap, RawQuery(query): RawQuery| async move {
                    // base64("user:pass")
                    if !authorized(&headers, "Basic dXNlcjpwYXNz") {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let labels: Vec<String> = query
                        .unwrap_or_default()
                        .split('&')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| format!("{k}=\"{}\"", v.replace("%3A", ":")))
                        .collect();
                    let body = format!("probe_target{{{}}} 1\n{METRICS}", labels.join(","));
                    (StatusCode::OK, body)
                },
            ),
        )
        .route(
            "/bearer",
            get(move |headers: HeaderMap| async move {
                if !authorized(&headers, "Bearer s3cret") {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                (StatusCode::OK, METRICS.to_string())
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

fn relabel(action: RelabelAction, edit: impl FnOnce(&mut RelabelConfig)) -> RelabelConfig {
    let mut config = RelabelConfig {
        action,
        ..RelabelConfig::default()
    };
    edit(&mut config);
    config
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_params_relabelling_limits_and_yaml_file_sd() {
    let target = start_auth_target().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let sd_file = dir.path().join("bearer-targets.yml");
    std::fs::write(
        &sd_file,
        format!(
            "# written by the test\n- targets:\n  - '{target}'\n  labels:\n    team: payments\n"
        ),
    )
    .unwrap();

    // The exporter pattern: the configured "targets" are devices, passed as
    // ?target=…, while the scrape goes to the exporter's own address.
    let probe = ScrapeConfig {
        metrics_path: "/custom/path".to_string(),
        params: BTreeMap::from([("module".to_string(), strings(&["if_mib"]))]),
        basic_auth: Some(BasicAuth {
            username: "user".to_string(),
            password: Some("pass".to_string()),
            password_file: None,
        }),
        static_configs: vec![
            StaticConfig {
                targets: strings(&["switch-1:161"]),
                labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            },
            StaticConfig {
                targets: strings(&["switch-2:161"]),
                labels: BTreeMap::from([("env".to_string(), "test".to_string())]),
            },
        ],
        relabel_configs: vec![
            relabel(RelabelAction::Drop, |r| {
                r.source_labels = strings(&["env"]);
                r.regex = "test".to_string();
            }),
            relabel(RelabelAction::Hashmod, |r| {
                r.source_labels = strings(&["__address__"]);
                r.target_label = "__tmp_shard".to_string();
                r.modulus = 1;
            }),
            relabel(RelabelAction::Keep, |r| {
                r.source_labels = strings(&["__tmp_shard"]);
                r.regex = "0".to_string();
            }),
            relabel(RelabelAction::Replace, |r| {
                r.source_labels = strings(&["__address__"]);
                r.target_label = "__param_target".to_string();
            }),
            relabel(RelabelAction::Replace, |r| {
                r.source_labels = strings(&["__param_target"]);
                r.target_label = "instance".to_string();
            }),
            relabel(RelabelAction::Replace, |r| {
                r.target_label = "__address__".to_string();
                r.replacement = target.to_string();
            }),
        ],
        metric_relabel_configs: vec![
            relabel(RelabelAction::Drop, |r| {
                r.source_labels = strings(&["__name__"]);
                r.regex = "go_.*".to_string();
            }),
            relabel(RelabelAction::Labelmap, |r| {
                r.regex = "code".to_string();
                r.replacement = "status_code".to_string();
            }),
            relabel(RelabelAction::Labeldrop, |r| r.regex = "code".to_string()),
        ],
        // 4 samples exposed, 3 kept after metric relabelling: within the limit.
        sample_limit: 3,
        ..job("probe", Vec::new())
    };
    let bearer_sd = ScrapeConfig {
        metrics_path: "/bearer".to_string(),
        authorization: Some(Authorization {
            credentials_file: Some(token_file.display().to_string()),
            ..Authorization::default()
        }),
        file_sd_configs: vec![FileSdConfig {
            files: vec![dir.path().join("*.yml").display().to_string()],
            refresh_interval: HumanDuration::secs(1),
        }],
        relabel_configs: vec![relabel(RelabelAction::Replace, |r| {
            r.source_labels = strings(&["__meta_filepath"]);
            r.regex = ".*/(.+)\\.yml".to_string();
            r.target_label = "sd_file".to_string();
        })],
        ..job("bearer", Vec::new())
    };
    let over_limit = ScrapeConfig {
        metrics_path: "/bearer".to_string(),
        authorization: Some(Authorization {
            credentials: Some("s3cret".to_string()),
            ..Authorization::default()
        }),
        sample_limit: 2,
        ..job("over-limit", vec![target.to_string()])
    };
    let wrong_password = ScrapeConfig {
        metrics_path: "/custom/path".to_string(),
        basic_auth: Some(BasicAuth {
            username: "user".to_string(),
            password: Some("wrong".to_string()),
            password_file: None,
        }),
        ..job("wrong-password", vec![target.to_string()])
    };
    let server = TestServer::start_with(|config| {
        config.ingest.scrape_configs = vec![probe, bearer_sd, over_limit, wrong_password];
    })
    .await;
    wait_for_up(&server, "probe", 1.0).await;
    wait_for_up(&server, "bearer", 1.0).await;
    wait_for_up(&server, "over-limit", 0.0).await;
    wait_for_up(&server, "wrong-password", 0.0).await;
    let storage = server.storage();

    // Params reached the target: module from `params`, target from relabelling.
    let probe_series = select(&storage, &[("__name__", "probe_target"), ("job", "probe")]);
    assert_eq!(probe_series.len(), 1, "{probe_series:?}");
    let labels: BTreeMap<&str, &str> = probe_series[0].1.iter().collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("__name__", "probe_target"),
            ("env", "prod"),
            ("instance", "switch-1:161"),
            ("job", "probe"),
            ("module", "if_mib"),
            ("target", "switch-1:161"),
        ])
    );
    // The env=test device was dropped by target relabelling: never scraped.
    assert!(
        select(
            &storage,
            &[("__name__", "up"), ("instance", "switch-2:161")]
        )
        .is_empty()
    );
    // Metric relabelling: go_* dropped, code renamed to status_code.
    assert!(select(&storage, &[("__name__", "go_threads"), ("job", "probe")]).is_empty());
    let requests = select(
        &storage,
        &[("__name__", "http_requests_total"), ("job", "probe")],
    );
    let codes: Vec<(Option<&str>, Option<&str>)> = requests
        .iter()
        .map(|(_, labels)| (labels.get("status_code"), labels.get("code")))
        .collect();
    assert_eq!(codes.len(), 2, "{requests:?}");
    assert!(codes.contains(&(Some("200"), None)) && codes.contains(&(Some("500"), None)));

    // Bearer token from a file; target found in a YAML file, its path relabelled.
    let bearer = select(&storage, &[("__name__", "go_threads"), ("job", "bearer")]);
    assert_eq!(bearer.len(), 1);
    assert_eq!(bearer[0].1.get("team"), Some("payments"));
    assert_eq!(bearer[0].1.get("sd_file"), Some("bearer-targets"));
    assert_eq!(
        bearer[0].1.get("instance"),
        Some(target.to_string().as_str())
    );
    // Over the sample limit or unauthorised: up = 0 and nothing stored.
    for job in ["over-limit", "wrong-password"] {
        assert!(
            select(
                &storage,
                &[("__name__", "http_requests_total"), ("job", job)]
            )
            .is_empty(),
            "{job}"
        );
    }
    server.stop().await;
}
