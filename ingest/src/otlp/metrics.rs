//! OTLP metrics → Prometheus-style series, named as Prometheus' OTLP receiver names
//! them (without its UTF-8 and unit-suffix options):
//!
//! | OTLP | series (type) |
//! |---|---|
//! | gauge | `name` (gauge) |
//! | sum, monotonic | `name_total` (counter; `_total` not doubled) |
//! | sum, not monotonic | `name` (gauge) |
//! | histogram | `name_bucket{le}` cumulative incl. `+Inf`, `name_sum`, `name_count` (histogram) |
//! | exponential histogram | the same classic series, `le` = bucket bounds `±base^i` and the zero threshold |
//! | summary | `name{quantile}`, `name_sum`, `name_count` (summary) |
//!
//! Names: characters outside `[a-zA-Z0-9_:]` become `_`. Labels: point attributes
//! (names sanitised to `[a-zA-Z_][a-zA-Z0-9_]*`; colliding values joined with `;`),
//! `job` = `[service.namespace/]service.name`, `instance` = `service.instance.id`; the
//! other resource attributes go to one `target_info` series per resource.
//! Times ns → ms. A point flagged NO_RECORDED_VALUE becomes the staleness marker.
//! Delta sums and (exponential) histograms are first accumulated into cumulative ones
//! per stream ([`super::delta`]), so `rate()`/`increase()` work on them.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use proto::TenantId;
use proto::otlp::{
    ExponentialHistogramDataPoint, ExportMetricsPartialSuccess, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    metric, number_data_point,
};
use storage::metrics::{MetricMetadata, MetricType, MetricsWrite, SeriesWrite};
use storage::model::Attributes;
use storage::series::Labels;

use super::convert::{Rejections, now_ns, origin};
use super::points::{Point, PointContext, classic_histogram, context};
use super::prom::{bound_text, exponential_bounds, label_name, metric_name};
use crate::{Error, IngestService, Protocol, Result};

/// Converts, stores and answers one metrics export.
pub(crate) async fn export(
    service: &IngestService,
    protocol: Protocol,
    tenant: &TenantId,
    mut request: ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse> {
    let (deltas, max_streams) = {
        let mut state = service.otlp_deltas();
        let outcome = state.accumulate(tenant, &mut request, Instant::now());
        (outcome, state.max_streams())
    };
    if deltas.out_of_order > 0 {
        tracing::debug!(
            tenant = %tenant,
            dropped = deltas.out_of_order,
            "dropped otlp delta points not newer than their stream's last point"
        );
    }
    let (write, mut rejections) = convert(&request, now_ns());
    deltas.reject_into(&mut rejections, max_streams);
    if write.series.is_empty() && rejections.count > 0 {
        return Err(Error::BadRequest(format!(
            "every data point was rejected: {}",
            rejections.message()
        )));
    }
    service.write_metrics(protocol, tenant, &write).await?;
    Ok(ExportMetricsServiceResponse {
        partial_success: (rejections.count > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(rejections.count).unwrap_or(i64::MAX),
            error_message: rejections.message(),
        }),
    })
}

/// Maps every data point of the request; invalid points are counted, not kept.
pub(crate) fn convert(
    request: &ExportMetricsServiceRequest,
    now_ns: i64,
) -> (MetricsWrite, Rejections) {
    let mut builder = Builder::default();
    for resource_metrics in &request.resource_metrics {
        let origin = origin(resource_metrics.resource.as_ref());
        let mut target = Attributes::new();
        if let Some(service) = origin.resource.get("service.name") {
            let job = match origin
                .resource
                .get("service.namespace")
                .filter(|ns| !ns.is_empty())
            {
                Some(namespace) => format!("{namespace}/{service}"),
                None => service.clone(),
            };
            target.insert("job".to_string(), job);
        }
        if let Some(instance) = origin.resource.get("service.instance.id") {
            target.insert("instance".to_string(), instance.clone());
        }
        builder.resource_latest_ms = None;
        for scope_metrics in &resource_metrics.scope_metrics {
            for metric in &scope_metrics.metrics {
                builder.metric(metric, &target, now_ns);
            }
        }
        builder.target_info(&target, &origin.resource);
    }
    builder.finish()
}

/// Most label pairs one request may expand into (series × labels, ~100 bytes each):
/// bounds memory, since one data point with many attributes and buckets fans out
/// into many label sets. Points past it are rejected (`partial_success`).
const MAX_LABELS_PER_REQUEST: usize = 2_000_000;

/// Accumulates series, exemplars and metadata of one request.
#[derive(Default)]
struct Builder {
    series: Vec<SeriesWrite>,
    by_labels: HashMap<Labels, usize>,
    metadata: BTreeMap<String, MetricMetadata>,
    rejections: Rejections,
    /// Label pairs committed so far (against [`MAX_LABELS_PER_REQUEST`]).
    labels_used: usize,
    /// Newest sample time of the current resource, for its `target_info`.
    resource_latest_ms: Option<i64>,
}

impl Builder {
    fn metric(&mut self, metric: &Metric, target: &Attributes, now_ns: i64) {
        let name = metric_name(&metric.name);
        let Some(data) = &metric.data else {
            return self
                .rejections
                .reject(1, || format!("metric {:?} has no data", metric.name));
        };
        if name.is_empty() {
            let points = point_count(data);
            return self
                .rejections
                .reject(points, || "metric without a name".to_string());
        }
        let (family, kind) = match data {
            metric::Data::Gauge(gauge) => {
                for point in &gauge.data_points {
                    self.number_point(&name, point, target, now_ns);
                }
                (name.clone(), MetricType::Gauge)
            }
            metric::Data::Sum(sum) if sum.is_monotonic => {
                let counter = if name.ends_with("_total") {
                    name.clone()
                } else {
                    format!("{name}_total")
                };
                for point in &sum.data_points {
                    self.number_point(&counter, point, target, now_ns);
                }
                (counter, MetricType::Counter)
            }
            metric::Data::Sum(sum) => {
                for point in &sum.data_points {
                    self.number_point(&name, point, target, now_ns);
                }
                (name.clone(), MetricType::Gauge)
            }
            metric::Data::Histogram(histogram) => {
                for point in &histogram.data_points {
                    self.histogram_point(&name, point, target, now_ns);
                }
                (name.clone(), MetricType::Histogram)
            }
            metric::Data::ExponentialHistogram(histogram) => {
                for point in &histogram.data_points {
                    self.exponential_point(&name, point, target, now_ns);
                }
                (name.clone(), MetricType::Histogram)
            }
            metric::Data::Summary(summary) => {
                for point in &summary.data_points {
                    self.summary_point(&name, point, target, now_ns);
                }
                (name.clone(), MetricType::Summary)
            }
        };
        self.metadata.insert(
            family.clone(),
            MetricMetadata {
                metric: family,
                kind,
                help: metric.description.clone(),
                unit: metric.unit.clone(),
            },
        );
    }

    fn commit(&mut self, result: Result<Point, String>) {
        match result {
            Err(reason) => self.rejections.reject(1, || reason),
            Ok(point) if self.labels_used + point.label_pairs > MAX_LABELS_PER_REQUEST => {
                self.rejections.reject(1, || {
                    format!("request expands to more than {MAX_LABELS_PER_REQUEST} labels; send smaller batches")
                });
            }
            Ok(point) => {
                self.labels_used += point.label_pairs;
                for (labels, sample, exemplars) in point.samples {
                    let latest = self
                        .resource_latest_ms
                        .map_or(sample.ts_ms, |t| t.max(sample.ts_ms));
                    self.resource_latest_ms = Some(latest);
                    let index = *self.by_labels.entry(labels.clone()).or_insert_with(|| {
                        self.series.push(SeriesWrite {
                            labels,
                            ..SeriesWrite::default()
                        });
                        self.series.len() - 1
                    });
                    self.series[index].samples.push(sample);
                    self.series[index].exemplars.extend(exemplars);
                }
            }
        }
    }

    fn number_point(
        &mut self,
        name: &str,
        point: &NumberDataPoint,
        target: &Attributes,
        now_ns: i64,
    ) {
        let result = (|| {
            let context = context(
                name,
                &point.attributes,
                point.time_unix_nano,
                point.flags,
                &point.exemplars,
                target,
                now_ns,
            )?;
            let value = match point.value {
                Some(number_data_point::Value::AsDouble(value)) => value,
                Some(number_data_point::Value::AsInt(value)) => value as f64,
                None if context.stale => f64::NAN,
                None => return Err(format!("metric {name:?}: data point has no value")),
            };
            let mut out = Point::default();
            context.push(&mut out, name, None, value)?;
            context.attach_exemplars(&mut out, |_| true);
            Ok(out)
        })();
        self.commit(result);
    }

    fn histogram_point(
        &mut self,
        name: &str,
        point: &HistogramDataPoint,
        target: &Attributes,
        now_ns: i64,
    ) {
        let result = (|| {
            let context = context(
                name,
                &point.attributes,
                point.time_unix_nano,
                point.flags,
                &point.exemplars,
                target,
                now_ns,
            )?;
            let buckets = &point.bucket_counts;
            if !buckets.is_empty() && buckets.len() != point.explicit_bounds.len() + 1 {
                return Err(format!(
                    "metric {name:?}: {} bucket counts for {} bounds",
                    buckets.len(),
                    point.explicit_bounds.len()
                ));
            }
            let bounds = point
                .explicit_bounds
                .iter()
                .copied()
                .zip(buckets.iter().copied());
            let mut out = Point::default();
            classic_histogram(&context, &mut out, name, bounds, point.count, point.sum)?;
            Ok(out)
        })();
        self.commit(result);
    }

    fn exponential_point(
        &mut self,
        name: &str,
        point: &ExponentialHistogramDataPoint,
        target: &Attributes,
        now_ns: i64,
    ) {
        let result = (|| {
            let context = context(
                name,
                &point.attributes,
                point.time_unix_nano,
                point.flags,
                &point.exemplars,
                target,
                now_ns,
            )?;
            if !(-10..=20).contains(&point.scale) {
                return Err(format!(
                    "metric {name:?}: exponential scale {} out of range",
                    point.scale
                ));
            }
            let bounds = exponential_bounds(point);
            let mut out = Point::default();
            classic_histogram(
                &context,
                &mut out,
                name,
                bounds.into_iter(),
                point.count,
                point.sum,
            )?;
            Ok(out)
        })();
        self.commit(result);
    }

    fn summary_point(
        &mut self,
        name: &str,
        point: &SummaryDataPoint,
        target: &Attributes,
        now_ns: i64,
    ) {
        let result = (|| {
            let context = context(
                name,
                &point.attributes,
                point.time_unix_nano,
                point.flags,
                &[],
                target,
                now_ns,
            )?;
            let mut out = Point::default();
            for quantile in &point.quantile_values {
                context.push(
                    &mut out,
                    name,
                    Some(("quantile", bound_text(quantile.quantile))),
                    quantile.value,
                )?;
            }
            context.push(&mut out, &format!("{name}_sum"), None, point.sum)?;
            context.push(&mut out, &format!("{name}_count"), None, point.count as f64)?;
            Ok(out)
        })();
        self.commit(result);
    }

    /// `target_info{job, instance, <other resource attributes>} 1` at the newest sample
    /// time of the resource, as Prometheus' OTLP receiver writes it (when the resource
    /// has attributes beyond the ones `job`/`instance` already carry).
    fn target_info(&mut self, target: &Attributes, resource: &Attributes) {
        const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];
        let Some(ts_ms) = self.resource_latest_ms else {
            return;
        };
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in resource
            .iter()
            .filter(|(k, _)| !IDENTIFYING.contains(&k.as_str()))
        {
            let name = label_name(key);
            if !name.is_empty() {
                labels.insert(name, value.clone());
            }
        }
        if labels.is_empty() {
            return;
        }
        labels.extend(target.iter().map(|(k, v)| (k.clone(), v.clone())));
        let context = PointContext {
            labels,
            ts_ms,
            stale: false,
            exemplars: &[],
        };
        let mut point = Point::default();
        let result = context
            .push(&mut point, "target_info", None, 1.0)
            .map(|()| point);
        self.commit(result);
        self.metadata.insert(
            "target_info".to_string(),
            MetricMetadata {
                metric: "target_info".to_string(),
                kind: MetricType::Gauge,
                help: "Target metadata".to_string(),
                unit: String::new(),
            },
        );
    }

    fn finish(self) -> (MetricsWrite, Rejections) {
        let write = MetricsWrite {
            series: self.series,
            metadata: self.metadata.into_values().collect(),
        };
        (write, self.rejections)
    }
}

fn point_count(data: &metric::Data) -> u64 {
    let points = match data {
        metric::Data::Gauge(gauge) => gauge.data_points.len(),
        metric::Data::Sum(sum) => sum.data_points.len(),
        metric::Data::Histogram(histogram) => histogram.data_points.len(),
        metric::Data::ExponentialHistogram(histogram) => histogram.data_points.len(),
        metric::Data::Summary(summary) => summary.data_points.len(),
    };
    points as u64
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
