//! Delta → cumulative for OTLP sums, histograms and exponential histograms, as the
//! OpenTelemetry collector's `deltatocumulative` processor does it, so that PromQL's
//! `rate()`/`increase()` read them like any Prometheus counter.
//!
//! A stream is one tenant + resource + scope + metric (name, unit, kind) + point
//! attributes. Each keeps its running total, the start time of its first point and the
//! time of its newest one. A delta point newer than that is added and rewritten in
//! place as a cumulative point (start time = the stream's start); a point not newer
//! (a duplicate, a retry of an already counted export, or out of order) is dropped.
//! The state lives in memory only and is bounded: at most
//! `ingest.otlp_delta_max_streams` streams; a stream not written for
//! `ingest.otlp_delta_max_stale` is forgotten; past the limit new streams are rejected
//! (`partial_success`). After a restart a stream starts again from its next delta:
//! PromQL sees that as a counter reset, which `rate()` handles.
//!
//! Histograms whose bucket bounds change start a new cumulative series (a reset);
//! exponential histograms are merged at the smaller of the two scales (downscaled
//! further when the buckets would span more than [`MAX_EXPONENTIAL_BUCKETS`]).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

use proto::TenantId;
use proto::otlp::{
    AggregationTemporality, DataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint,
    KeyValue, Message, NumberDataPoint, exponential_histogram_data_point::Buckets, metric,
    number_data_point,
};
use proto::otlp::{ExportMetricsServiceRequest, InstrumentationScope, Metric};

use super::convert::Rejections;

/// Most buckets per sign an accumulated exponential histogram keeps (the OTel SDKs'
/// default maximum size); wider ones are downscaled.
pub(crate) const MAX_EXPONENTIAL_BUCKETS: usize = 160;

/// The running totals of every delta stream (one per server, shared by all tenants).
#[derive(Debug)]
pub(crate) struct DeltaState {
    streams: HashMap<u128, Stream>,
    max_streams: usize,
    max_stale: Duration,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Stream {
    start_ns: u64,
    last_ns: u64,
    last_seen: Instant,
    total: Total,
}

#[derive(Debug, Clone)]
enum Total {
    Sum(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
    },
    Exponential(Exponential),
}

#[derive(Debug, Clone)]
struct Exponential {
    scale: i32,
    zero_threshold: f64,
    zero_count: u64,
    positive: Dense,
    negative: Dense,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

/// Bucket counts at consecutive indexes from `offset`.
#[derive(Debug, Clone, Default)]
struct Dense {
    offset: i32,
    counts: Vec<u64>,
}

/// What one request's accumulation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DeltaOutcome {
    /// Delta points rewritten as cumulative.
    pub accumulated: u64,
    /// Points dropped because they were not newer than their stream's last point.
    pub out_of_order: u64,
    /// Points rejected because the stream limit was reached.
    pub over_limit: u64,
}

impl DeltaOutcome {
    /// Adds the rejected points to `rejections` (for `partial_success`).
    pub(crate) fn reject_into(&self, rejections: &mut Rejections, max_streams: usize) {
        if self.over_limit > 0 {
            rejections.reject(self.over_limit, || {
                format!(
                    "delta temporality: more than {max_streams} streams are being accumulated \
                     (ingest.otlp_delta_max_streams); new streams are refused until idle ones expire"
                )
            });
        }
    }
}

const DELTA: i32 = AggregationTemporality::Delta as i32;
const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

impl DeltaState {
    /// An empty state holding at most `max_streams` streams, each forgotten after
    /// `max_stale` without a point.
    pub(crate) fn new(max_streams: usize, max_stale: Duration) -> Self {
        DeltaState {
            streams: HashMap::new(),
            max_streams,
            max_stale,
            last_sweep: Instant::now(),
        }
    }

    /// Streams currently held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// The configured stream limit.
    pub(crate) fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Rewrites every delta sum, histogram and exponential histogram of `request` as
    /// cumulative, in place; dropped points are removed from the request.
    pub(crate) fn accumulate(
        &mut self,
        tenant: &TenantId,
        request: &mut ExportMetricsServiceRequest,
        now: Instant,
    ) -> DeltaOutcome {
        let mut outcome = DeltaOutcome::default();
        if !has_delta(request) {
            return outcome;
        }
        self.sweep(now);
        for resource_metrics in &mut request.resource_metrics {
            let mut resource = StreamHasher::new();
            resource.write_str(tenant.as_str());
            let no_attributes = Vec::new();
            let attributes = resource_metrics
                .resource
                .as_ref()
                .map_or(&no_attributes, |r| &r.attributes);
            resource.write_attributes(attributes);
            for scope_metrics in &mut resource_metrics.scope_metrics {
                let mut scope = resource.clone();
                write_scope(&mut scope, scope_metrics.scope.as_ref());
                for metric in &mut scope_metrics.metrics {
                    self.metric(&scope, metric, now, &mut outcome);
                }
            }
        }
        outcome
    }

    /// Forgets streams idle for longer than `max_stale` (at most every few seconds).
    fn sweep(&mut self, now: Instant) {
        let every = self.max_stale.min(Duration::from_secs(10));
        if now.saturating_duration_since(self.last_sweep) < every {
            return;
        }
        self.last_sweep = now;
        let max_stale = self.max_stale;
        self.streams
            .retain(|_, stream| now.saturating_duration_since(stream.last_seen) <= max_stale);
    }

    fn metric(
        &mut self,
        scope: &StreamHasher,
        metric: &mut Metric,
        now: Instant,
        outcome: &mut DeltaOutcome,
    ) {
        let mut identity = scope.clone();
        identity.write_str(&metric.name);
        identity.write_str(&metric.unit);
        match &mut metric.data {
            Some(metric::Data::Sum(sum)) if sum.aggregation_temporality == DELTA => {
                identity.write_u64(1 + u64::from(sum.is_monotonic));
                sum.data_points.retain_mut(|point| {
                    let key = identity.point_key(&point.attributes);
                    self.number_point(key, point, now, outcome)
                });
                sum.aggregation_temporality = CUMULATIVE;
            }
            Some(metric::Data::Histogram(histogram))
                if histogram.aggregation_temporality == DELTA =>
            {
                identity.write_u64(3);
                histogram.data_points.retain_mut(|point| {
                    let key = identity.point_key(&point.attributes);
                    self.histogram_point(key, point, now, outcome)
                });
                histogram.aggregation_temporality = CUMULATIVE;
            }
            Some(metric::Data::ExponentialHistogram(histogram))
                if histogram.aggregation_temporality == DELTA =>
            {
                identity.write_u64(4);
                histogram.data_points.retain_mut(|point| {
                    let key = identity.point_key(&point.attributes);
                    self.exponential_point(key, point, now, outcome)
                });
                histogram.aggregation_temporality = CUMULATIVE;
            }
            _ => {}
        }
    }

    /// Finds the stream of `key` and adds a point to it with `add`, or starts it with
    /// `first`; returns the start time to stamp on the point, or `None` to drop it.
    fn update(
        &mut self,
        key: u128,
        times: (u64, u64),
        now: Instant,
        outcome: &mut DeltaOutcome,
        first: impl FnOnce() -> Total,
        add: impl FnOnce(&mut Total),
    ) -> Option<(u64, Total)> {
        let (start_ns, time_ns) = times;
        if let Some(stream) = self.streams.get_mut(&key) {
            if time_ns <= stream.last_ns {
                outcome.out_of_order += 1;
                return None;
            }
            add(&mut stream.total);
            stream.last_ns = time_ns;
            stream.last_seen = now;
            outcome.accumulated += 1;
            return Some((stream.start_ns, stream.total.clone()));
        }
        if self.streams.len() >= self.max_streams {
            outcome.over_limit += 1;
            return None;
        }
        let total = first();
        // A first delta with no start time covers an unknown span: it starts at itself.
        let start_ns = if start_ns == 0 || start_ns > time_ns {
            time_ns
        } else {
            start_ns
        };
        self.streams.insert(
            key,
            Stream {
                start_ns,
                last_ns: time_ns,
                last_seen: now,
                total: total.clone(),
            },
        );
        outcome.accumulated += 1;
        Some((start_ns, total))
    }

    fn number_point(
        &mut self,
        key: u128,
        point: &mut NumberDataPoint,
        now: Instant,
        outcome: &mut DeltaOutcome,
    ) -> bool {
        if is_stale(point.flags) {
            return true;
        }
        let delta = match point.value {
            Some(number_data_point::Value::AsDouble(value)) => value,
            Some(number_data_point::Value::AsInt(value)) => value as f64,
            // The converter rejects it with its own message.
            None => return true,
        };
        let times = (point.start_time_unix_nano, point.time_unix_nano);
        let add = |total: &mut Total| match total {
            Total::Sum(sum) => *sum += delta,
            other => *other = Total::Sum(delta),
        };
        let Some((start_ns, total)) =
            self.update(key, times, now, outcome, || Total::Sum(delta), add)
        else {
            return false;
        };
        let Total::Sum(sum) = total else {
            return false;
        };
        point.start_time_unix_nano = start_ns;
        point.value = Some(match point.value {
            Some(number_data_point::Value::AsInt(_))
                if sum.fract() == 0.0 && sum.abs() < 9.0e15 =>
            {
                number_data_point::Value::AsInt(sum as i64)
            }
            _ => number_data_point::Value::AsDouble(sum),
        });
        true
    }

    fn histogram_point(
        &mut self,
        key: u128,
        point: &mut HistogramDataPoint,
        now: Instant,
        outcome: &mut DeltaOutcome,
    ) -> bool {
        if is_stale(point.flags) {
            return true;
        }
        let add = |total: &mut Total| match total {
            Total::Histogram {
                bounds,
                counts,
                count,
                sum,
                min,
                max,
            } if *bounds == point.explicit_bounds && counts.len() == point.bucket_counts.len() => {
                for (total, delta) in counts.iter_mut().zip(&point.bucket_counts) {
                    *total = total.saturating_add(*delta);
                }
                *count = count.saturating_add(point.count);
                *sum = sum.zip(point.sum).map(|(a, b)| a + b);
                *min = merge(*min, point.min, f64::min);
                *max = merge(*max, point.max, f64::max);
            }
            // New bucket layout: a new cumulative series (the reader sees a reset).
            other => *other = histogram_total(point),
        };
        let first = || histogram_total(point);
        let times = (point.start_time_unix_nano, point.time_unix_nano);
        let Some((start_ns, total)) = self.update(key, times, now, outcome, first, add) else {
            return false;
        };
        let Total::Histogram {
            bounds,
            counts,
            count,
            sum,
            min,
            max,
        } = total
        else {
            return false;
        };
        point.start_time_unix_nano = start_ns;
        point.explicit_bounds = bounds;
        point.bucket_counts = counts;
        point.count = count;
        point.sum = sum;
        point.min = min;
        point.max = max;
        true
    }

    fn exponential_point(
        &mut self,
        key: u128,
        point: &mut ExponentialHistogramDataPoint,
        now: Instant,
        outcome: &mut DeltaOutcome,
    ) -> bool {
        if is_stale(point.flags) {
            return true;
        }
        let delta = Exponential::from_point(point);
        let first = {
            let delta = delta.clone();
            move || Total::Exponential(delta)
        };
        let add = |total: &mut Total| match total {
            Total::Exponential(sum) => sum.add(&delta),
            other => *other = Total::Exponential(delta.clone()),
        };
        let times = (point.start_time_unix_nano, point.time_unix_nano);
        let Some((start_ns, total)) = self.update(key, times, now, outcome, first, add) else {
            return false;
        };
        let Total::Exponential(total) = total else {
            return false;
        };
        point.start_time_unix_nano = start_ns;
        total.write_to(point);
        true
    }
}

fn histogram_total(point: &HistogramDataPoint) -> Total {
    Total::Histogram {
        bounds: point.explicit_bounds.clone(),
        counts: point.bucket_counts.clone(),
        count: point.count,
        sum: point.sum,
        min: point.min,
        max: point.max,
    }
}

fn merge(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

fn is_stale(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

fn has_delta(request: &ExportMetricsServiceRequest) -> bool {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .any(|metric| match &metric.data {
            Some(metric::Data::Sum(sum)) => sum.aggregation_temporality == DELTA,
            Some(metric::Data::Histogram(h)) => h.aggregation_temporality == DELTA,
            Some(metric::Data::ExponentialHistogram(h)) => h.aggregation_temporality == DELTA,
            _ => false,
        })
}

fn write_scope(hasher: &mut StreamHasher, scope: Option<&InstrumentationScope>) {
    match scope {
        Some(scope) => {
            hasher.write_str(&scope.name);
            hasher.write_str(&scope.version);
            hasher.write_attributes(&scope.attributes);
        }
        None => hasher.write_u64(0),
    }
}

/// A 128-bit stream identity built from two independently seeded SipHash states
/// (collisions between distinct streams are then negligible).
#[derive(Clone)]
struct StreamHasher {
    low: DefaultHasher,
    high: DefaultHasher,
}

impl StreamHasher {
    fn new() -> Self {
        let mut low = DefaultHasher::new();
        let mut high = DefaultHasher::new();
        low.write_u64(0x5157_4c49_4e45_0001);
        high.write_u64(0x5157_4c49_4e45_0002);
        StreamHasher { low, high }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.low.write(bytes);
        self.high.write(bytes);
    }

    fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    /// Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
    fn write_str(&mut self, text: &str) {
        self.write_u64(text.len() as u64);
        self.write(text.as_bytes());
    }

    /// Attributes in key order (senders may order them differently between exports).
    fn write_attributes(&mut self, attributes: &[KeyValue]) {
        let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        self.write_u64(sorted.len() as u64);
        let mut buffer = Vec::new();
        for attribute in sorted {
            buffer.clear();
            // Encoding into a Vec cannot fail.
            let _ = attribute.encode(&mut buffer);
            self.write_u64(buffer.len() as u64);
            self.write(&buffer);
        }
    }

    fn point_key(&self, attributes: &[KeyValue]) -> u128 {
        let mut hasher = self.clone();
        hasher.write_attributes(attributes);
        (u128::from(hasher.high.finish()) << 64) | u128::from(hasher.low.finish())
    }
}

impl Dense {
    /// The buckets as sent (empty buckets kept: they still name a bound).
    fn from_buckets(buckets: Option<&Buckets>) -> Self {
        match buckets {
            Some(b) => Dense {
                offset: b.offset,
                counts: b.bucket_counts.clone(),
            },
            None => Dense::default(),
        }
    }

    /// `(first index, one past the last index)`, or `None` when empty.
    fn span(&self) -> Option<(i64, i64)> {
        (!self.counts.is_empty()).then(|| {
            let low = i64::from(self.offset);
            (low, low + self.counts.len() as i64)
        })
    }

    /// Halves the resolution `by` times: index `i` becomes `i >> by`.
    fn downscale(&mut self, by: u32) {
        if by == 0 || self.counts.is_empty() {
            return;
        }
        let by = by.min(62);
        let low = i64::from(self.offset) >> by;
        let mut counts: Vec<u64> = Vec::new();
        for (k, count) in self.counts.iter().enumerate() {
            let index = ((i64::from(self.offset) + k as i64) >> by) - low;
            let slot = index as usize;
            if counts.len() <= slot {
                counts.resize(slot + 1, 0);
            }
            counts[slot] = counts[slot].saturating_add(*count);
        }
        self.offset = low as i32;
        self.counts = counts;
    }

    fn add(&mut self, other: &Dense) {
        let Some((other_low, other_high)) = other.span() else {
            return;
        };
        let (low, high) = match self.span() {
            Some((low, high)) => (low.min(other_low), high.max(other_high)),
            None => (other_low, other_high),
        };
        let mut counts = vec![0u64; (high - low) as usize];
        for source in [&*self, other] {
            let start = (i64::from(source.offset) - low) as usize;
            for (k, count) in source.counts.iter().enumerate() {
                counts[start + k] = counts[start + k].saturating_add(*count);
            }
        }
        self.offset = low as i32;
        self.counts = counts;
    }

    fn to_buckets(&self) -> Option<Buckets> {
        Some(Buckets {
            offset: self.offset,
            bucket_counts: self.counts.clone(),
        })
    }
}

/// How many halvings make the union of `a` and `b` (both at the same scale) fit in
/// [`MAX_EXPONENTIAL_BUCKETS`].
fn halvings_to_fit(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> u32 {
    let (low, high) = match (a, b) {
        (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => return 0,
    };
    let mut halvings = 0;
    let (mut low, mut high) = (low, high - 1);
    while high - low + 1 > MAX_EXPONENTIAL_BUCKETS as i64 && halvings < 62 {
        low >>= 1;
        high >>= 1;
        halvings += 1;
    }
    halvings
}

impl Exponential {
    fn from_point(point: &ExponentialHistogramDataPoint) -> Self {
        Exponential {
            scale: point.scale,
            zero_threshold: point.zero_threshold,
            zero_count: point.zero_count,
            positive: Dense::from_buckets(point.positive.as_ref()),
            negative: Dense::from_buckets(point.negative.as_ref()),
            count: point.count,
            sum: point.sum,
            min: point.min,
            max: point.max,
        }
    }

    fn downscale(&mut self, by: u32) {
        self.positive.downscale(by);
        self.negative.downscale(by);
        self.scale -= by as i32;
    }

    fn add(&mut self, delta: &Exponential) {
        let mut delta = delta.clone();
        let scale = self.scale.min(delta.scale);
        self.downscale((self.scale - scale) as u32);
        delta.downscale((delta.scale - scale) as u32);
        let halvings = halvings_to_fit(self.positive.span(), delta.positive.span())
            .max(halvings_to_fit(self.negative.span(), delta.negative.span()));
        self.downscale(halvings);
        delta.downscale(halvings);
        self.positive.add(&delta.positive);
        self.negative.add(&delta.negative);
        self.zero_threshold = self.zero_threshold.max(delta.zero_threshold);
        self.zero_count = self.zero_count.saturating_add(delta.zero_count);
        self.count = self.count.saturating_add(delta.count);
        self.sum = self.sum.zip(delta.sum).map(|(a, b)| a + b);
        self.min = merge(self.min, delta.min, f64::min);
        self.max = merge(self.max, delta.max, f64::max);
    }

    fn write_to(&self, point: &mut ExponentialHistogramDataPoint) {
        point.scale = self.scale;
        point.zero_threshold = self.zero_threshold;
        point.zero_count = self.zero_count;
        point.positive = self.positive.to_buckets();
        point.negative = self.negative.to_buckets();
        point.count = self.count;
        point.sum = self.sum;
        point.min = self.min;
        point.max = self.max;
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
