//! The Prometheus scraper against real targets: a real Prometheus' own `/metrics`,
//! Sightline's own `/metrics` found through a file-SD JSON file, and a small axum
//! target that goes down (up = 0, staleness markers) or exposes a conflicting `job`;
//! TLS, authentication, params, relabelling, limits and YAML file SD in [`secured`].

mod common;
#[path = "clients/prom_process.rs"]
mod prom_process;
#[path = "ingest_scrape/secured.rs"]
mod secured;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{Array, Float64Array};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use common::{TestServer, wait_until};
use ingest::scrape::{FileSdConfig, ScrapeConfig, StaticConfig};
use proto::{HumanDuration, SeriesId, TenantId};
use storage::Storage;
use storage::metrics::MetricType;
use storage::series::{Labels, MatchOp, Matcher};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

fn job(name: &str, targets: Vec<String>) -> ScrapeConfig {
    ScrapeConfig {
        job_name: name.to_string(),
        scrape_interval: HumanDuration::secs(1),
        scrape_timeout: HumanDuration::millis(900),
        static_configs: if targets.is_empty() {
            Vec::new()
        } else {
            vec![StaticConfig {
                targets,
                labels: BTreeMap::new(),
            }]
        },
        ..ScrapeConfig::default()
    }
}

fn select(storage: &Storage, matchers: &[(&str, &str)]) -> Vec<(SeriesId, Labels)> {
    let matchers: Vec<Matcher> = matchers
        .iter()
        .map(|(name, value)| Matcher::new(MatchOp::Equal, *name, *value).unwrap())
        .collect();
    storage.select_series(&TenantId::default(), &matchers, 0, i64::MAX)
}

async fn values(storage: &Storage, id: SeriesId) -> Vec<f64> {
    let batch = storage
        .scan_samples(&TenantId::default(), &[id], 0, i64::MAX)
        .await
        .unwrap();
    let column = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    (0..column.len()).map(|row| column.value(row)).collect()
}

/// Values of the single series matching `matchers` (empty if none yet).
async fn series_values(storage: &Storage, matchers: &[(&str, &str)]) -> Vec<f64> {
    match select(storage, matchers).first() {
        Some((id, _)) => values(storage, *id).await,
        None => Vec::new(),
    }
}

/// A tiny target serving `body` as text 0.0.4 on `/metrics` until stopped.
struct Target {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Target {
    async fn start(body: &'static str) -> Target {
        Self::start_with(
            "text/plain; version=0.0.4; charset=utf-8",
            body.as_bytes().to_vec(),
            false,
        )
        .await
    }

    /// Serves `body` with `content_type`, gzip-compressed (`Content-Encoding: gzip`) when asked.
    async fn start_with(content_type: &'static str, body: Vec<u8>, gzip: bool) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, &body).unwrap();
            encoder.finish().unwrap()
        } else {
            body
        };
        let encoding = if gzip { "gzip" } else { "identity" };
        let router = Router::new().route(
            "/metrics",
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, content_type),
                            (header::CONTENT_ENCODING, encoding),
                        ],
                        body,
                    )
                }
            }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Target {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_real_prometheus() {
    let prometheus = prom_process::PrometheusProcess::start("global:\n  scrape_interval: 1h\n");
    let address = prometheus.listen.to_string();
    let server = TestServer::start_with(|config| {
        config.ingest.scrape_configs = vec![job("prometheus", vec![address.clone()])];
    })
    .await;
    let storage = server.storage();
    wait_until("up{job=\"prometheus\"} = 1", || {
        let storage = storage.clone();
        async move {
            series_values(&storage, &[("__name__", "up"), ("job", "prometheus")])
                .await
                .contains(&1.0)
        }
    })
    .await;
    let instance = address.as_str();
    wait_until("prometheus_build_info and a histogram family", || {
        let storage = storage.clone();
        async move {
            !select(
                &storage,
                &[
                    ("__name__", "prometheus_build_info"),
                    ("job", "prometheus"),
                    ("instance", instance),
                ],
            )
            .is_empty()
                && !select(
                    &storage,
                    &[
                        (
                            "__name__",
                            "prometheus_http_request_duration_seconds_bucket",
                        ),
                        ("job", "prometheus"),
                        ("instance", instance),
                        ("le", "+Inf"),
                    ],
                )
                .is_empty()
        }
    })
    .await;
    let build_info = select(&storage, &[("__name__", "prometheus_build_info")]);
    let (id, labels) = &build_info[0];
    assert!(labels.get("version").is_some(), "{labels:?}");
    assert_eq!(values(&storage, *id).await.last(), Some(&1.0));
    let sum = select(
        &storage,
        &[
            ("__name__", "prometheus_http_request_duration_seconds_count"),
            ("job", "prometheus"),
        ],
    );
    assert!(!sum.is_empty());
    let metadata = storage.metric_metadata(&TenantId::default());
    let histogram = metadata
        .iter()
        .find(|m| m.metric == "prometheus_http_request_duration_seconds")
        .expect("histogram metadata");
    assert_eq!(histogram.kind, MetricType::Histogram);
    assert!(!histogram.help.is_empty());
    let build_meta = metadata
        .iter()
        .find(|m| m.metric == "prometheus_build_info")
        .expect("build_info metadata");
    assert_eq!(build_meta.kind, MetricType::Gauge);
    // The synthetic series of the scrape.
    assert!(
        !select(
            &storage,
            &[
                ("__name__", "scrape_duration_seconds"),
                ("job", "prometheus")
            ]
        )
        .is_empty()
    );
    let scraped = series_values(
        &storage,
        &[
            ("__name__", "scrape_samples_scraped"),
            ("job", "prometheus"),
        ],
    )
    .await;
    assert!(scraped.iter().any(|n| *n > 100.0), "{scraped:?}");
    server.stop().await;
    drop(prometheus);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_itself_through_file_sd() {
    let targets_dir = tempfile::tempdir().unwrap();
    let pattern = targets_dir.path().join("*.json").display().to_string();
    let server = TestServer::start_with(|config| {
        let mut self_job = job("sightline", Vec::new());
        self_job.file_sd_configs = vec![FileSdConfig {
            files: vec![pattern.clone()],
            refresh_interval: HumanDuration::millis(200),
        }];
        config.ingest.scrape_configs = vec![self_job];
    })
    .await;
    // The address is known only now: write the target file; discovery picks it up.
    let address = server.http_addr().to_string();
    let temporary = targets_dir.path().join("self.json.tmp");
    std::fs::write(
        &temporary,
        format!(r#"[{{"targets": ["{address}"], "labels": {{"team": "observability"}}}}]"#),
    )
    .unwrap();
    std::fs::rename(&temporary, targets_dir.path().join("self.json")).unwrap();
    let storage = server.storage();
    let instance = address.as_str();
    wait_until("sightline_build_info scraped from itself", || {
        let storage = storage.clone();
        async move {
            series_values(
                &storage,
                &[
                    ("__name__", "up"),
                    ("job", "sightline"),
                    ("instance", instance),
                ],
            )
            .await
            .contains(&1.0)
                && !select(
                    &storage,
                    &[
                        ("__name__", "sightline_build_info"),
                        ("job", "sightline"),
                        ("instance", instance),
                        ("team", "observability"),
                    ],
                )
                .is_empty()
        }
    })
    .await;
    let up = select(&storage, &[("__name__", "up"), ("job", "sightline")]);
    assert_eq!(up[0].1.get("team"), Some("observability"));
    // The target leaves discovery: every series of it, `up` included, gets a stale marker.
    std::fs::write(&temporary, "[]").unwrap();
    std::fs::rename(&temporary, targets_dir.path().join("self.json")).unwrap();
    wait_until("stale markers after the target left discovery", || {
        let storage = storage.clone();
        async move {
            let up = series_values(&storage, &[("__name__", "up"), ("job", "sightline")]).await;
            let build_info = series_values(
                &storage,
                &[("__name__", "sightline_build_info"), ("job", "sightline")],
            )
            .await;
            up.last().is_some_and(|v| v.to_bits() == STALE_NAN_BITS)
                && build_info
                    .last()
                    .is_some_and(|v| v.to_bits() == STALE_NAN_BITS)
        }
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_going_down_writes_up_zero_and_stale_markers() {
    let mut target = Target::start("# TYPE app_requests_total counter\napp_requests_total{path=\"/\"} 7\napp_temperature 21.5\n").await;
    let address = target.addr.to_string();
    let server = TestServer::start_with(|config| {
        config.ingest.scrape_configs = vec![job("app", vec![address.clone()])];
    })
    .await;
    let storage = server.storage();
    wait_until("the target is scraped", || {
        let storage = storage.clone();
        async move {
            series_values(
                &storage,
                &[("__name__", "app_requests_total"), ("job", "app")],
            )
            .await
            .contains(&7.0)
        }
    })
    .await;
    target.stop().await;
    wait_until("up = 0 and stale markers", || {
        let storage = storage.clone();
        async move {
            let up = series_values(&storage, &[("__name__", "up"), ("job", "app")]).await;
            let requests = series_values(
                &storage,
                &[("__name__", "app_requests_total"), ("job", "app")],
            )
            .await;
            let temperature =
                series_values(&storage, &[("__name__", "app_temperature"), ("job", "app")]).await;
            up.contains(&1.0)
                && up.last() == Some(&0.0)
                && requests
                    .last()
                    .is_some_and(|v| v.to_bits() == STALE_NAN_BITS)
                && temperature
                    .last()
                    .is_some_and(|v| v.to_bits() == STALE_NAN_BITS)
        }
    })
    .await;
    // The marker is written once: later failed scrapes add up = 0 but no more markers.
    let requests = select(
        &storage,
        &[("__name__", "app_requests_total"), ("job", "app")],
    );
    let before = values(&storage, requests[0].0).await;
    wait_until("two more failed scrapes", || {
        let storage = storage.clone();
        async move {
            let up = series_values(&storage, &[("__name__", "up"), ("job", "app")]).await;
            up.iter().rev().take_while(|v| **v == 0.0).count() >= 3
        }
    })
    .await;
    let after = values(&storage, requests[0].0).await;
    assert_eq!(
        after
            .iter()
            .filter(|v| v.to_bits() == STALE_NAN_BITS)
            .count(),
        1,
        "{before:?} → {after:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_job_label_is_exported_without_honor_labels() {
    let mut target = Target::start("pushed_metric{job=\"batch\",instance=\"worker-1\"} 3\n").await;
    let address = target.addr.to_string();
    let server = TestServer::start_with(|config| {
        let mut job_config = job("gateway", vec![address.clone()]);
        job_config.static_configs[0]
            .labels
            .insert("zone".to_string(), "eu".to_string());
        let mut honoring = job("gateway_honor", vec![address.clone()]);
        honoring.honor_labels = true;
        config.ingest.scrape_configs = vec![job_config, honoring];
    })
    .await;
    let storage: Arc<Storage> = server.storage();
    let instance = address.as_str();
    wait_until("exported_job and honored job", || {
        let storage = storage.clone();
        async move {
            !select(
                &storage,
                &[
                    ("__name__", "pushed_metric"),
                    ("job", "gateway"),
                    ("exported_job", "batch"),
                    ("instance", instance),
                    ("exported_instance", "worker-1"),
                    ("zone", "eu"),
                ],
            )
            .is_empty()
                && !select(
                    &storage,
                    &[
                        ("__name__", "pushed_metric"),
                        ("job", "batch"),
                        ("instance", "worker-1"),
                    ],
                )
                .is_empty()
        }
    })
    .await;
    let honored = select(&storage, &[("__name__", "pushed_metric"), ("job", "batch")]);
    assert_eq!(honored[0].1.get("exported_job"), None);
    target.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_gzipped_open_metrics_with_exemplars() {
    let body = "# TYPE jobs counter\n\
                # UNIT jobs jobs\n\
                # HELP jobs Jobs \\\"done\\\".\n\
                jobs_total{queue=\"a\\\\b\"} 42.0 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 1.5\n\
                jobs_created{queue=\"a\\\\b\"} 1605281325.0\n\
                # EOF\n";
    let mut target = Target::start_with(
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body.as_bytes().to_vec(),
        true,
    )
    .await;
    let address = target.addr.to_string();
    let server = TestServer::start_with(|config| {
        config.ingest.scrape_configs = vec![job("om", vec![address.clone()])];
    })
    .await;
    let storage = server.storage();
    wait_until("jobs_total scraped", || {
        let storage = storage.clone();
        async move {
            series_values(&storage, &[("__name__", "jobs_total"), ("queue", "a\\b")])
                .await
                .contains(&42.0)
        }
    })
    .await;
    assert!(select(&storage, &[("__name__", "jobs_created")]).is_empty());
    let (id, _) = select(&storage, &[("__name__", "jobs_total")])[0].clone();
    let batches = storage
        .scan_exemplars(&TenantId::default(), &[id], 0, i64::MAX)
        .await
        .unwrap();
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .expect("an exemplar");
    let trace = batch
        .column(3)
        .as_any()
        .downcast_ref::<arrow::array::FixedSizeBinaryArray>()
        .unwrap();
    assert_eq!(
        trace.value(0),
        [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]
    );
    let exemplar_value = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(exemplar_value.value(0), 1.5);
    let metadata = storage.metric_metadata(&TenantId::default());
    let jobs = metadata
        .iter()
        .find(|m| m.metric == "jobs")
        .expect("metadata");
    assert_eq!(jobs.kind, MetricType::Counter);
    assert_eq!(jobs.unit, "jobs");
    assert_eq!(jobs.help, "Jobs \"done\".");
    target.stop().await;
    server.stop().await;
}
