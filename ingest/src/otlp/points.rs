//! One OTLP data point on its way to series: its labels, time and staleness
//! ([`context`]), the samples it expands into ([`Point`]), and the classic
//! `_bucket`/`_sum`/`_count` layout both histogram kinds share.

use std::collections::BTreeMap;

use proto::otlp::{DataPointFlags, Exemplar as OtlpExemplar, KeyValue};
use storage::metrics::{Exemplar, Sample};
use storage::model::Attributes;
use storage::series::{Labels, METRIC_NAME_LABEL};

use super::convert::{nanos, too_far_in_future, value_text};
use super::prom::{NS_PER_MS, STALE_NAN, bound_text, convert_exemplar, label_name};

/// Most label pairs one data point may expand into.
pub(crate) const MAX_LABELS_PER_POINT: usize = 100_000;

/// The samples (and exemplars) one data point produces, before they are committed.
#[derive(Default)]
pub(crate) struct Point {
    pub(crate) samples: Vec<(Labels, Sample, Vec<Exemplar>)>,
    /// Label pairs of `samples` (against [`MAX_LABELS_PER_POINT`]).
    pub(crate) label_pairs: usize,
}

/// What every series of one data point shares.
pub(crate) struct PointContext<'a> {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) ts_ms: i64,
    pub(crate) stale: bool,
    pub(crate) exemplars: &'a [OtlpExemplar],
}

impl PointContext<'_> {
    fn value(&self, value: f64) -> f64 {
        if self.stale {
            f64::from_bits(STALE_NAN)
        } else {
            value
        }
    }

    /// Adds one series; `extra` is `le` or `quantile`.
    pub(crate) fn push(
        &self,
        point: &mut Point,
        name: &str,
        extra: Option<(&str, String)>,
        value: f64,
    ) -> Result<(), String> {
        point.label_pairs += self.labels.len() + 2;
        if point.label_pairs > MAX_LABELS_PER_POINT {
            return Err(format!(
                "metric {name:?}: data point expands to more than {MAX_LABELS_PER_POINT} labels"
            ));
        }
        let mut pairs: Vec<(String, String)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some((label, text)) = extra {
            pairs.retain(|(k, _)| k != label);
            pairs.push((label.to_string(), text));
        }
        pairs.push((METRIC_NAME_LABEL.to_string(), name.to_string()));
        let labels = Labels::new(pairs).map_err(|e| format!("metric {name:?}: {e}"))?;
        let sample = Sample {
            ts_ms: self.ts_ms,
            value: self.value(value),
        };
        point.samples.push((labels, sample, Vec::new()));
        Ok(())
    }

    /// Attaches the exemplars to the sample pushed last.
    pub(crate) fn attach_exemplars(&self, point: &mut Point, keep: impl Fn(f64) -> bool) {
        if let Some((_, _, exemplars)) = point.samples.last_mut() {
            exemplars.extend(
                self.exemplars
                    .iter()
                    .map(convert_exemplar)
                    .filter(|e| keep(e.value)),
            );
        }
    }
}

/// Labels, time and staleness of a data point; `Err` rejects it.
pub(crate) fn context<'a>(
    name: &str,
    attributes: &[KeyValue],
    time_unix_nano: u64,
    flags: u32,
    exemplars: &'a [OtlpExemplar],
    target: &Attributes,
    now_ns: i64,
) -> Result<PointContext<'a>, String> {
    let ts_ns = nanos(time_unix_nano);
    if ts_ns == 0 {
        return Err(format!("metric {name:?}: data point has no time"));
    }
    if too_far_in_future(ts_ns, now_ns) {
        return Err(format!(
            "metric {name:?}: data point more than 1h in the future ({ts_ns} ns)"
        ));
    }
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for attribute in attributes {
        let key = label_name(&attribute.key);
        if key.is_empty() {
            continue;
        }
        let text = attribute.value.as_ref().map(value_text).unwrap_or_default();
        labels
            .entry(key)
            .and_modify(|existing| {
                existing.push(';');
                existing.push_str(&text);
            })
            .or_insert(text);
    }
    for (key, value) in target {
        labels.insert(key.clone(), value.clone());
    }
    Ok(PointContext {
        labels,
        ts_ms: ts_ns.div_euclid(NS_PER_MS),
        stale: flags & DataPointFlags::NoRecordedValueMask as u32 != 0,
        exemplars,
    })
}

/// Emits `_bucket{le}` (cumulative, then `+Inf` = count), `_sum` when known, `_count`.
/// Exemplars go to the first bucket whose bound holds their value.
pub(crate) fn classic_histogram(
    context: &PointContext<'_>,
    out: &mut Point,
    name: &str,
    bounds: impl Iterator<Item = (f64, u64)>,
    count: u64,
    sum: Option<f64>,
) -> Result<(), String> {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0u64;
    let mut previous = f64::NEG_INFINITY;
    for (bound, bucket_count) in bounds {
        cumulative = cumulative.saturating_add(bucket_count);
        if bound.is_nan() || bound <= previous || bound == f64::INFINITY {
            continue;
        }
        context.push(
            out,
            &bucket,
            Some(("le", bound_text(bound))),
            cumulative as f64,
        )?;
        let lower = previous;
        context.attach_exemplars(out, |value| value > lower && value <= bound);
        previous = bound;
    }
    context.push(out, &bucket, Some(("le", "+Inf".to_string())), count as f64)?;
    context.attach_exemplars(out, |value| value > previous);
    if let Some(sum) = sum {
        context.push(out, &format!("{name}_sum"), None, sum)?;
    }
    context.push(out, &format!("{name}_count"), None, count as f64)?;
    Ok(())
}
