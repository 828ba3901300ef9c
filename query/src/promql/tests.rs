//! Engine-level tests of the semantics that are easy to get subtly wrong: lookback and
//! staleness, extrapolation, counter resets, vector matching errors, limits.

use std::sync::Arc;

use proto::{HumanDuration, TenantId};
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::series::Labels;
use storage::{Config as StorageConfig, Storage};

use super::*;
use crate::Config;

const STALE: f64 = f64::from_bits(value::STALE_NAN_BITS);

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
}

async fn engine_with(
    config: Config,
    series: Vec<(Labels, Vec<(i64, f64)>)>,
) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<Storage> = Storage::open(StorageConfig::default(), dir.path())
        .await
        .unwrap();
    let write = MetricsWrite {
        series: series
            .into_iter()
            .map(|(labels, samples)| SeriesWrite {
                labels,
                samples: samples
                    .into_iter()
                    .map(|(ts_ms, value)| Sample { ts_ms, value })
                    .collect(),
                exemplars: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    storage
        .append_metrics(&TenantId::default(), &write)
        .await
        .unwrap();
    let context = QueryContext::with_storage(config, storage, TenantId::default());
    (Engine::new(context), dir)
}

async fn engine(series: Vec<(Labels, Vec<(i64, f64)>)>) -> (Engine, tempfile::TempDir) {
    engine_with(Config::default(), series).await
}

async fn vector(engine: &Engine, query: &str, t: i64) -> Vec<(Vec<(String, String)>, f64)> {
    match engine
        .instant(&TenantId::default(), query, t)
        .await
        .unwrap()
        .value
    {
        Value::Vector(samples) => samples
            .into_iter()
            .map(|s| {
                (
                    s.labels
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    s.v,
                )
            })
            .collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[tokio::test]
async fn lookback_is_left_open_and_configurable() {
    let (e, _d) = engine(vec![(labels(&[("__name__", "up")]), vec![(0, 1.0)])]).await;
    assert_eq!(vector(&e, "up", 5 * 60_000 - 1).await.len(), 1);
    assert!(vector(&e, "up", 5 * 60_000).await.is_empty());
    assert!(vector(&e, "up", -1).await.is_empty());

    let config = Config {
        lookback_delta: HumanDuration::secs(60),
        ..Config::default()
    };
    let (e, _d) = engine_with(
        config,
        vec![(labels(&[("__name__", "up")]), vec![(0, 1.0)])],
    )
    .await;
    assert_eq!(vector(&e, "up", 59_999).await.len(), 1);
    assert!(vector(&e, "up", 60_000).await.is_empty());
}

#[tokio::test]
async fn staleness_marker_ends_the_series() {
    let (e, _d) = engine(vec![(
        labels(&[("__name__", "up")]),
        vec![(0, 1.0), (30_000, STALE), (90_000, 2.0)],
    )])
    .await;
    assert_eq!(vector(&e, "up", 15_000).await[0].1, 1.0);
    assert!(
        vector(&e, "up", 60_000).await.is_empty(),
        "stale marker hides the sample"
    );
    assert_eq!(vector(&e, "up", 90_000).await[0].1, 2.0);
    // Range selectors drop the marker itself.
    assert_eq!(
        vector(&e, "count_over_time(up[2m])", 90_000).await[0].1,
        2.0
    );
}

#[tokio::test]
async fn rate_extrapolates_and_handles_counter_resets() {
    // A counter scraped every 15s: 0, 15, 30, 5 (reset), 20.
    let (e, _d) = engine(vec![(
        labels(&[("__name__", "requests_total"), ("job", "a")]),
        vec![
            (15_000, 0.0),
            (30_000, 15.0),
            (45_000, 30.0),
            (60_000, 5.0),
            (75_000, 20.0),
        ],
    )])
    .await;
    // increase over (15s, 75s]: samples 30s..75s: 20 - 15 + 30 (reset) = 35 over 45s sampled,
    // extrapolated to the boundaries (15s before the first sample, 0 after the last)
    // but towards the start only down to the counter's zero point.
    let inc = vector(&e, "increase(requests_total[60s])", 75_000).await;
    assert_eq!(inc[0].0, vec![("job".to_string(), "a".to_string())]);
    let expected = 35.0 * (45.0 + 15.0) / 45.0;
    assert!(
        (inc[0].1 - expected).abs() < 1e-9,
        "{} vs {expected}",
        inc[0].1
    );
    let rate = vector(&e, "rate(requests_total[60s])", 75_000).await;
    assert!((rate[0].1 - expected / 60.0).abs() < 1e-9);
    assert_eq!(
        vector(&e, "resets(requests_total[2m])", 75_000).await[0].1,
        1.0
    );
    // irate after a reset uses the new value alone.
    let irate = vector(&e, "irate(requests_total[1m])", 60_000).await;
    assert!((irate[0].1 - 5.0 / 15.0).abs() < 1e-9);
}

#[tokio::test]
async fn group_left_requires_unique_one_side() {
    let (e, _d) = engine(vec![
        (
            labels(&[("__name__", "a"), ("job", "x"), ("i", "1")]),
            vec![(0, 1.0)],
        ),
        (
            labels(&[("__name__", "a"), ("job", "x"), ("i", "2")]),
            vec![(0, 2.0)],
        ),
        (
            labels(&[("__name__", "b"), ("job", "x"), ("v", "9")]),
            vec![(0, 10.0)],
        ),
    ])
    .await;
    let t = TenantId::default();
    let err = e.instant(&t, "a * on(job) b", 0).await.unwrap_err();
    assert!(matches!(err, Error::Execution(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("many-to-one matching must be explicit")
    );
    let ok = vector(&e, "a * on(job) group_left(v) b", 0).await;
    assert_eq!(ok.len(), 2);
    assert!(
        ok.iter()
            .all(|(l, _)| l.iter().any(|(n, v)| n == "v" && v == "9"))
    );
    let err = e.instant(&t, "b * on(job) group_right a", 0).await;
    assert!(err.is_ok());
    let err = e
        .instant(&t, "b / on(job) group_left a", 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("found duplicate series"), "{err}");
}

#[tokio::test]
async fn range_queries_are_bounded() {
    let (e, _d) = engine(vec![(
        labels(&[("__name__", "up")]),
        (0..100).map(|i| (i * 1000, i as f64)).collect(),
    )])
    .await;
    let t = TenantId::default();
    assert!(matches!(
        e.range(&t, "up", 0, 10, 0).await,
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        e.range(&t, "up", 0, 11_001, 1).await,
        Err(Error::BadRequest(m)) if m.contains("11,000 points")
    ));
    // Exactly 11 000 steps (11 001 points) is still allowed, as in Prometheus.
    let edge = e.range(&t, "up", 0, 11_000, 1).await.unwrap();
    assert!(matches!(edge.value, Value::Matrix(_)));
    assert!(matches!(
        e.range(&t, "sum(", 0, 10, 1).await,
        Err(Error::BadRequest(_))
    ));
    let deep = format!("{}up{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(
        e.instant(&t, &deep, 0).await,
        Err(Error::BadRequest(_))
    ));
    let long_chain = vec!["up"; 20_000].join(" + ");
    assert!(e.instant(&t, &long_chain, 0).await.is_err());
    let result = e.range(&t, "up * 2", 10_000, 20_000, 5_000).await.unwrap();
    match result.value {
        Value::Matrix(series) => {
            assert_eq!(series.len(), 1);
            assert!(series[0].labels.is_empty(), "name dropped by the operator");
            assert_eq!(
                series[0].points,
                vec![(10_000, 20.0), (15_000, 30.0), (20_000, 40.0)]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn too_many_samples_is_refused() {
    let config = Config {
        max_samples: 50,
        ..Config::default()
    };
    let (e, _d) = engine_with(
        config,
        vec![(
            labels(&[("__name__", "up")]),
            (0..100).map(|i| (i * 1000, i as f64)).collect(),
        )],
    )
    .await;
    let err = e
        .instant(&TenantId::default(), "sum_over_time(up[5m])", 100_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)));
    assert!(err.to_string().contains("too many samples"));
}

#[tokio::test]
async fn subqueries_and_at_modifier() {
    let (e, _d) = engine(vec![(
        labels(&[("__name__", "c")]),
        (0..=20).map(|i| (i * 60_000, (i * 60) as f64)).collect(),
    )])
    .await;
    // rate is 1/s everywhere; max over a subquery of it is 1.
    let v = vector(&e, "max_over_time(rate(c[5m])[10m:1m])", 20 * 60_000).await;
    assert!((v[0].1 - 1.0).abs() < 1e-9);
    // @ pins the evaluation time.
    let v = vector(&e, "c @ 120", 20 * 60_000).await;
    assert_eq!(v[0].1, 120.0);
    let v = vector(&e, "timestamp(c offset 1m)", 20 * 60_000).await;
    assert_eq!(v[0].1, 19.0 * 60.0);
}

#[tokio::test]
async fn hostile_queries_fail_cleanly() {
    let (e, _d) = engine(vec![(
        labels(&[("__name__", "up")]),
        (0..10).map(|i| (i * 1000, i as f64)).collect(),
    )])
    .await;
    let t = TenantId::default();
    for query in [
        "up @ 1e300",
        "up @ -1e300",
        "up offset 1000000y",
        "up offset -1000000y",
        "rate(up[1000000y])",
        "max_over_time(up[1000000y:1ms])",
        "max_over_time(up[10s:1ms] @ 1e15)",
        "topk(1e300, up)",
        "topk(-1e300, up)",
        "quantile(NaN, up)",
        "histogram_quantile(0.5, up)",
        "label_replace(up, \"a\", \"$1$2$x\", \"__name__\", \"(.*)\")",
        "round(up, 0)",
        "day_of_month(up * 1e300)",
        "predict_linear(up[1m], 1e300)",
        "count_values(\"x\", up)",
        "absent(nonexistent{a=\"b\",a=\"c\"})",
        "sort_by_label(up, \"x\")",
    ] {
        let instant = e.instant(&t, query, 9_000).await;
        assert!(
            !matches!(instant, Err(Error::Internal(_))),
            "{query}: {instant:?}"
        );
        let range = e
            .range(&t, query, i64::MIN / 2, i64::MIN / 2 + 10_000, 1_000)
            .await;
        assert!(
            !matches!(range, Err(Error::Internal(_))),
            "{query}: {range:?}"
        );
    }
    let huge = e.range(&t, "up", i64::MIN, i64::MAX, i64::MAX).await;
    assert!(
        huge.is_ok() || matches!(huge, Err(Error::BadRequest(_))),
        "{huge:?}"
    );
}

/// A rough throughput figure (debug build): run with `--ignored --nocapture`.
#[tokio::test]
#[ignore]
#[allow(clippy::print_stderr)]
async fn measure_range_query() {
    let day = 86_400_000i64;
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..200)
        .map(|i| {
            let instance = i.to_string();
            let job = format!("job{}", i % 4);
            (
                labels(&[
                    ("__name__", "http_requests_total"),
                    ("instance", instance.as_str()),
                    ("job", job.as_str()),
                ]),
                (0..day / 15_000)
                    .map(|k| (k * 15_000, (k * (i + 1)) as f64))
                    .collect(),
            )
        })
        .collect();
    let samples: usize = series.iter().map(|(_, s)| s.len()).sum();
    let (e, _d) = engine(series).await;
    for query in [
        "sum by (job) (rate(http_requests_total[5m]))",
        "http_requests_total",
        "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    ] {
        let started = Instant::now();
        let result = e
            .range(&TenantId::default(), query, 0, day, 60_000)
            .await
            .unwrap();
        let points: usize = match &result.value {
            Value::Matrix(m) => m.iter().map(|s| s.points.len()).sum(),
            _ => 0,
        };
        eprintln!(
            "{query}: {samples} samples loaded, 1441 steps, {points} points out in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn range_subqueries_match_instant_evaluation() {
    let (e, _d) = engine(vec![
        (
            labels(&[("__name__", "c"), ("i", "1")]),
            (0..120)
                .map(|k| (k * 10_000, ((k * 7) % 13) as f64))
                .collect(),
        ),
        (
            labels(&[("__name__", "c"), ("i", "2")]),
            (30..90).map(|k| (k * 10_000, k as f64)).collect(),
        ),
    ])
    .await;
    let t = TenantId::default();
    for query in [
        "max_over_time(rate(c[1m])[5m:30s])",
        "sum_over_time(c[2m:20s] offset 1m)",
        "avg_over_time(max_over_time(c[1m:10s])[3m:30s])",
    ] {
        let range = e.range(&t, query, 0, 1_200_000, 45_000).await.unwrap();
        let Value::Matrix(series) = range.value else {
            panic!("matrix expected")
        };
        let mut at = 0;
        while at <= 1_200_000 {
            let instant = vector(&e, query, at).await;
            for (labels, v) in instant {
                let s = series
                    .iter()
                    .find(|s| {
                        s.labels
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .eq(labels.iter().cloned())
                    })
                    .unwrap_or_else(|| panic!("{query} at {at}: missing {labels:?}"));
                let p = s.points.iter().find(|p| p.0 == at).unwrap();
                assert!(
                    (p.1 - v).abs() < 1e-9 || (p.1.is_nan() && v.is_nan()),
                    "{query} at {at}"
                );
            }
            at += 45_000;
        }
    }
}

#[tokio::test]
async fn deepest_accepted_queries_evaluate() {
    let (e, _d) = engine(vec![(labels(&[("__name__", "up")]), vec![(0, 1.0)])]).await;
    let t = TenantId::default();
    let nested = format!("{}up{}", "abs(".repeat(250), ")".repeat(250));
    assert_eq!(vector(&e, &nested, 0).await[0].1, 1.0);
    let chain = vec!["up"; 900].join(" + ");
    assert_eq!(vector(&e, &chain, 0).await[0].1, 900.0);
    let scalars = vec!["1"; 900].join(" * ");
    assert!(e.range(&t, &scalars, 0, 60_000, 15_000).await.is_ok());
}

#[tokio::test]
async fn operator_floods_are_refused_before_parsing() {
    let (e, _d) = engine(vec![(labels(&[("__name__", "up")]), vec![(0, 1.0)])]).await;
    let t = TenantId::default();
    let flood = vec!["up"; 3_000].join(" or ");
    let error = e.instant(&t, &flood, 0).await.unwrap_err();
    assert!(matches!(error, Error::BadRequest(_)), "{error}");
    assert!(error.to_string().contains("binary operators"), "{error}");
    assert!(parse_checked(&vec!["1"; 3_000].join("+")).is_err());
    // Operators inside strings are not counted.
    let regex = format!("up{{job=~\"{}\"}}", vec!["a-b"; 5_000].join("|"));
    assert!(parse_checked(&regex).is_ok());
}

#[tokio::test]
async fn annotations_name_what_prometheus_names() {
    let points: Vec<(i64, f64)> = (1..=8).map(|i| (i * 15_000, i as f64)).collect();
    let (e, _d) = engine(vec![
        (labels(&[("__name__", "queue_depth")]), points.clone()),
        (labels(&[("__name__", "calls_total")]), points.clone()),
        (
            labels(&[("__name__", "latency_bucket"), ("le", "0.1")]),
            points.iter().map(|(t, v)| (*t, v * 2.0)).collect(),
        ),
        (
            labels(&[("__name__", "latency_bucket"), ("le", "+Inf")]),
            points.clone(),
        ),
        (
            labels(&[("__name__", "latency_bucket"), ("le", "fast")]),
            points.clone(),
        ),
    ])
    .await;
    let tenant = TenantId::default();
    // Each annotation ends with where the node it is about starts: line and column.
    let non_counter = "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"queue_depth\"";
    for (query, at) in [
        ("rate(queue_depth[1m])", "(1:6)"),
        ("increase(queue_depth[1m])", "(1:10)"),
    ] {
        let non_counter = format!("{non_counter} {at}");
        let instant = e.instant(&tenant, query, 120_000).await.unwrap();
        assert_eq!(instant.infos, std::slice::from_ref(&non_counter), "{query}");
        let range = e
            .range(&tenant, query, 60_000, 120_000, 15_000)
            .await
            .unwrap();
        assert_eq!(range.infos, [non_counter], "{query} over a range: once");
    }
    for query in ["rate(calls_total[1m])", "delta(queue_depth[1m])"] {
        let result = e.instant(&tenant, query, 120_000).await.unwrap();
        assert!(result.infos.is_empty(), "{query}: {:?}", result.infos);
    }
    // `le="fast"` is skipped with a warning; the 0.1 bucket above +Inf is raised to it.
    let result = e
        .instant(&tenant, "histogram_quantile(0.5, latency_bucket)", 120_000)
        .await
        .unwrap();
    assert_eq!(
        result.warnings,
        [
            "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"fast\" for metric name \"latency_bucket\" (1:25)"
        ]
    );
    assert_eq!(
        result.infos,
        [
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (and may give inaccurate results) for metric name \"\" (1:25)"
        ]
    );
    // A quantile outside [0, 1] (NaN included) answers ±Inf / NaN with a warning, on the
    // per-step path (instant) and on the stepped one (range).
    for (q, shown) in [("2", "2"), ("-1", "-1"), ("NaN", "NaN")] {
        let query = format!("quantile_over_time({q}, queue_depth[1m])");
        let warning =
            format!("PromQL warning: quantile value should be between 0 and 1, got {shown} (1:20)");
        let instant = e.instant(&tenant, &query, 120_000).await.unwrap();
        assert_eq!(instant.warnings, std::slice::from_ref(&warning), "{query}");
        let range = e
            .range(&tenant, &query, 60_000, 120_000, 15_000)
            .await
            .unwrap();
        assert_eq!(range.warnings, [warning], "{query} over a range: once");
    }
    let result = e
        .instant(&tenant, "quantile_over_time(0.5, queue_depth[1m])", 120_000)
        .await
        .unwrap();
    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    let result = e
        .instant(&tenant, "histogram_quantile(NaN, latency_bucket)", 120_000)
        .await
        .unwrap();
    assert!(
        result.warnings.contains(
            &"PromQL warning: quantile value should be between 0 and 1, got NaN (1:20)".into()
        ),
        "{:?}",
        result.warnings
    );
    // The aggregation's quantile is named at its parameter, on a later line here.
    let result = e
        .instant(&tenant, "sum(\n  quantile(1.5, queue_depth)\n)", 120_000)
        .await
        .unwrap();
    assert_eq!(
        result.warnings,
        ["PromQL warning: quantile value should be between 0 and 1, got 1.5 (2:12)"]
    );
    // Sorting does nothing to a range query's answer, which says so; an instant one
    // sorts without a word.
    let sorted = "PromQL warning: sort is ineffective for range queries since results are always ordered by labels";
    for query in [
        "sort(queue_depth)",
        "sort_by_label_desc(queue_depth, \"x\")",
    ] {
        let range = e
            .range(&tenant, query, 60_000, 120_000, 15_000)
            .await
            .unwrap();
        assert_eq!(range.warnings, [format!("{sorted} (1:1)")], "{query}");
        let instant = e.instant(&tenant, query, 120_000).await.unwrap();
        assert!(
            instant.warnings.is_empty(),
            "{query}: {:?}",
            instant.warnings
        );
    }
    let range = e
        .range(
            &tenant,
            "max(sort_desc(queue_depth))",
            60_000,
            120_000,
            15_000,
        )
        .await
        .unwrap();
    assert_eq!(range.warnings, [format!("{sorted} (1:5)")]);
}
