//! TraceQL metrics (`{…} | rate() by (…)` and friends) over a window, bucketed by step.

use std::collections::{BTreeMap, HashMap};

use proto::{TenantId, TraceId};

use super::rows::{SpanBatch, SpanRef};
use super::traceql::{Labels, MetricFunction, Query, Stage, Value};
use super::{TimeRange, scan, with_timeout};
use crate::{Error, QueryContext, Result};

/// Most buckets one metrics query may produce.
pub const MAX_BUCKETS: i64 = 11_000;

/// One output series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// Its labels: the `by (…)` values, plus `p` for quantiles.
    pub labels: Vec<(String, Value)>,
    /// `(bucket start in Unix ms, value)`, ascending.
    pub samples: Vec<(i64, f64)>,
}

/// The series of a metrics query, and how many traces and spans were read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsResult {
    /// The series, sorted by labels.
    pub series: Vec<MetricSeries>,
    /// Traces examined.
    pub inspected_traces: usize,
    /// Spans examined.
    pub inspected_spans: usize,
}

/// Runs a TraceQL metrics query over `range` with buckets of `step_ns`.
pub async fn query_range(
    context: &QueryContext,
    tenant: &TenantId,
    query: &Query,
    range: TimeRange,
    step_ns: i64,
) -> Result<MetricsResult> {
    if !matches!(query.stages.last(), Some(Stage::Metric { .. })) {
        return Err(Error::BadRequest(
            "a metrics query ends with rate(), count_over_time(), quantile_over_time(…), min_over_time(…), max_over_time(…) or avg_over_time(…)".into(),
        ));
    }
    if step_ns <= 0 {
        return Err(Error::BadRequest("step must be positive".into()));
    }
    let range = range.validate()?;
    let buckets = (range.end_ns - range.start_ns) / step_ns + 1;
    if buckets > MAX_BUCKETS {
        return Err(Error::TooLarge(format!(
            "{buckets} steps exceed the {MAX_BUCKETS} a query may have: raise the step"
        )));
    }
    with_timeout(context, async {
        let batches = scan(context, tenant, range, None).await?;
        Ok(compute(&batches, query, range, step_ns, buckets as usize))
    })
    .await
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) fn compute(
    batches: &[SpanBatch],
    query: &Query,
    range: TimeRange,
    step_ns: i64,
    buckets: usize,
) -> MetricsResult {
    let Some(Stage::Metric { function, .. }) = query.stages.last() else {
        return MetricsResult::default();
    };
    let mut traces: HashMap<TraceId, Vec<SpanRef<'_>>> = HashMap::new();
    for batch in batches {
        for row in 0..batch.len() {
            let span = batch.span(row);
            traces.entry(span.trace_id()).or_default().push(span);
        }
    }
    // labels (as text) → (labels, values per bucket)
    let mut groups: BTreeMap<String, (Labels, Vec<Vec<f64>>)> = BTreeMap::new();
    for spans in traces.values() {
        for (labels, start, value) in query.metric_points(spans) {
            if start < range.start_ns || start > range.end_ns {
                continue;
            }
            let bucket = ((start - range.start_ns) / step_ns) as usize;
            let key = format!("{labels:?}");
            let entry = groups
                .entry(key)
                .or_insert_with(|| (labels, vec![Vec::new(); buckets]));
            match function {
                MetricFunction::Rate | MetricFunction::CountOverTime => entry.1[bucket].push(1.0),
                _ => {
                    if let Some(value) = value {
                        entry.1[bucket].push(value);
                    }
                }
            }
        }
    }
    let time_ms = |bucket: usize| (range.start_ns + bucket as i64 * step_ns) / 1_000_000;
    let step_seconds = step_ns as f64 / 1e9;
    let mut series = Vec::new();
    for (_, (labels, mut values)) in groups {
        match function {
            MetricFunction::Rate | MetricFunction::CountOverTime => {
                let scale = if *function == MetricFunction::Rate {
                    1.0 / step_seconds
                } else {
                    1.0
                };
                series.push(MetricSeries {
                    labels,
                    samples: values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (time_ms(i), v.len() as f64 * scale))
                        .collect(),
                });
            }
            MetricFunction::Quantile(_, quantiles) => {
                for bucket in &mut values {
                    bucket.sort_by(f64::total_cmp);
                }
                for q in quantiles {
                    let mut labels = labels.clone();
                    labels.push(("p".to_string(), Value::Float(*q)));
                    series.push(MetricSeries {
                        labels,
                        samples: values
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(i, v)| (time_ms(i), quantile(v, *q)))
                            .collect(),
                    });
                }
            }
            MetricFunction::Min(_) | MetricFunction::Max(_) | MetricFunction::Avg(_) => {
                series.push(MetricSeries {
                    labels,
                    samples: values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(i, v)| {
                            let value = match function {
                                MetricFunction::Min(_) => {
                                    v.iter().copied().fold(f64::INFINITY, f64::min)
                                }
                                MetricFunction::Max(_) => {
                                    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                                }
                                _ => v.iter().sum::<f64>() / v.len() as f64,
                            };
                            (time_ms(i), value)
                        })
                        .collect(),
                });
            }
        }
    }
    MetricsResult {
        series,
        inspected_traces: traces.len(),
        inspected_spans: batches.iter().map(SpanBatch::len).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::{batch, span};
    use super::*;

    const S: i64 = 1_000_000_000;

    fn run(query: &str) -> Vec<MetricSeries> {
        let mut spans = Vec::new();
        for i in 0..6u8 {
            let service = if i % 2 == 0 { "api" } else { "db" };
            spans.push(span(
                i + 1,
                1,
                None,
                service,
                "op",
                i as i64 * 10 * S,
                (i as i64 + 1) * S,
            ));
        }
        let range = TimeRange {
            start_ns: 0,
            end_ns: 59 * S,
        };
        let query = Query::parse(query).unwrap();
        compute(&[batch(&spans)], &query, range, 30 * S, 2).series
    }

    #[test]
    fn rate_and_count_by_service() {
        let series = run("{ } | rate() by (resource.service.name)");
        assert_eq!(series.len(), 2);
        assert_eq!(
            series[0].labels,
            [(
                "resource.service.name".to_string(),
                Value::Str("api".into())
            )]
        );
        // api spans start at 0, 20 and 40 s: 2 in the first 30 s bucket, 1 in the second.
        assert_eq!(series[0].samples, [(0, 2.0 / 30.0), (30_000, 1.0 / 30.0)]);
        let count = run(r#"{ resource.service.name = "db" } | count_over_time()"#);
        assert_eq!(count.len(), 1);
        // db spans start at 10, 30 and 50 s.
        assert_eq!(count[0].samples, [(0, 1.0), (30_000, 2.0)]);
    }

    #[test]
    fn quantiles_and_extremes_of_duration_in_seconds() {
        let series = run("{ } | quantile_over_time(duration, 0.5, 1)");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels, [("p".to_string(), Value::Float(0.5))]);
        // Durations 1..3 s in the first bucket, 4..6 s in the second.
        assert_eq!(series[0].samples, [(0, 2.0), (30_000, 5.0)]);
        assert_eq!(series[1].samples, [(0, 3.0), (30_000, 6.0)]);
        assert_eq!(
            run("{ } | max_over_time(duration)")[0].samples,
            [(0, 3.0), (30_000, 6.0)]
        );
        assert_eq!(
            run("{ } | min_over_time(duration)")[0].samples,
            [(0, 1.0), (30_000, 4.0)]
        );
        assert_eq!(
            run("{ } | avg_over_time(duration)")[0].samples,
            [(0, 2.0), (30_000, 5.0)]
        );
    }
}
