use std::time::{Duration, Instant};

use proto::TenantId;
use proto::otlp::{
    AggregationTemporality, AnyValue, ExponentialHistogram, ExponentialHistogramDataPoint,
    ExportMetricsServiceRequest, Histogram, HistogramDataPoint, KeyValue, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, any_value, exponential_histogram_data_point::Buckets,
    metric, number_data_point,
};

use super::{DeltaOutcome, DeltaState, MAX_EXPONENTIAL_BUCKETS};

const SEC: u64 = 1_000_000_000;
const DELTA: i32 = AggregationTemporality::Delta as i32;
const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn request(data: metric::Data) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(proto::otlp::Resource {
                attributes: vec![attribute("service.name", "svc")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "orders".to_string(),
                    data: Some(data),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn sum_point(attributes: Vec<KeyValue>, start: u64, time: u64, value: i64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start * SEC,
        time_unix_nano: time * SEC,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn delta_sum(points: Vec<NumberDataPoint>) -> ExportMetricsServiceRequest {
    request(metric::Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: DELTA,
        is_monotonic: true,
    }))
}

fn sum_points(request: &ExportMetricsServiceRequest) -> Vec<(u64, u64, f64)> {
    let Some(metric::Data::Sum(sum)) =
        &request.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("not a sum");
    };
    assert_eq!(sum.aggregation_temporality, CUMULATIVE);
    sum.data_points
        .iter()
        .map(|p| {
            let value = match p.value {
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                Some(number_data_point::Value::AsDouble(v)) => v,
                None => f64::NAN,
            };
            (p.start_time_unix_nano / SEC, p.time_unix_nano / SEC, value)
        })
        .collect()
}

fn state() -> DeltaState {
    DeltaState::new(1000, Duration::from_secs(300))
}

#[test]
fn sums_accumulate_per_stream_from_the_first_start() {
    let mut state = state();
    let tenant = TenantId::default();
    let now = Instant::now();
    let eu = || vec![attribute("region", "eu")];
    let us = || vec![attribute("region", "us")];
    let mut first = delta_sum(vec![
        sum_point(eu(), 100, 110, 5),
        sum_point(us(), 100, 110, 1),
    ]);
    let outcome = state.accumulate(&tenant, &mut first, now);
    assert_eq!(outcome.accumulated, 2);
    assert_eq!(sum_points(&first), vec![(100, 110, 5.0), (100, 110, 1.0)]);

    let mut second = delta_sum(vec![
        sum_point(eu(), 110, 120, 7),
        sum_point(us(), 110, 120, 2),
    ]);
    state.accumulate(&tenant, &mut second, now);
    assert_eq!(sum_points(&second), vec![(100, 120, 12.0), (100, 120, 3.0)]);

    // Attribute order does not change the stream.
    let mut reordered = delta_sum(vec![sum_point(
        vec![attribute("region", "eu"), attribute("zone", "a")],
        120,
        130,
        1,
    )]);
    state.accumulate(&tenant, &mut reordered, now);
    let mut reordered_again = delta_sum(vec![sum_point(
        vec![attribute("zone", "a"), attribute("region", "eu")],
        130,
        140,
        1,
    )]);
    state.accumulate(&tenant, &mut reordered_again, now);
    assert_eq!(sum_points(&reordered_again), vec![(120, 140, 2.0)]);

    // Another tenant is another stream.
    let mut other = delta_sum(vec![sum_point(eu(), 120, 130, 4)]);
    state.accumulate(&TenantId::new("other").unwrap(), &mut other, now);
    assert_eq!(sum_points(&other), vec![(120, 130, 4.0)]);
    assert_eq!(state.len(), 4);
}

#[test]
fn duplicates_and_out_of_order_points_are_dropped_not_counted_twice() {
    let mut state = state();
    let tenant = TenantId::default();
    let now = Instant::now();
    let points = || vec![sum_point(vec![], 100, 110, 5)];
    let mut first = delta_sum(points());
    state.accumulate(&tenant, &mut first, now);
    let mut retry = delta_sum(points());
    let outcome = state.accumulate(&tenant, &mut retry, now);
    assert_eq!(
        outcome,
        DeltaOutcome {
            accumulated: 0,
            out_of_order: 1,
            over_limit: 0
        }
    );
    assert!(sum_points(&retry).is_empty());
    let mut older = delta_sum(vec![sum_point(vec![], 90, 100, 5)]);
    assert_eq!(state.accumulate(&tenant, &mut older, now).out_of_order, 1);
    let mut next = delta_sum(vec![sum_point(vec![], 110, 120, 1)]);
    state.accumulate(&tenant, &mut next, now);
    assert_eq!(sum_points(&next), vec![(100, 120, 6.0)]);
}

#[test]
fn the_limit_refuses_new_streams_and_idle_streams_expire() {
    let mut state = DeltaState::new(2, Duration::from_secs(60));
    let tenant = TenantId::default();
    let start = Instant::now();
    let point = |name: &str, time: u64| sum_point(vec![attribute("k", name)], time - 10, time, 1);
    let mut full = delta_sum(vec![point("a", 110), point("b", 110), point("c", 110)]);
    let outcome = state.accumulate(&tenant, &mut full, start);
    assert_eq!((outcome.accumulated, outcome.over_limit), (2, 1));
    assert_eq!(sum_points(&full).len(), 2);

    // "a" stays busy, "b" goes idle and is forgotten: "c" fits then.
    let mut busy = delta_sum(vec![point("a", 150)]);
    state.accumulate(&tenant, &mut busy, start + Duration::from_secs(40));
    let later = start + Duration::from_secs(90);
    let mut again = delta_sum(vec![point("c", 200), point("a", 200)]);
    let outcome = state.accumulate(&tenant, &mut again, later);
    assert_eq!((outcome.accumulated, outcome.over_limit), (2, 0));
    assert_eq!(sum_points(&again), vec![(190, 200, 1.0), (100, 200, 3.0)]);
    // "b" starts over: a new cumulative series from its next delta.
    let mut b = delta_sum(vec![point("b", 300)]);
    state.accumulate(&tenant, &mut b, start + Duration::from_secs(200));
    assert_eq!(sum_points(&b), vec![(290, 300, 1.0)]);
}

#[test]
fn cumulative_and_gauge_metrics_are_left_alone() {
    let mut state = state();
    let mut cumulative = request(metric::Data::Sum(Sum {
        data_points: vec![sum_point(vec![], 100, 110, 5)],
        aggregation_temporality: CUMULATIVE,
        is_monotonic: true,
    }));
    let before = cumulative.clone();
    let outcome = state.accumulate(&TenantId::default(), &mut cumulative, Instant::now());
    assert_eq!(outcome, DeltaOutcome::default());
    assert_eq!(cumulative, before);
    assert_eq!(state.len(), 0);
}

fn histogram_point(time: u64, bounds: &[f64], counts: &[u64], sum: f64) -> HistogramDataPoint {
    HistogramDataPoint {
        start_time_unix_nano: (time - 10) * SEC,
        time_unix_nano: time * SEC,
        count: counts.iter().sum(),
        sum: Some(sum),
        explicit_bounds: bounds.to_vec(),
        bucket_counts: counts.to_vec(),
        ..Default::default()
    }
}

fn delta_histogram(point: HistogramDataPoint) -> ExportMetricsServiceRequest {
    request(metric::Data::Histogram(Histogram {
        data_points: vec![point],
        aggregation_temporality: DELTA,
    }))
}

fn histogram_of(request: &ExportMetricsServiceRequest) -> HistogramDataPoint {
    let Some(metric::Data::Histogram(histogram)) =
        &request.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("not a histogram");
    };
    assert_eq!(histogram.aggregation_temporality, CUMULATIVE);
    histogram.data_points[0].clone()
}

#[test]
fn histograms_add_bucket_by_bucket_and_restart_on_new_bounds() {
    let mut state = state();
    let tenant = TenantId::default();
    let now = Instant::now();
    let bounds = [1.0, 10.0];
    let mut first = delta_histogram(histogram_point(110, &bounds, &[1, 2, 0], 12.0));
    state.accumulate(&tenant, &mut first, now);
    let mut second = delta_histogram(histogram_point(120, &bounds, &[0, 1, 3], 3000.0));
    state.accumulate(&tenant, &mut second, now);
    let point = histogram_of(&second);
    assert_eq!(point.bucket_counts, vec![1, 3, 3]);
    assert_eq!((point.count, point.sum), (7, Some(3012.0)));
    assert_eq!(point.start_time_unix_nano, 100 * SEC);

    let mut rebucketed = delta_histogram(histogram_point(130, &[5.0], &[2, 2], 20.0));
    state.accumulate(&tenant, &mut rebucketed, now);
    let point = histogram_of(&rebucketed);
    assert_eq!(point.bucket_counts, vec![2, 2]);
    assert_eq!(point.count, 4);
}

fn exponential_point(
    time: u64,
    scale: i32,
    offset: i32,
    counts: &[u64],
    zero: u64,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        start_time_unix_nano: (time - 10) * SEC,
        time_unix_nano: time * SEC,
        count: counts.iter().sum::<u64>() + zero,
        sum: Some(1.0),
        scale,
        zero_count: zero,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts.to_vec(),
        }),
        ..Default::default()
    }
}

fn delta_exponential(point: ExponentialHistogramDataPoint) -> ExportMetricsServiceRequest {
    request(metric::Data::ExponentialHistogram(ExponentialHistogram {
        data_points: vec![point],
        aggregation_temporality: DELTA,
    }))
}

fn exponential_of(request: &ExportMetricsServiceRequest) -> ExponentialHistogramDataPoint {
    let Some(metric::Data::ExponentialHistogram(histogram)) =
        &request.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("not an exponential histogram");
    };
    histogram.data_points[0].clone()
}

#[test]
fn exponential_histograms_merge_at_the_smaller_scale() {
    let mut state = state();
    let tenant = TenantId::default();
    let now = Instant::now();
    // Scale 1: indexes 2,3 (bounds (2, 2.83], (2.83, 4]).
    let mut first = delta_exponential(exponential_point(110, 1, 2, &[1, 1], 1));
    state.accumulate(&tenant, &mut first, now);
    // Scale 0: index 1 = (2, 4], index 2 = (4, 8].
    let mut second = delta_exponential(exponential_point(120, 0, 1, &[3, 4], 0));
    state.accumulate(&tenant, &mut second, now);
    let point = exponential_of(&second);
    assert_eq!(point.scale, 0);
    let positive = point.positive.unwrap();
    assert_eq!((positive.offset, positive.bucket_counts), (1, vec![5, 4]));
    assert_eq!((point.zero_count, point.count), (1, 10));
    assert_eq!(point.sum, Some(2.0));
}

#[test]
fn exponential_histograms_downscale_to_stay_bounded() {
    let mut state = state();
    let tenant = TenantId::default();
    let now = Instant::now();
    let mut first = delta_exponential(exponential_point(110, 3, 0, &[1], 0));
    state.accumulate(&tenant, &mut first, now);
    let mut far = delta_exponential(exponential_point(120, 3, 1000, &[1], 0));
    state.accumulate(&tenant, &mut far, now);
    let point = exponential_of(&far);
    let positive = point.positive.unwrap();
    assert!(positive.bucket_counts.len() <= MAX_EXPONENTIAL_BUCKETS);
    assert_eq!(positive.bucket_counts.iter().sum::<u64>(), 2);
    assert!(point.scale < 3, "scale {}", point.scale);
    // The two values still sit in buckets that hold them: index 0 and 1000 at scale 3.
    let at = |index: i64| index >> (3 - point.scale);
    let first_slot = (at(0) - i64::from(positive.offset)) as usize;
    let last_slot = (at(1000) - i64::from(positive.offset)) as usize;
    assert_eq!(positive.bucket_counts[first_slot], 1);
    assert_eq!(positive.bucket_counts[last_slot], 1);
}
