//! Prometheus remote_write (`POST /api/v1/write`): hand-built 1.0 and 2.0 requests read
//! back field by field, a real Prometheus remote-writing to us, and bad input.

mod common;
#[path = "clients/prom_process.rs"]
mod prom_process;
#[path = "clients/prom_wire.rs"]
mod prom_wire;

use std::time::{Duration, Instant};

use prost::Message;
use proto::prometheus::{Histogram, v1, v2};
use proto::{ByteSize, TenantId};
use storage::metrics::MetricType;

use common::TestServer;
use prom_process::PrometheusProcess;
use prom_wire::{
    STALE_NAN, V1_TYPE, V2_TYPE, labels, now_ms, post, read_exemplars, read_series, snappy,
    v1_label, v1_series,
};

#[tokio::test]
async fn remote_write_1_0_round_trips_exactly() {
    let server = TestServer::start().await;
    let t = now_ms() - 60_000;
    let stale = f64::from_bits(STALE_NAN);
    let mut with_exemplar = v1_series(
        &[("__name__", "rw1_latency_bucket"), ("le", "0.5")],
        &[(t, 7.0)],
    );
    with_exemplar.exemplars = vec![v1::Exemplar {
        labels: vec![
            v1_label("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            v1_label("span_id", "00F067AA0BA902B7"),
            v1_label("customer", "中文"),
        ],
        value: 0.42,
        timestamp: t + 5,
    }];
    let request = v1::WriteRequest {
        timeseries: vec![
            v1_series(
                &[
                    ("__name__", "rw1_requests"),
                    ("job", "api"),
                    ("instance", "a:1"),
                ],
                &[(t, 1.5), (t + 1000, f64::NAN)],
            ),
            v1_series(
                &[
                    ("instance", "a:1"),
                    ("__name__", "rw1_requests"),
                    ("job", "api"),
                ],
                &[(t + 2000, stale), (t + 3000, 0.1 + 0.2)],
            ),
            v1_series(
                &[
                    ("__name__", "rw1_requests"),
                    ("job", "api"),
                    ("instance", "b:1"),
                ],
                &[(t, f64::NEG_INFINITY)],
            ),
            with_exemplar,
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::MetricType::Counter as i32,
            metric_family_name: "rw1_requests".to_string(),
            help: "Requests served.".to_string(),
            unit: "requests".to_string(),
        }],
    };
    let response = post(
        &server.url(),
        V1_TYPE,
        Some("snappy"),
        snappy(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 204, "{:?}", response.text().await);

    let storage = server.storage();
    let mut series = read_series(&storage, "rw1_requests").await;
    series.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        series,
        vec![
            (
                labels(&[
                    ("__name__", "rw1_requests"),
                    ("job", "api"),
                    ("instance", "a:1")
                ]),
                vec![
                    (t, 1.5f64.to_bits()),
                    (t + 1000, f64::NAN.to_bits()),
                    (t + 2000, STALE_NAN),
                    (t + 3000, (0.1f64 + 0.2).to_bits())
                ]
            ),
            (
                labels(&[
                    ("__name__", "rw1_requests"),
                    ("job", "api"),
                    ("instance", "b:1")
                ]),
                vec![(t, f64::NEG_INFINITY.to_bits())]
            ),
        ]
    );
    assert_eq!(
        read_series(&storage, "rw1_latency_bucket").await[0].1,
        vec![(t, 7f64.to_bits())]
    );
    assert_eq!(
        read_exemplars(&storage, "rw1_latency_bucket").await,
        vec![(
            t + 5,
            0.42,
            Some(
                "4bf92f3577b34da6a3ce929d0e0e4736"
                    .parse()
                    .expect("trace id")
            ),
            Some("00f067aa0ba902b7".parse().expect("span id")),
            vec![("customer".to_string(), "中文".to_string())]
        )]
    );
    let metadata = storage.metric_metadata(&TenantId::default());
    let requests = metadata
        .iter()
        .find(|m| m.metric == "rw1_requests")
        .expect("metadata stored");
    assert_eq!(
        (
            requests.kind,
            requests.help.as_str(),
            requests.unit.as_str()
        ),
        (MetricType::Counter, "Requests served.", "requests")
    );
}

#[tokio::test]
async fn remote_write_2_0_round_trips_exactly_and_reports_counts() {
    let server = TestServer::start().await;
    let t = now_ms() - 30_000;
    let symbols = [
        "",
        "__name__",
        "rw2_temperature",
        "room",
        "kitchen",
        "trace_id",
        "0af7651916cd43dd8448eb211c80319c",
        "Room temperature.",
        "celsius",
        "hall",
    ];
    let sample = |value: f64, timestamp: i64| v2::Sample {
        value,
        timestamp,
        start_timestamp: 0,
    };
    let request = v2::Request {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![
                    sample(21.5, t),
                    sample(f64::from_bits(STALE_NAN), t + 15_000),
                ],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![5, 6],
                    value: 21.5,
                    timestamp: t,
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::MetricType::Gauge as i32,
                    help_ref: 7,
                    unit_ref: 8,
                }),
                histograms: vec![],
                created_timestamp: 0,
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 9],
                samples: vec![sample(f64::INFINITY, t)],
                histograms: vec![Histogram {
                    timestamp: t,
                    ..Histogram::default()
                }],
                ..v2::TimeSeries::default()
            },
        ],
    };
    let response = post(
        &server.url(),
        V2_TYPE,
        Some("snappy"),
        snappy(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 204);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("X-Prometheus-Remote-Write-Samples-Written").as_deref(),
        Some("3")
    );
    assert_eq!(
        header("X-Prometheus-Remote-Write-Histograms-Written").as_deref(),
        Some("0")
    );
    assert_eq!(
        header("X-Prometheus-Remote-Write-Exemplars-Written").as_deref(),
        Some("1")
    );

    let storage = server.storage();
    let mut series = read_series(&storage, "rw2_temperature").await;
    series.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        series,
        vec![
            (
                labels(&[("__name__", "rw2_temperature"), ("room", "hall")]),
                vec![(t, f64::INFINITY.to_bits())]
            ),
            (
                labels(&[("__name__", "rw2_temperature"), ("room", "kitchen")]),
                vec![(t, 21.5f64.to_bits()), (t + 15_000, STALE_NAN)]
            ),
        ]
    );
    let exemplars = read_exemplars(&storage, "rw2_temperature").await;
    assert_eq!(
        exemplars,
        vec![(
            t,
            21.5,
            Some(
                "0af7651916cd43dd8448eb211c80319c"
                    .parse()
                    .expect("trace id")
            ),
            None,
            vec![]
        )]
    );
    let metadata = storage.metric_metadata(&TenantId::default());
    let temperature = metadata
        .iter()
        .find(|m| m.metric == "rw2_temperature")
        .expect("metadata stored");
    assert_eq!(
        (
            temperature.kind,
            temperature.help.as_str(),
            temperature.unit.as_str()
        ),
        (MetricType::Gauge, "Room temperature.", "celsius")
    );
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let server = TestServer::start_with(|config| {
        config.ingest.max_request_size = ByteSize(64 * 1024);
        config.ingest.max_decompressed_size = ByteSize(256 * 1024);
    })
    .await;
    let url = server.url();
    let t = now_ms();
    let good = v1_series(&[("__name__", "rw_bad_good")], &[(t, 1.0)]);
    let encoded = |series: Vec<v1::TimeSeries>| {
        snappy(
            &v1::WriteRequest {
                timeseries: series,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
    };

    let check = |status: u16, needle: &'static str| {
        move |response: (u16, String)| {
            assert_eq!(response.0, status, "body: {}", response.1);
            assert!(
                response.1.contains(needle),
                "{:?} should mention {needle:?}",
                response.1
            );
        }
    };
    let send = |content_type: &'static str, encoding: Option<&'static str>, body: Vec<u8>| {
        let url = url.clone();
        async move {
            let response = post(&url, content_type, encoding, body).await;
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };

    check(400, "snappy")(
        send(
            V1_TYPE,
            Some("snappy"),
            b"\xff\xff\xff\xffnot snappy".to_vec(),
        )
        .await,
    );
    check(400, "protobuf")(
        send(
            V1_TYPE,
            Some("snappy"),
            snappy(b"\xff\xff\xff\xff\xff\xff\xff"),
        )
        .await,
    );
    check(400, "protobuf")(send(V2_TYPE, None, snappy(&[0x22, 0x05, b'a'])).await);
    check(415, "application/json")(
        send(
            "application/json",
            Some("snappy"),
            encoded(vec![good.clone()]),
        )
        .await,
    );
    check(415, "foo.Bar")(
        send(
            "application/x-protobuf;proto=foo.Bar",
            Some("snappy"),
            encoded(vec![good.clone()]),
        )
        .await,
    );
    check(415, "gzip")(send(V1_TYPE, Some("gzip"), encoded(vec![good.clone()])).await);
    let nameless = v1_series(&[("job", "x")], &[(t, 1.0)]);
    check(400, "__name__")(
        send(
            V1_TYPE,
            Some("snappy"),
            encoded(vec![good.clone(), nameless]),
        )
        .await,
    );
    let future = v1_series(
        &[("__name__", "rw_bad_future")],
        &[(t + 2 * 3_600_000, 1.0)],
    );
    check(400, "future")(send(V1_TYPE, Some("snappy"), encoded(vec![good.clone(), future])).await);
    let bad_utf8 = [0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, 0xff];
    check(400, "UTF-8")(send(V1_TYPE, Some("snappy"), snappy(&bad_utf8)).await);
    check(413, "limit")(send(V1_TYPE, Some("snappy"), vec![0u8; 65 * 1024]).await);
    check(413, "decompresses")(send(V1_TYPE, Some("snappy"), snappy(&vec![0u8; 300 * 1024])).await);
    let mut many = vec![("__name__".to_string(), "rw_bad_wide".to_string())];
    many.extend((0..64).map(|i| (format!("l{i}"), "v".to_string())));
    let wide: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    check(400, "over the limit")(
        send(
            V1_TYPE,
            Some("snappy"),
            encoded(vec![v1_series(&wide, &[(t, 1.0)])]),
        )
        .await,
    );
    let storage = server.storage();
    assert!(
        read_series(&storage, "rw_bad_good").await.is_empty(),
        "a rejected request stored data"
    );

    check(204, "")(send(V1_TYPE, Some("snappy"), encoded(vec![good])).await);
    assert_eq!(
        read_series(&storage, "rw_bad_good").await.len(),
        1,
        "the server keeps serving"
    );
}

/// `sightline_ingested_samples_total{protocol="remote_write"}` from our `/metrics`.
async fn ingested_remote_write_samples(url: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("get /metrics")
        .text()
        .await
        .expect("body");
    text.lines()
        .filter(|line| {
            line.starts_with("sightline_ingested_samples_total{")
                && line.contains("protocol=\"remote_write\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn real_prometheus_remote_writes_its_scrapes() {
    let server = TestServer::start().await;
    let target = server.http_addr();
    let before = ingested_remote_write_samples(&server.url()).await;
    let mut prometheus = PrometheusProcess::start(&format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sightline
    static_configs:
      - targets: ["{target}"]
  - job_name: prometheus
    static_configs:
      - targets: ["{{listen}}"]
remote_write:
  - url: http://{target}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 50ms
      max_backoff: 1s
    metadata_config:
      send_interval: 1s
"#
    ));
    let storage = server.storage();
    let sightline_instance = target.to_string();
    let start = Instant::now();
    loop {
        let uptime = read_series(&storage, "sightline_uptime_seconds").await;
        let up = read_series(&storage, "up").await;
        let up_of = |job: &str| {
            up.iter()
                .find(|(labels, samples)| labels.get("job") == Some(job) && !samples.is_empty())
                .map(|(l, s)| (l.clone(), s.clone()))
        };
        let metadata = storage.metric_metadata(&TenantId::default());
        let uptime_ok = uptime.iter().any(|(labels, samples)| {
            labels.get("job") == Some("sightline")
                && labels.get("instance") == Some(sightline_instance.as_str())
                && samples.iter().any(|(ts, bits)| {
                    let value = f64::from_bits(*bits);
                    (0.0..3600.0).contains(&value) && (*ts - now_ms()).abs() < 120_000
                })
        });
        let up_ok = [
            ("sightline", sightline_instance.clone()),
            ("prometheus", prometheus.listen.to_string()),
        ]
        .iter()
        .all(|(job, instance)| {
            up_of(job).is_some_and(|(labels, samples)| {
                labels.get("instance") == Some(instance.as_str())
                    && samples.iter().all(|(_, bits)| f64::from_bits(*bits) == 1.0)
            })
        });
        let metadata_ok = metadata
            .iter()
            .any(|m| m.metric == "sightline_uptime_seconds" && m.kind == MetricType::Gauge);
        if uptime_ok && up_ok && metadata_ok {
            break;
        }
        assert!(
            prometheus.is_running(),
            "prometheus exited:\n{}",
            prometheus.log()
        );
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "prometheus data did not arrive (uptime {uptime_ok}, up {up_ok}, metadata {metadata_ok}); log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = ingested_remote_write_samples(&server.url()).await;
    assert!(
        after > before,
        "remote_write sample counter did not grow ({before} -> {after})"
    );
}
