//! Conversion tests: wire messages in, `MetricsWrite` out, no IO.

use proto::prometheus::{Histogram, v1, v2};
use proto::{SpanId, TraceId};
use storage::metrics::{MetricType, Sample};

use prost::Message;

use super::convert::{Converted, Limits};
use super::*;
use crate::Config;

const NOW: i64 = 1_700_000_000_000;
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn limits() -> Limits {
    Limits::new(&Config::default(), NOW)
}

fn convert_v1(request: v1::WriteRequest, limits: Limits) -> crate::Result<Converted> {
    convert::convert_v1(&request.encode_to_vec(), limits)
}

fn convert_v2(request: v2::Request, limits: Limits) -> crate::Result<Converted> {
    convert::convert_v2(&request.encode_to_vec(), limits)
}

fn label(name: &str, value: &str) -> v1::Label {
    v1::Label {
        name: name.to_string(),
        value: value.to_string(),
    }
}

fn series_v1(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|(t, v)| v1::Sample {
                value: *v,
                timestamp: *t,
            })
            .collect(),
        ..v1::TimeSeries::default()
    }
}

fn bad_request(result: crate::Result<Converted>) -> String {
    match result {
        Err(Error::BadRequest(message)) => message,
        other => panic!("expected a bad request, got {other:?}"),
    }
}

#[test]
fn v1_groups_series_and_keeps_values_bit_exact() {
    let stale = f64::from_bits(STALE_NAN);
    let request = v1::WriteRequest {
        timeseries: vec![
            series_v1(
                &[("__name__", "up"), ("job", "a")],
                &[(NOW, 1.0), (NOW + 1, stale)],
            ),
            series_v1(&[("job", "b"), ("__name__", "up")], &[(NOW, f64::NAN)]),
            series_v1(
                &[("__name__", "up"), ("job", "a")],
                &[(NOW + 2, f64::INFINITY)],
            ),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::MetricType::Gauge as i32,
            metric_family_name: "up".to_string(),
            help: "is it up".to_string(),
            unit: "".to_string(),
        }],
    };
    let converted = convert_v1(request, limits()).unwrap();
    assert_eq!(converted.samples, 4);
    let series = &converted.write.series;
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].labels.get("job"), Some("a"));
    let bits: Vec<(i64, u64)> = series[0]
        .samples
        .iter()
        .map(|s| (s.ts_ms, s.value.to_bits()))
        .collect();
    assert_eq!(
        bits,
        vec![
            (NOW, 1f64.to_bits()),
            (NOW + 1, STALE_NAN),
            (NOW + 2, f64::INFINITY.to_bits())
        ]
    );
    assert_eq!(series[1].labels.get("job"), Some("b"));
    assert_eq!(series[1].samples[0].value.to_bits(), f64::NAN.to_bits());
    assert_eq!(converted.write.metadata.len(), 1);
    assert_eq!(converted.write.metadata[0].kind, MetricType::Gauge);
    assert_eq!(converted.write.metadata[0].help, "is it up");
}

#[test]
fn v1_exemplars_take_ids_and_keep_other_labels() {
    let mut series = series_v1(&[("__name__", "latency_bucket"), ("le", "1")], &[]);
    series.exemplars = vec![
        v1::Exemplar {
            labels: vec![
                label("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736"),
                label("span_id", "00f067aa0ba902b7"),
                label("user", "x"),
            ],
            value: 0.5,
            timestamp: NOW,
        },
        v1::Exemplar {
            labels: vec![label("trace_id", "not-hex")],
            value: 0.25,
            timestamp: NOW,
        },
    ];
    let converted = convert_v1(
        v1::WriteRequest {
            timeseries: vec![series],
            metadata: vec![],
        },
        limits(),
    )
    .unwrap();
    assert_eq!(converted.exemplars, 2);
    let exemplars = &converted.write.series[0].exemplars;
    assert_eq!(
        exemplars[0].trace_id,
        Some(
            "4bf92f3577b34da6a3ce929d0e0e4736"
                .parse::<TraceId>()
                .unwrap()
        )
    );
    assert_eq!(
        exemplars[0].span_id,
        Some("00f067aa0ba902b7".parse::<SpanId>().unwrap())
    );
    assert_eq!(
        exemplars[0].labels.get("user").map(String::as_str),
        Some("x")
    );
    assert_eq!(exemplars[0].labels.len(), 1);
    assert_eq!(exemplars[1].trace_id, None);
    assert_eq!(
        exemplars[1].labels.get("trace_id").map(String::as_str),
        Some("not-hex")
    );
}

#[test]
fn v1_invalid_series_are_named() {
    let config = Config::default();
    let cases: Vec<(v1::TimeSeries, &str)> = vec![
        (series_v1(&[("job", "a")], &[(NOW, 1.0)]), "no __name__"),
        (series_v1(&[("__name__", "")], &[(NOW, 1.0)]), "no __name__"),
        (
            series_v1(&[("__name__", "up"), ("", "x")], &[(NOW, 1.0)]),
            "empty name",
        ),
        (
            series_v1(&[("__name__", "up"), ("a", "1"), ("a", "2")], &[(NOW, 1.0)]),
            "duplicate",
        ),
        (
            series_v1(
                &[
                    ("__name__", "up"),
                    ("a", &"x".repeat(config.max_label_value_length + 1)),
                ],
                &[(NOW, 1.0)],
            ),
            "over the limit",
        ),
        (
            series_v1(
                &[("__name__", "up")],
                &[(NOW + convert::MAX_FUTURE_MS + 1, 1.0)],
            ),
            "in the future",
        ),
    ];
    for (series, expected) in cases {
        let request = v1::WriteRequest {
            timeseries: vec![series_v1(&[("__name__", "fine")], &[(NOW, 1.0)]), series],
            metadata: vec![],
        };
        let message = bad_request(convert_v1(request, limits()));
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
        assert!(
            message.contains("series 1"),
            "{message:?} should name the series"
        );
    }
    let names: Vec<String> = (0..config.max_labels_per_series)
        .map(|i| format!("l{i}"))
        .collect();
    let mut labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    labels.push(("__name__", "up"));
    let request = v1::WriteRequest {
        timeseries: vec![series_v1(&labels, &[(NOW, 1.0)])],
        metadata: vec![],
    };
    assert!(bad_request(convert_v1(request, limits())).contains("labels, over the limit of 64"));
}

#[test]
fn v1_histograms_are_skipped_and_counted() {
    let mut only_histograms = series_v1(&[("__name__", "h")], &[]);
    only_histograms.histograms = vec![Histogram::default(), Histogram::default()];
    let request = v1::WriteRequest {
        timeseries: vec![
            only_histograms,
            series_v1(&[("__name__", "up")], &[(NOW, 1.0)]),
        ],
        metadata: vec![],
    };
    let converted = convert_v1(request, limits()).unwrap();
    assert_eq!(converted.skipped_histograms, 2);
    assert_eq!(converted.write.series.len(), 1);
    assert_eq!(converted.write.series[0].labels.metric_name(), "up");
}

fn symbols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn v2_resolves_symbols_samples_exemplars_and_metadata() {
    let request = v2::Request {
        symbols: symbols(&[
            "",
            "__name__",
            "http_requests_total",
            "job",
            "api",
            "trace_id",
            "0af7651916cd43dd8448eb211c80319c",
            "requests",
            "1",
        ]),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![
                v2::Sample {
                    value: 3.0,
                    timestamp: NOW,
                    start_timestamp: 0,
                },
                v2::Sample {
                    value: f64::from_bits(STALE_NAN),
                    timestamp: NOW + 15_000,
                    start_timestamp: 0,
                },
            ],
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![5, 6],
                value: 1.0,
                timestamp: NOW,
            }],
            metadata: Some(v2::Metadata {
                r#type: v2::MetricType::Counter as i32,
                help_ref: 7,
                unit_ref: 8,
            }),
            histograms: vec![Histogram::default()],
            created_timestamp: NOW - 1000,
        }],
    };
    let converted = convert_v2(request, limits()).unwrap();
    assert_eq!(
        (
            converted.samples,
            converted.exemplars,
            converted.skipped_histograms
        ),
        (2, 1, 1)
    );
    let series = &converted.write.series[0];
    assert_eq!(series.labels.metric_name(), "http_requests_total");
    assert_eq!(series.labels.get("job"), Some("api"));
    assert_eq!(
        series.samples[0],
        Sample {
            ts_ms: NOW,
            value: 3.0
        }
    );
    assert_eq!(series.samples[1].value.to_bits(), STALE_NAN);
    assert_eq!(
        series.exemplars[0].trace_id,
        Some("0af7651916cd43dd8448eb211c80319c".parse().unwrap())
    );
    let metadata = &converted.write.metadata[0];
    assert_eq!(
        (
            metadata.metric.as_str(),
            metadata.kind,
            metadata.help.as_str(),
            metadata.unit.as_str()
        ),
        ("http_requests_total", MetricType::Counter, "requests", "1")
    );
}

#[test]
fn v2_bad_references_are_rejected() {
    let base = |refs: Vec<u32>, table: &[&str]| v2::Request {
        symbols: symbols(table),
        timeseries: vec![v2::TimeSeries {
            labels_refs: refs,
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: NOW,
                start_timestamp: 0,
            }],
            ..v2::TimeSeries::default()
        }],
    };
    let message = bad_request(convert_v2(
        base(vec![1, 9], &["", "__name__", "up"]),
        limits(),
    ));
    assert!(message.contains("symbol 9"), "{message}");
    let message = bad_request(convert_v2(
        base(vec![1, 2, 1], &["", "__name__", "up"]),
        limits(),
    ));
    assert!(message.contains("odd number"), "{message}");
    let message = bad_request(convert_v2(
        base(vec![1, 2], &["x", "__name__", "up"]),
        limits(),
    ));
    assert!(message.contains("symbols[0]"), "{message}");
    let message = bad_request(convert_v2(base(vec![1, 2], &[]), limits()));
    assert!(message.contains("symbol 1"), "{message}");
    let mut request = base(vec![1, 2], &["", "__name__", "up"]);
    request.timeseries[0].metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: 40,
        unit_ref: 0,
    });
    assert!(bad_request(convert_v2(request, limits())).contains("symbol 40"));
}

#[test]
fn rejections_map_to_statuses() {
    let response = Rejection::UnsupportedMediaType("nope".to_string()).into_response();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = Rejection::Ingest(Error::BadRequest("bad".to_string())).into_response();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = Rejection::Ingest(Error::PayloadTooLarge("big".to_string())).into_response();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = Rejection::Ingest(Error::NotReady("opening")).into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
}

#[test]
fn malformed_bodies_are_bad_requests() {
    for body in [
        &b"\xff\xff\xff"[..],
        &[0x0a, 0x05, 0x0a][..],
        &[0x08, 0x01][..],
    ] {
        let v1_message = bad_request(convert::convert_v1(body, limits()));
        assert!(v1_message.contains("protobuf"), "{v1_message}");
    }
    // field 1 (timeseries) holding a label whose value is not UTF-8
    let message = bad_request(convert::convert_v1(
        &[0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, 0xff],
        limits(),
    ));
    assert!(
        message.contains("series 0") && message.contains("UTF-8"),
        "{message}"
    );
    let message = bad_request(convert::convert_v2(&[0x22, 0x01, 0xff], limits()));
    assert!(message.contains("symbol 0 is not valid UTF-8"), "{message}");
    // a 1.0 body decodes as an empty 2.0 request (fields 1 to 3 are reserved there)
    let request = v1::WriteRequest {
        timeseries: vec![series_v1(&[("__name__", "up")], &[(NOW, 1.0)])],
        metadata: vec![],
    };
    let converted = convert::convert_v2(&request.encode_to_vec(), limits()).unwrap();
    assert_eq!(converted.samples, 0);
}
