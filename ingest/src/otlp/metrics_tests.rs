//! Unit tests of the OTLP metrics mapping (kept apart from `metrics.rs` for length).

use proto::otlp::{
    AnyValue, ExponentialHistogram, Gauge, Histogram, Resource, ResourceMetrics, ScopeMetrics, Sum,
    Summary, exemplar, exponential_histogram_data_point, summary_data_point,
};

use proto::otlp::{DataPointFlags, Exemplar as OtlpExemplar, KeyValue};
use storage::metrics::{MetricType, Sample};

use super::super::convert::tests::{kv, string};
use super::super::prom::STALE_NAN;
use super::*;

const NOW: i64 = 1_700_000_000_000_000_000;
const T: u64 = 1_699_999_999_000_000_000;

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", string("api")),
                    kv("service.namespace", string("shop")),
                    kv("service.instance.id", string("api-1")),
                ],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn metric(name: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.to_string(),
        description: "help text".to_string(),
        unit: "s".to_string(),
        data: Some(data),
        ..Metric::default()
    }
}

fn number(value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![kv("http.method", string("GET")), kv("2xx", string("yes"))],
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    }
}

/// `(series name, le/quantile or "", value)` of every sample, sorted.
fn samples(write: &MetricsWrite) -> Vec<(String, String, f64)> {
    let mut out: Vec<(String, String, f64)> = write
        .series
        .iter()
        .flat_map(|series| {
            let extra = series
                .labels
                .get("le")
                .or(series.labels.get("quantile"))
                .unwrap_or("")
                .to_string();
            let name = series.labels.metric_name().to_string();
            series
                .samples
                .iter()
                .map(move |sample| (name.clone(), extra.clone(), sample.value))
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[test]
fn names_and_labels_are_sanitised() {
    assert_eq!(metric_name("http.server.duration"), "http_server_duration");
    assert_eq!(metric_name("1up"), "_1up");
    assert_eq!(label_name("http.method"), "http_method");
    assert_eq!(label_name("2xx"), "key_2xx");
    assert_eq!(bound_text(0.005), "0.005");
    assert_eq!(bound_text(1.0), "1");
    assert_eq!(bound_text(f64::INFINITY), "+Inf");
}

#[test]
fn gauge_and_sums_become_gauges_and_counters() {
    let monotonic = |name: &str| {
        metric(
            name,
            metric::Data::Sum(Sum {
                data_points: vec![number(5.0)],
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        )
    };
    let updown = metric(
        "queue.size",
        metric::Data::Sum(Sum {
            data_points: vec![number(-3.0)],
            aggregation_temporality: 2,
            is_monotonic: false,
        }),
    );
    let gauge = metric(
        "temp",
        metric::Data::Gauge(Gauge {
            data_points: vec![number(21.5)],
        }),
    );
    let metrics = vec![
        monotonic("requests"),
        monotonic("bytes_total"),
        updown,
        gauge,
    ];
    let (write, rejections) = convert(&request(metrics), NOW);
    assert_eq!(rejections.count, 0);
    let names: Vec<String> = samples(&write)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(
        names,
        ["bytes_total", "queue_size", "requests_total", "temp"]
    );
    let series = &write.series[0];
    assert_eq!(series.labels.get("job"), Some("shop/api"));
    assert_eq!(series.labels.get("instance"), Some("api-1"));
    assert_eq!(series.labels.get("http_method"), Some("GET"));
    assert_eq!(series.labels.get("key_2xx"), Some("yes"));
    assert_eq!(series.samples[0].ts_ms, 1_699_999_999_000);
    let kinds: Vec<(&str, MetricType)> = write
        .metadata
        .iter()
        .map(|m| (m.metric.as_str(), m.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("bytes_total", MetricType::Counter),
            ("queue_size", MetricType::Gauge),
            ("requests_total", MetricType::Counter),
            ("temp", MetricType::Gauge)
        ]
    );
    assert_eq!(
        (
            write.metadata[0].help.as_str(),
            write.metadata[0].unit.as_str()
        ),
        ("help text", "s")
    );
}

#[test]
fn histograms_are_cumulative_buckets_with_sum_and_count() {
    let point = HistogramDataPoint {
        time_unix_nano: T,
        count: 6,
        sum: Some(12.5),
        bucket_counts: vec![1, 2, 3],
        explicit_bounds: vec![0.5, 1.0],
        exemplars: vec![OtlpExemplar {
            time_unix_nano: T,
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            value: Some(exemplar::Value::AsDouble(0.7)),
            ..OtlpExemplar::default()
        }],
        ..HistogramDataPoint::default()
    };
    let data = metric::Data::Histogram(Histogram {
        data_points: vec![point],
        aggregation_temporality: 2,
    });
    let (write, _) = convert(&request(vec![metric("latency", data)]), NOW);
    assert_eq!(
        samples(&write),
        [
            ("latency_bucket".to_string(), "+Inf".to_string(), 6.0),
            ("latency_bucket".to_string(), "0.5".to_string(), 1.0),
            ("latency_bucket".to_string(), "1".to_string(), 3.0),
            ("latency_count".to_string(), String::new(), 6.0),
            ("latency_sum".to_string(), String::new(), 12.5),
        ]
    );
    let with_exemplar: Vec<&SeriesWrite> = write
        .series
        .iter()
        .filter(|s| !s.exemplars.is_empty())
        .collect();
    assert_eq!(with_exemplar.len(), 1);
    assert_eq!(with_exemplar[0].labels.get("le"), Some("1"));
    assert_eq!(
        with_exemplar[0].exemplars[0].trace_id,
        Some(proto::TraceId([9; 16]))
    );
    assert_eq!(write.metadata[0].kind, MetricType::Histogram);
}

#[test]
fn exponential_histograms_become_classic_buckets() {
    let point = ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count: 3,
        sum: Some(10.0),
        scale: 0,
        zero_count: 1,
        positive: Some(exponential_histogram_data_point::Buckets {
            offset: 1,
            bucket_counts: vec![0, 2],
        }),
        ..ExponentialHistogramDataPoint::default()
    };
    let data = metric::Data::ExponentialHistogram(ExponentialHistogram {
        data_points: vec![point],
        aggregation_temporality: 1,
    });
    let (write, _) = convert(&request(vec![metric("my.exp", data)]), NOW);
    // Zero bucket at le=0, then (2,4] and (4,8].
    assert_eq!(
        samples(&write),
        [
            ("my_exp_bucket".to_string(), "+Inf".to_string(), 3.0),
            ("my_exp_bucket".to_string(), "0".to_string(), 1.0),
            ("my_exp_bucket".to_string(), "4".to_string(), 1.0),
            ("my_exp_bucket".to_string(), "8".to_string(), 3.0),
            ("my_exp_count".to_string(), String::new(), 3.0),
            ("my_exp_sum".to_string(), String::new(), 10.0),
        ]
    );
}

#[test]
fn summaries_have_quantiles() {
    let point = SummaryDataPoint {
        time_unix_nano: T,
        count: 10,
        sum: 3.0,
        quantile_values: vec![summary_data_point::ValueAtQuantile {
            quantile: 0.99,
            value: 0.8,
        }],
        ..SummaryDataPoint::default()
    };
    let data = metric::Data::Summary(Summary {
        data_points: vec![point],
    });
    let (write, _) = convert(&request(vec![metric("rpc", data)]), NOW);
    assert_eq!(
        samples(&write)[0],
        ("rpc".to_string(), "0.99".to_string(), 0.8)
    );
    assert_eq!(write.metadata[0].kind, MetricType::Summary);
}

#[test]
fn no_recorded_value_is_the_staleness_marker() {
    let mut point = number(1.0);
    point.flags = DataPointFlags::NoRecordedValueMask as u32;
    point.value = None;
    let data = metric::Data::Gauge(Gauge {
        data_points: vec![point],
    });
    let (write, _) = convert(&request(vec![metric("up", data)]), NOW);
    assert_eq!(write.series[0].samples[0].value.to_bits(), STALE_NAN);
}

#[test]
fn invalid_points_are_counted() {
    let mut future = number(1.0);
    future.time_unix_nano = u64::MAX;
    let mut no_value = number(1.0);
    no_value.value = None;
    let mut bad_buckets = HistogramDataPoint {
        time_unix_nano: T,
        bucket_counts: vec![1, 2, 3],
        explicit_bounds: vec![1.0],
        ..HistogramDataPoint::default()
    };
    bad_buckets.attributes.push(kv("a", AnyValue::default()));
    let metrics = vec![
        metric(
            "g",
            metric::Data::Gauge(Gauge {
                data_points: vec![future, no_value, number(2.0)],
            }),
        ),
        metric(
            "h",
            metric::Data::Histogram(Histogram {
                data_points: vec![bad_buckets],
                aggregation_temporality: 2,
            }),
        ),
    ];
    let (write, rejections) = convert(&request(metrics), NOW);
    assert_eq!((write.series.len(), rejections.count), (1, 3));
    assert!(rejections.message().contains("1h in the future"));
}

#[test]
fn other_resource_attributes_go_to_target_info() {
    let mut request = request(vec![metric(
        "temp",
        metric::Data::Gauge(Gauge {
            data_points: vec![number(21.5)],
        }),
    )]);
    if let Some(resource) = request.resource_metrics[0].resource.as_mut() {
        resource
            .attributes
            .push(kv("deployment.environment", string("prod")));
    }
    let (write, _) = convert(&request, NOW);
    let info = write
        .series
        .iter()
        .find(|s| s.labels.metric_name() == "target_info");
    let info = info.map(|s| (s.labels.clone(), s.samples.clone()));
    let expected = Labels::new(vec![
        ("__name__".to_string(), "target_info".to_string()),
        ("deployment_environment".to_string(), "prod".to_string()),
        ("instance".to_string(), "api-1".to_string()),
        ("job".to_string(), "shop/api".to_string()),
    ])
    .ok();
    assert_eq!(info.as_ref().map(|(labels, _)| labels.clone()), expected);
    assert_eq!(
        info.map(|(_, samples)| samples),
        Some(vec![Sample {
            ts_ms: 1_699_999_999_000,
            value: 1.0
        }])
    );
}

#[test]
fn a_point_that_fans_out_too_far_is_rejected() {
    let attributes: Vec<KeyValue> = (0..1_000)
        .map(|i| kv(&format!("a{i}"), string("v")))
        .collect();
    let point = HistogramDataPoint {
        attributes,
        time_unix_nano: T,
        count: 1,
        bucket_counts: vec![0; 200],
        explicit_bounds: (0..199).map(f64::from).collect(),
        ..HistogramDataPoint::default()
    };
    let data = metric::Data::Histogram(Histogram {
        data_points: vec![point],
        aggregation_temporality: 2,
    });
    let (write, rejections) = convert(&request(vec![metric("wide", data)]), NOW);
    assert_eq!((write.series.len(), rejections.count), (0, 1));
    assert!(rejections.message().contains("more than 100000 labels"));
}
