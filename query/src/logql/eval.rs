//! Executes LogQL: log queries into streams, metric queries into series per step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proto::TenantId;
use storage::{LogScan, Storage, TextQuery};

use super::ast::*;
use super::fetch::{self, Direction};
use super::pipeline::{self, Entry, read_number};
use super::rows::{Labels, LogLine};
use crate::{Error, Result};

/// Most steps a range query may evaluate.
pub const MAX_STEPS: usize = 11_000;
/// Most series a metric query may produce.
pub const MAX_SERIES: usize = 50_000;

/// One entry of a log query result with its labels split the way Loki's
/// `categorize-labels` response encoding splits them.
#[derive(Debug, Clone, PartialEq)]
pub struct CategorizedEntry {
    /// Time, Unix nanoseconds.
    pub ts_ns: i64,
    /// The (possibly reformatted) line.
    pub line: String,
    /// The entry's structured metadata (after the pipeline's `drop` / `keep`).
    pub structured_metadata: Labels,
    /// Labels the pipeline added (parsers, `label_format`, errors).
    pub parsed: Labels,
}

/// A stream of a log query result in the `categorize-labels` encoding: keyed by the
/// stream labels alone, each entry carrying its own metadata and parsed labels.
#[derive(Debug, Clone, PartialEq)]
pub struct CategorizedStream {
    /// Stream labels (as the pipeline left them, without extracted labels).
    pub labels: Labels,
    /// Entries in the requested direction.
    pub entries: Vec<CategorizedEntry>,
}

/// A stream of a log query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Stream labels (plus extracted labels).
    pub labels: Labels,
    /// `(ns, line)` in the requested direction.
    pub entries: Vec<(i64, String)>,
}

/// One series of a metric result: a value or none per step.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels.
    pub labels: Labels,
    /// One slot per step.
    pub points: Vec<Option<f64>>,
}

/// A metric result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Labelled series.
    Vector(Vec<Series>),
    /// One number per step.
    Scalar(Vec<f64>),
}

/// Evaluation steps, Unix milliseconds.
#[derive(Debug, Clone)]
pub struct Steps {
    /// Evaluation times in ms.
    pub times_ms: Vec<i64>,
}

impl Steps {
    /// Steps `start, start+step, … ≤ end` (ms).
    pub fn range(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Steps> {
        if step_ms <= 0 {
            return Err(Error::BadRequest("step must be positive".into()));
        }
        if end_ms < start_ms {
            return Err(Error::BadRequest("end must not be before start".into()));
        }
        let count = end_ms.saturating_sub(start_ms) / step_ms + 1;
        if count as usize > MAX_STEPS {
            return Err(Error::BadRequest(format!(
                "exceeded maximum resolution of {MAX_STEPS} points per series; raise the step"
            )));
        }
        Ok(Steps {
            times_ms: (0..count).map(|i| start_ms + i * step_ms).collect(),
        })
    }
}

/// A LogQL query against one tenant.
pub struct Evaluator<'a> {
    /// Storage.
    pub storage: &'a Arc<Storage>,
    /// Tenant.
    pub tenant: &'a TenantId,
}

/// The storage scan a selector and its leading line filters allow.
pub fn scan_for(log: &LogExpr, start_ns: i64, end_ns: i64) -> LogScan {
    let services = log
        .matchers
        .iter()
        .find(|m| m.name == "service_name" && m.op == MatchOp::Eq)
        .map(|m| vec![m.value.clone()])
        .unwrap_or_default();
    let mut texts = Vec::new();
    for stage in &log.stages {
        match stage {
            Stage::Line {
                op: FilterOp::Contains,
                values,
                ..
            } => {
                if values.iter().any(String::is_empty) {
                    continue;
                }
                let alternatives: Vec<TextQuery> =
                    values.iter().cloned().map(TextQuery::Contains).collect();
                texts.push(if alternatives.len() == 1 {
                    alternatives.into_iter().next().expect("one")
                } else {
                    TextQuery::Or(alternatives)
                });
            }
            Stage::Line {
                op: FilterOp::NotContains,
                values,
                ..
            } => {
                for value in values {
                    texts.push(TextQuery::Not(Box::new(TextQuery::Contains(value.clone()))));
                }
            }
            Stage::Line { .. } => {}
            // Stages after a parser or a format see a different line.
            _ => break,
        }
    }
    LogScan {
        start_ns,
        end_ns,
        services,
        trace_id: None,
        text: match texts.len() {
            0 => None,
            1 => texts.pop(),
            _ => Some(TextQuery::And(texts)),
        },
    }
}

fn entry_of(log: &LogExpr, line: &LogLine) -> Option<Entry> {
    let labels = line.stream_labels();
    let matched = log
        .matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)));
    if !matched {
        return None;
    }
    let mut entry = Entry {
        ts_ns: line.ts_ns,
        line: line.body.clone(),
        labels,
        metadata: line.metadata(),
    };
    pipeline::run(&log.stages, &mut entry).then_some(entry)
}

impl Evaluator<'_> {
    async fn entries(
        &self,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        limit: Option<usize>,
        direction: Direction,
    ) -> Result<Vec<Entry>> {
        let scan = scan_for(log, start_ns, end_ns);
        let keep = |line: &LogLine| entry_of(log, line).is_some();
        let lines = fetch::lines(self.storage, self.tenant, &scan, &keep, limit, direction).await?;
        Ok(lines
            .iter()
            .filter_map(|line| entry_of(log, line))
            .collect())
    }

    /// Runs a log query over `[start_ns, end_ns]` and groups the entries by their stream
    /// labels only, separating structured metadata and parsed labels per entry (Loki's
    /// `categorize-labels` encoding).
    pub async fn categorized_streams(
        &self,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<CategorizedStream>> {
        let scan = scan_for(log, start_ns, end_ns);
        let keep = |line: &LogLine| entry_of(log, line).is_some();
        let lines = fetch::lines(
            self.storage,
            self.tenant,
            &scan,
            &keep,
            Some(limit),
            direction,
        )
        .await?;
        let mut streams: BTreeMap<Labels, Vec<CategorizedEntry>> = BTreeMap::new();
        for line in &lines {
            let Some(entry) = entry_of(log, line) else {
                continue;
            };
            let original = line.stream_labels();
            let (stream, parsed): (Labels, Labels) = entry
                .labels
                .into_iter()
                .partition(|(name, _)| original.contains_key(name));
            streams.entry(stream).or_default().push(CategorizedEntry {
                ts_ns: entry.ts_ns,
                line: entry.line,
                structured_metadata: entry.metadata,
                parsed,
            });
        }
        Ok(streams
            .into_iter()
            .map(|(labels, entries)| CategorizedStream { labels, entries })
            .collect())
    }

    /// Runs a log query over `[start_ns, end_ns]`.
    pub async fn streams(
        &self,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<Stream>> {
        let entries = self
            .entries(log, start_ns, end_ns, Some(limit), direction)
            .await?;
        let mut streams: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
        for entry in entries {
            streams
                .entry(entry.labels)
                .or_default()
                .push((entry.ts_ns, entry.line));
        }
        Ok(streams
            .into_iter()
            .map(|(labels, entries)| Stream { labels, entries })
            .collect())
    }

    /// Evaluates a metric query at every step.
    pub async fn metric(&self, expr: &MetricExpr, steps: &Steps) -> Result<Value> {
        Box::pin(self.metric_inner(expr, steps)).await
    }

    async fn metric_inner(&self, expr: &MetricExpr, steps: &Steps) -> Result<Value> {
        let n = steps.times_ms.len();
        match expr {
            MetricExpr::Number(v) => Ok(Value::Scalar(vec![*v; n])),
            MetricExpr::Vector(v) => Ok(Value::Vector(vec![Series {
                labels: Labels::new(),
                points: vec![Some(*v); n],
            }])),
            MetricExpr::Range {
                func,
                param,
                log,
                unwrap,
                range_ms,
                offset_ms,
                grouping,
            } => {
                let first = steps.times_ms.first().copied().unwrap_or(0);
                let last = steps.times_ms.last().copied().unwrap_or(0);
                let start_ns = first
                    .saturating_sub(*offset_ms)
                    .saturating_sub(*range_ms)
                    .saturating_mul(1_000_000);
                let end_ns = last.saturating_sub(*offset_ms).saturating_mul(1_000_000);
                let entries = self
                    .entries(
                        log,
                        start_ns.saturating_add(1),
                        end_ns,
                        None,
                        Direction::Forward,
                    )
                    .await?;
                let mut samples: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
                for mut entry in entries {
                    let value = match (func, unwrap) {
                        (RangeFn::Bytes | RangeFn::BytesRate, _) => entry.line.len() as f64,
                        (_, Some(unwrap)) => {
                            let raw = entry
                                .labels
                                .remove(&unwrap.label)
                                .or_else(|| entry.metadata.get(&unwrap.label).cloned());
                            match raw.as_deref().and_then(|v| read_number(v, unwrap.kind)) {
                                Some(v) => v,
                                None => continue,
                            }
                        }
                        _ => 1.0,
                    };
                    let labels = match grouping {
                        Some(g) => project(&entry.labels, g),
                        None => entry.labels,
                    };
                    samples
                        .entry(labels)
                        .or_default()
                        .push((entry.ts_ns, value));
                    if samples.len() > MAX_SERIES {
                        return Err(Error::TooLarge(format!(
                            "the query produces more than {MAX_SERIES} series"
                        )));
                    }
                }
                let mut out = Vec::with_capacity(samples.len());
                for (labels, mut points) in samples {
                    points.sort_by_key(|p| p.0);
                    let mut series = Series {
                        labels,
                        points: vec![None; n],
                    };
                    for (i, t) in steps.times_ms.iter().enumerate() {
                        let hi = t.saturating_sub(*offset_ms).saturating_mul(1_000_000);
                        let lo = hi.saturating_sub(range_ms.saturating_mul(1_000_000));
                        let a = points.partition_point(|p| p.0 <= lo);
                        let b = points.partition_point(|p| p.0 <= hi);
                        if a < b {
                            series.points[i] =
                                window(*func, *param, &points[a..b], *range_ms as f64 / 1000.0);
                        }
                    }
                    if series.points.iter().any(Option::is_some) {
                        out.push(series);
                    }
                }
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Ok(Value::Vector(out))
            }
            MetricExpr::Agg {
                op,
                param,
                grouping,
                inner,
            } => {
                let Value::Vector(series) = self.metric(inner, steps).await? else {
                    return Err(Error::Execution(
                        "aggregations need a vector operand".into(),
                    ));
                };
                Ok(Value::Vector(aggregate(
                    *op,
                    *param,
                    grouping.as_ref(),
                    series,
                    n,
                )?))
            }
            MetricExpr::Binary {
                op,
                bool_modifier,
                lhs,
                rhs,
            } => {
                let lhs = self.metric(lhs, steps).await?;
                let rhs = self.metric(rhs, steps).await?;
                binary(*op, *bool_modifier, lhs, rhs, n)
            }
        }
    }
}

fn project(labels: &Labels, grouping: &Grouping) -> Labels {
    labels
        .iter()
        .filter(|(name, _)| grouping.labels.contains(name) != grouping.without)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn window(func: RangeFn, param: Option<f64>, points: &[(i64, f64)], range_s: f64) -> Option<f64> {
    let values = points.iter().map(|p| p.1);
    let count = points.len() as f64;
    Some(match func {
        RangeFn::Count => count,
        RangeFn::Rate => count / range_s,
        RangeFn::Bytes | RangeFn::Sum => values.sum(),
        RangeFn::BytesRate => values.sum::<f64>() / range_s,
        RangeFn::Avg => values.sum::<f64>() / count,
        RangeFn::Min => values.fold(f64::INFINITY, f64::min),
        RangeFn::Max => values.fold(f64::NEG_INFINITY, f64::max),
        RangeFn::First => points.first()?.1,
        RangeFn::Last => points.last()?.1,
        RangeFn::Stddev => {
            let mean = values.clone().sum::<f64>() / count;
            (values.map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt()
        }
        RangeFn::Quantile => {
            let mut sorted: Vec<f64> = values.collect();
            sorted.sort_by(f64::total_cmp);
            quantile(param.unwrap_or(0.5), &sorted)
        }
        RangeFn::Absent => return None,
    })
}

/// Prometheus' quantile over sorted values (linear interpolation).
fn quantile(q: f64, sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let rank = q * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let weight = rank - rank.floor();
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

fn aggregate(
    op: AggOp,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    series: Vec<Series>,
    n: usize,
) -> Result<Vec<Series>> {
    let key_of = |labels: &Labels| match grouping {
        Some(g) => project(labels, g),
        None => Labels::new(),
    };
    if matches!(op, AggOp::Topk | AggOp::Bottomk) {
        let k = param.unwrap_or(1.0);
        if !(1.0..=1e6).contains(&k) {
            return Err(Error::BadRequest("topk/bottomk need k ≥ 1".into()));
        }
        let k = k as usize;
        let mut groups: BTreeMap<Labels, Vec<usize>> = BTreeMap::new();
        for (i, s) in series.iter().enumerate() {
            groups.entry(key_of(&s.labels)).or_default().push(i);
        }
        let mut out: Vec<Series> = series
            .iter()
            .map(|s| Series {
                labels: s.labels.clone(),
                points: vec![None; n],
            })
            .collect();
        for members in groups.values() {
            for step in 0..n {
                let mut present: Vec<(usize, f64)> = members
                    .iter()
                    .filter_map(|i| series[*i].points[step].map(|v| (*i, v)))
                    .collect();
                present.sort_by(|a, b| match op {
                    AggOp::Topk => b.1.total_cmp(&a.1),
                    _ => a.1.total_cmp(&b.1),
                });
                for (i, v) in present.into_iter().take(k) {
                    out[i].points[step] = Some(v);
                }
            }
        }
        out.retain(|s| s.points.iter().any(Option::is_some));
        return Ok(out);
    }
    let mut groups: BTreeMap<Labels, Vec<Vec<f64>>> = BTreeMap::new();
    for s in &series {
        let slots = groups
            .entry(key_of(&s.labels))
            .or_insert_with(|| vec![Vec::new(); n]);
        for (step, value) in s.points.iter().enumerate() {
            if let Some(v) = value {
                slots[step].push(*v);
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(labels, slots)| Series {
            labels,
            points: slots
                .into_iter()
                .map(|values| {
                    if values.is_empty() {
                        return None;
                    }
                    let count = values.len() as f64;
                    Some(match op {
                        AggOp::Sum => values.iter().sum(),
                        AggOp::Avg => values.iter().sum::<f64>() / count,
                        AggOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                        AggOp::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        AggOp::Count => count,
                        AggOp::Stddev => {
                            let mean = values.iter().sum::<f64>() / count;
                            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt()
                        }
                        AggOp::Topk | AggOp::Bottomk => unreachable!("handled above"),
                    })
                })
                .collect(),
        })
        .filter(|s| s.points.iter().any(Option::is_some))
        .collect())
}

fn apply(op: BinOp, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(a == b),
        BinOp::Ne => f64::from(a != b),
        BinOp::Gt => f64::from(a > b),
        BinOp::Ge => f64::from(a >= b),
        BinOp::Lt => f64::from(a < b),
        BinOp::Le => f64::from(a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => return None,
    })
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
    )
}

/// One sample combined: `None` drops it (comparison false without `bool`).
fn combine(op: BinOp, bool_modifier: bool, a: f64, b: f64, keep_left: bool) -> Option<f64> {
    let result = apply(op, a, b)?;
    if is_comparison(op) && !bool_modifier {
        return (result == 1.0).then_some(if keep_left { a } else { b });
    }
    Some(result)
}

fn binary(op: BinOp, bool_modifier: bool, lhs: Value, rhs: Value, n: usize) -> Result<Value> {
    match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if matches!(op, BinOp::And | BinOp::Or | BinOp::Unless) {
                return Err(Error::Execution("set operators need vectors".into()));
            }
            Ok(Value::Scalar(
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| apply(op, *x, *y).unwrap_or(f64::NAN))
                    .collect(),
            ))
        }
        (Value::Vector(v), Value::Scalar(s)) | (Value::Scalar(s), Value::Vector(v))
            if matches!(op, BinOp::And | BinOp::Or | BinOp::Unless) =>
        {
            let _ = (v, s);
            Err(Error::Execution("set operators need vectors".into()))
        }
        (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(map_series(v, |step, x| {
            combine(op, bool_modifier, x, s[step], true)
        }))),
        (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(map_series(v, |step, x| {
            combine(op, bool_modifier, s[step], x, false)
        }))),
        (Value::Vector(a), Value::Vector(b)) => {
            let right: HashMap<&Labels, &Series> = b.iter().map(|s| (&s.labels, s)).collect();
            match op {
                BinOp::And | BinOp::Unless => {
                    let want = op == BinOp::And;
                    Ok(Value::Vector(
                        a.into_iter()
                            .map(|mut s| {
                                let other = right.get(&s.labels);
                                for (step, p) in s.points.iter_mut().enumerate() {
                                    let present = other.is_some_and(|o| o.points[step].is_some());
                                    if present != want {
                                        *p = None;
                                    }
                                }
                                s
                            })
                            .filter(|s| s.points.iter().any(Option::is_some))
                            .collect(),
                    ))
                }
                BinOp::Or => {
                    let mut out = a.clone();
                    for s in &b {
                        match out.iter_mut().find(|o| o.labels == s.labels) {
                            Some(existing) => {
                                for step in 0..n {
                                    if existing.points[step].is_none() {
                                        existing.points[step] = s.points[step];
                                    }
                                }
                            }
                            None => out.push(s.clone()),
                        }
                    }
                    Ok(Value::Vector(out))
                }
                _ => Ok(Value::Vector(
                    a.into_iter()
                        .filter_map(|mut s| {
                            let other = right.get(&s.labels)?;
                            for (step, p) in s.points.iter_mut().enumerate() {
                                *p = match (*p, other.points[step]) {
                                    (Some(x), Some(y)) => combine(op, bool_modifier, x, y, true),
                                    _ => None,
                                };
                            }
                            s.points.iter().any(Option::is_some).then_some(s)
                        })
                        .collect(),
                )),
            }
        }
    }
}

fn map_series(series: Vec<Series>, f: impl Fn(usize, f64) -> Option<f64>) -> Vec<Series> {
    series
        .into_iter()
        .map(|mut s| {
            for (step, p) in s.points.iter_mut().enumerate() {
                *p = p.and_then(|x| f(step, x));
            }
            s
        })
        .filter(|s| s.points.iter().any(Option::is_some))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], points: &[Option<f64>]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn windows() {
        let points = [(1, 1.0), (2, 3.0), (3, 2.0)];
        assert_eq!(window(RangeFn::Count, None, &points, 60.0), Some(3.0));
        assert_eq!(window(RangeFn::Rate, None, &points, 60.0), Some(0.05));
        assert_eq!(window(RangeFn::Sum, None, &points, 60.0), Some(6.0));
        assert_eq!(window(RangeFn::Avg, None, &points, 60.0), Some(2.0));
        assert_eq!(window(RangeFn::Max, None, &points, 60.0), Some(3.0));
        assert_eq!(window(RangeFn::Last, None, &points, 60.0), Some(2.0));
        assert_eq!(
            window(RangeFn::Quantile, Some(0.5), &points, 60.0),
            Some(2.0)
        );
    }

    #[test]
    fn aggregations() {
        let input = vec![
            series(&[("level", "error"), ("pod", "a")], &[Some(1.0), None]),
            series(&[("level", "error"), ("pod", "b")], &[Some(2.0), Some(5.0)]),
            series(&[("level", "info"), ("pod", "a")], &[Some(4.0), Some(1.0)]),
        ];
        let by_level = Grouping {
            without: false,
            labels: vec!["level".into()],
        };
        let out = aggregate(AggOp::Sum, None, Some(&by_level), input.clone(), 2).unwrap();
        assert_eq!(
            out[0],
            series(&[("level", "error")], &[Some(3.0), Some(5.0)])
        );
        let without = Grouping {
            without: true,
            labels: vec!["pod".into()],
        };
        let out = aggregate(AggOp::Count, None, Some(&without), input.clone(), 2).unwrap();
        assert_eq!(
            out[1],
            series(&[("level", "info")], &[Some(1.0), Some(1.0)])
        );
        let top = aggregate(AggOp::Topk, Some(1.0), None, input.clone(), 2).unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].points, vec![None, Some(5.0)]);
        assert_eq!(top[1].points, vec![Some(4.0), None]);
        let out = aggregate(AggOp::Max, None, None, input, 2).unwrap();
        assert_eq!(out[0].points, vec![Some(4.0), Some(5.0)]);
    }

    #[test]
    fn binaries() {
        let v = |x| Value::Vector(vec![series(&[], &[Some(x)])]);
        assert_eq!(
            binary(BinOp::Add, false, v(1.0), v(1.0), 1).unwrap(),
            v(2.0)
        );
        assert_eq!(
            binary(BinOp::Mul, false, v(3.0), Value::Scalar(vec![2.0]), 1).unwrap(),
            v(6.0)
        );
        assert_eq!(
            binary(BinOp::Gt, false, v(3.0), Value::Scalar(vec![5.0]), 1).unwrap(),
            Value::Vector(vec![])
        );
        assert_eq!(
            binary(BinOp::Gt, true, v(3.0), Value::Scalar(vec![5.0]), 1).unwrap(),
            v(0.0)
        );
    }

    #[test]
    fn scan_pushdown() {
        let Expr::Log(log) = crate::logql::parser::parse(
            r#"{service_name="api", job="x"} |= "timeout" != "debug" | json |= "late""#,
        )
        .unwrap() else {
            panic!()
        };
        let scan = scan_for(&log, 0, 10);
        assert_eq!(scan.services, vec!["api".to_string()]);
        assert_eq!(
            scan.text,
            Some(TextQuery::And(vec![
                TextQuery::Contains("timeout".into()),
                TextQuery::Not(Box::new(TextQuery::Contains("debug".into())))
            ]))
        );
    }
}
