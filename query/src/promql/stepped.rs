//! Range queries evaluated a node at a time over every step ("stepped"), for the wide
//! bottom of typical dashboard queries: instant selectors, range functions over a range
//! selector (`rate(x[5m])`, `*_over_time` …) and the common aggregations over those
//! (`sum/avg/min/max/count/group/stddev/stdvar … by/without`).
//!
//! The step-by-step evaluator (`eval`) cuts every series' window again at every step
//! and clones its labels into each step's vector; over 100 k series that work, not the
//! arithmetic, is what a range query costs. Here each such node is computed once for
//! all steps: per series, its samples are walked once with the window moving from step
//! to step, labels are touched once per series, and aggregation groups are found once
//! per input series rather than once per step. The results are kept per node; when the
//! step-by-step evaluator reaches the node at a step of the query it takes that step's
//! vector from here (and the root of the query, when stepped, becomes the result
//! directly). Values and their order within each step are exactly those the
//! step-by-step path gives, since the same range and accumulation functions are used.
//! Anything else (subqueries, binary operators, `topk` …) stays step by step on top.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_COUNT, T_GROUP, T_MAX, T_MIN, T_STDDEV, T_STDVAR, T_SUM,
};
use promql_parser::parser::{AggregateExpr, Call, Expr, MatrixSelector, VectorSelector};

use super::aggregate::group_labels;
use super::eval::{Evaluator, offset_ms, unparen};
use super::functions::{non_counter_info, quantile_warning, range_value};
use super::value::{Lbls, Matrix, MeanAcc, Sample, Series, VarAcc, is_stale, kahan_inc};
use crate::Result;

/// The step grid of a range query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub start: i64,
    pub step: i64,
    pub count: usize,
}

impl Steps {
    /// The steps from `start` to `end` inclusive.
    pub(crate) fn new(start: i64, end: i64, step: i64) -> Self {
        let count = if end < start || step <= 0 {
            0
        } else {
            ((end as i128 - start as i128) / step as i128 + 1) as usize
        };
        Steps { start, step, count }
    }

    pub(crate) fn time(&self, k: usize) -> i64 {
        self.start
            .saturating_add((k as i64).saturating_mul(self.step))
    }

    /// The index of the step at time `t`, if `t` is one.
    pub(crate) fn index(&self, t: i64) -> Option<usize> {
        if t < self.start || (t - self.start) % self.step != 0 {
            return None;
        }
        let k = usize::try_from((t - self.start) / self.step).ok()?;
        (k < self.count).then_some(k)
    }
}

/// One output series of a stepped node: its value at the steps where it has one.
#[derive(Debug)]
pub(crate) struct StepSeries {
    pub labels: Lbls,
    pub drop_name: bool,
    /// `(step index, value)`, by step.
    pub points: Vec<(u32, f64)>,
}

/// A node's value at every step.
#[derive(Debug, Default)]
pub(crate) struct Stepped {
    pub series: Vec<StepSeries>,
    /// Per step, the series present in the order the step-by-step evaluator lists
    /// them; `None` when that is series order.
    order: Option<Vec<Vec<u32>>>,
}

impl Stepped {
    /// Visits the series present at each step, in step order and, within a step, in
    /// the order the step-by-step evaluator gives: `visit(step, series index, value)`.
    fn for_each(&self, mut visit: impl FnMut(usize, usize, f64), steps: usize) {
        let mut cursor = vec![0usize; self.series.len()];
        for k in 0..steps {
            let mut take = |i: usize, visit: &mut dyn FnMut(usize, usize, f64)| {
                let points = &self.series[i].points;
                if let Some((step, v)) = points.get(cursor[i])
                    && *step as usize == k
                {
                    cursor[i] += 1;
                    visit(k, i, *v);
                }
            };
            match &self.order {
                Some(order) => {
                    for i in &order[k] {
                        take(*i as usize, &mut visit);
                    }
                }
                None => {
                    for i in 0..self.series.len() {
                        take(i, &mut visit);
                    }
                }
            }
        }
    }

    /// The vector at step `k`, as the step-by-step evaluator would give it.
    fn vector_at(&self, k: usize, t: i64) -> Vec<Sample> {
        let sample = |s: &StepSeries| {
            // Points are sorted by step: find this one.
            let at = s.points.partition_point(|(step, _)| (*step as usize) < k);
            s.points
                .get(at)
                .filter(|(step, _)| *step as usize == k)
                .map(|(_, v)| Sample {
                    labels: s.labels.clone(),
                    t,
                    v: *v,
                    drop_name: s.drop_name,
                })
        };
        match &self.order {
            Some(order) => order[k]
                .iter()
                .filter_map(|i| sample(&self.series[*i as usize]))
                .collect(),
            None => self.series.iter().filter_map(sample).collect(),
        }
    }

    /// The series as range-query output, with their step times.
    pub(crate) fn into_series(self, steps: Steps) -> Vec<Series> {
        self.series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .map(|s| Series {
                labels: s.labels,
                drop_name: s.drop_name,
                points: s
                    .points
                    .into_iter()
                    .map(|(k, v)| (steps.time(k as usize), v))
                    .collect(),
            })
            .collect()
    }
}

/// Range functions computed here, with the index of their range-vector argument.
fn range_function(name: &str) -> Option<usize> {
    Some(match name {
        "rate" | "increase" | "delta" | "irate" | "idelta" | "deriv" | "predict_linear"
        | "changes" | "resets" | "avg_over_time" | "sum_over_time" | "count_over_time"
        | "min_over_time" | "max_over_time" | "last_over_time" | "present_over_time"
        | "stddev_over_time" | "stdvar_over_time" | "mad_over_time" => 0,
        "quantile_over_time" => 1,
        _ => return None,
    })
}

/// Whether `expr` can be computed here for every step.
fn steppable(expr: &Expr) -> bool {
    match unparen(expr) {
        Expr::VectorSelector(_) => true,
        Expr::Call(c) => range_call(c).is_some(),
        Expr::Aggregate(a) => {
            a.param.is_none()
                && matches!(
                    a.op.id(),
                    T_SUM | T_AVG | T_COUNT | T_GROUP | T_MIN | T_MAX | T_STDDEV | T_STDVAR
                )
                && steppable(&a.expr)
        }
        _ => false,
    }
}

/// A range function over a plain range selector with number-literal other arguments:
/// its range selector and those numbers.
fn range_call(c: &Call) -> Option<(&MatrixSelector, Vec<f64>)> {
    let matrix_arg = range_function(c.func.name)?;
    let mut matrix = None;
    let mut scalars = Vec::new();
    for (i, a) in c.args.args.iter().enumerate() {
        match (i == matrix_arg, unparen(a)) {
            (true, Expr::MatrixSelector(ms)) => matrix = Some(ms),
            (false, Expr::NumberLiteral(n)) => scalars.push(n.val),
            _ => return None,
        }
    }
    Some((matrix?, scalars))
}

/// Per-group accumulator of a stepped aggregation, mirroring `aggregate`.
enum Acc {
    Sum(f64, f64),
    Avg(MeanAcc),
    Count(f64),
    Min(f64),
    Max(f64),
    Var(VarAcc),
}

impl Acc {
    fn new(op: u8, v: f64) -> Acc {
        let mut acc = match op {
            OP_SUM => Acc::Sum(0.0, 0.0),
            OP_AVG => Acc::Avg(MeanAcc::default()),
            OP_COUNT | OP_GROUP => Acc::Count(0.0),
            OP_MIN => return Acc::Min(v),
            OP_MAX => return Acc::Max(v),
            _ => Acc::Var(VarAcc::default()),
        };
        acc.add(v);
        acc
    }

    fn add(&mut self, v: f64) {
        match self {
            Acc::Sum(sum, c) => (*sum, *c) = kahan_inc(v, *sum, *c),
            Acc::Avg(acc) => acc.add(v),
            Acc::Count(n) => *n += 1.0,
            Acc::Min(m) => {
                if *m > v || m.is_nan() {
                    *m = v;
                }
            }
            Acc::Max(m) => {
                if *m < v || m.is_nan() {
                    *m = v;
                }
            }
            Acc::Var(acc) => acc.add(v),
        }
    }

    fn value(&self, op: u8) -> f64 {
        match self {
            Acc::Sum(sum, c) => {
                if c.is_finite() {
                    sum + c
                } else {
                    *sum
                }
            }
            Acc::Avg(acc) => acc.value(),
            Acc::Count(n) => {
                if op == OP_GROUP {
                    1.0
                } else {
                    *n
                }
            }
            Acc::Min(m) | Acc::Max(m) => *m,
            Acc::Var(acc) => {
                if op == OP_STDDEV {
                    acc.variance().sqrt()
                } else {
                    acc.variance()
                }
            }
        }
    }
}

const OP_SUM: u8 = 0;
const OP_AVG: u8 = 1;
const OP_COUNT: u8 = 2;
const OP_GROUP: u8 = 3;
const OP_MIN: u8 = 4;
const OP_MAX: u8 = 5;
const OP_STDDEV: u8 = 6;
const OP_STDVAR: u8 = 7;

fn op_code(id: u16) -> u8 {
    match id {
        T_SUM => OP_SUM,
        T_AVG => OP_AVG,
        T_COUNT => OP_COUNT,
        T_GROUP => OP_GROUP,
        T_MIN => OP_MIN,
        T_MAX => OP_MAX,
        T_STDDEV => OP_STDDEV,
        _ => OP_STDVAR,
    }
}

fn node_key(expr: &Expr) -> usize {
    std::ptr::from_ref(expr) as usize
}

impl Evaluator {
    /// Computes the stepped nodes of a range query. Returns the root's result when the
    /// whole query is stepped; otherwise keeps the results of its largest stepped
    /// subexpressions (outside subqueries) for [`Evaluator::stepped_at`].
    pub(crate) fn prepare_stepped(&mut self, expr: &Expr, steps: Steps) -> Result<Option<Stepped>> {
        self.steps = Some(steps);
        if self.fits(expr, steps) {
            let root = self.stepped(unparen(expr), steps)?;
            return Ok(Some(root));
        }
        self.prepare_children(expr, steps)?;
        Ok(None)
    }

    fn prepare_children(&mut self, expr: &Expr, steps: Steps) -> Result<()> {
        let expr = unparen(expr);
        if self.fits(expr, steps) {
            // Bare selectors stay step by step: their samples carry the raw sample time
            // `timestamp()` needs, and they cost no more there.
            if !matches!(expr, Expr::VectorSelector(_)) {
                let stepped = self.stepped(expr, steps)?;
                self.stepped_nodes.insert(node_key(expr), stepped);
            }
            return Ok(());
        }
        match expr {
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.prepare_children(p, steps)?;
                }
                self.prepare_children(&a.expr, steps)
            }
            Expr::Unary(u) => self.prepare_children(&u.expr, steps),
            Expr::Binary(b) => {
                self.prepare_children(&b.lhs, steps)?;
                self.prepare_children(&b.rhs, steps)
            }
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.prepare_children(a, steps)?;
                }
                Ok(())
            }
            // Subquery bodies run at their own steps; the rest has no selector.
            _ => Ok(()),
        }
    }

    /// Whether `expr` is stepped and its results (with its inputs' while it is
    /// computed) fit in what is left of the query's sample budget. A node that does not
    /// fit is evaluated step by step, which holds one step at a time.
    fn fits(&self, expr: &Expr, steps: Steps) -> bool {
        steppable(expr)
            && self
                .bound(expr, steps)
                .is_some_and(|points| points <= self.budget_left())
    }

    /// At most how many points computing `expr` holds at once.
    fn bound(&self, expr: &Expr, steps: Steps) -> Option<u64> {
        let per_series = steps.count as u64;
        match unparen(expr) {
            Expr::VectorSelector(vs) => (self.loaded(vs).len() as u64).checked_mul(per_series),
            Expr::Call(c) => {
                let (ms, _) = range_call(c)?;
                (self.loaded(&ms.vs).len() as u64).checked_mul(per_series)
            }
            Expr::Aggregate(a) => self.bound(&a.expr, steps)?.checked_mul(2),
            _ => None,
        }
    }

    /// The vector of a stepped node at time `t`, when `t` is a step of the query.
    pub(crate) fn stepped_at(&self, expr: &Expr, t: i64) -> Option<Vec<Sample>> {
        let stepped = self.stepped_nodes.get(&node_key(expr))?;
        let k = self.steps?.index(t)?;
        Some(stepped.vector_at(k, t))
    }

    fn stepped(&mut self, expr: &Expr, steps: Steps) -> Result<Stepped> {
        let out = match unparen(expr) {
            Expr::VectorSelector(vs) => self.stepped_selector(vs, steps)?,
            Expr::Call(c) => match range_call(c) {
                Some((ms, scalars)) => {
                    if let Some(warning) = quantile_warning(c.func.name, &scalars)
                        && let Some(q) = c.args.args.first()
                    {
                        self.add_warning(&**q, warning);
                    }
                    let out = self.stepped_range_function(c, ms, &scalars, steps)?;
                    let matrix = range_function(c.func.name).and_then(|i| c.args.args.get(i));
                    for s in &out.series {
                        if let Some(info) = non_counter_info(c.func.name, &s.labels)
                            && let Some(matrix) = matrix
                        {
                            self.add_info(&**matrix, info);
                        }
                    }
                    out
                }
                None => return Err(crate::Error::Internal("not a stepped call".into())),
            },
            Expr::Aggregate(a) => {
                let input = self.stepped(&a.expr, steps)?;
                self.stepped_aggregate(a, input, steps)?
            }
            _ => return Err(crate::Error::Internal("not a stepped expression".into())),
        };
        Ok(out)
    }

    fn stepped_selector(&self, vs: &VectorSelector, steps: Steps) -> Result<Stepped> {
        let offset = offset_ms(&vs.offset);
        let times: Vec<i64> = (0..steps.count)
            .map(|k| self.at_time(&vs.at, steps.time(k)).saturating_sub(offset))
            .collect();
        let mut out = Stepped::default();
        for (n, s) in self.loaded(vs).iter().enumerate() {
            if n % 1024 == 0 {
                self.check_time()?;
            }
            let mut points = Vec::new();
            for (k, t) in times.iter().enumerate() {
                let idx = s.ts.partition_point(|ts| ts <= t);
                if idx == 0 {
                    continue;
                }
                let (ts, v) = (s.ts[idx - 1], s.vs[idx - 1]);
                if ts <= t.saturating_sub(self.lookback) || is_stale(v) {
                    continue;
                }
                points.push((k as u32, v));
            }
            if !points.is_empty() {
                out.series.push(StepSeries {
                    labels: s.labels.clone(),
                    drop_name: false,
                    points,
                });
            }
        }
        Ok(out)
    }

    fn stepped_range_function(
        &self,
        c: &Call,
        ms: &MatrixSelector,
        scalars: &[f64],
        steps: Steps,
    ) -> Result<Stepped> {
        let name = c.func.name;
        let keeps_name = name == "last_over_time";
        let vs = &ms.vs;
        let offset = offset_ms(&vs.offset);
        let range = ms.range.as_millis() as i64;
        let windows: Vec<(i64, i64)> = (0..steps.count)
            .map(|k| {
                let end = self.at_time(&vs.at, steps.time(k)).saturating_sub(offset);
                (end.saturating_sub(range), end)
            })
            .collect();
        let mut out = Stepped::default();
        // One series' samples without staleness markers (range selectors drop them).
        let mut clean: Vec<(i64, f64)> = Vec::new();
        for (n, s) in self.loaded(vs).iter().enumerate() {
            if n % 256 == 0 {
                self.check_time()?;
            }
            clean.clear();
            clean.extend(
                s.ts.iter()
                    .zip(&s.vs)
                    .filter(|(_, v)| !is_stale(**v))
                    .map(|(t, v)| (*t, *v)),
            );
            let mut points = Vec::new();
            for (k, (start, end)) in windows.iter().enumerate() {
                let a = clean.partition_point(|p| p.0 <= *start);
                let b = a + clean[a..].partition_point(|p| p.0 <= *end);
                if a == b {
                    continue;
                }
                let window = Matrix {
                    series: Vec::new(),
                    start: *start,
                    end: *end,
                };
                if let Some(v) = range_value(name, &clean[a..b], &window, scalars, steps.time(k))? {
                    points.push((k as u32, v));
                }
            }
            if !points.is_empty() {
                out.series.push(StepSeries {
                    labels: s.labels.clone(),
                    drop_name: !keeps_name,
                    points,
                });
            }
        }
        Ok(out)
    }

    fn stepped_aggregate(
        &self,
        a: &AggregateExpr,
        input: Stepped,
        steps: Steps,
    ) -> Result<Stepped> {
        let op = op_code(a.op.id());
        // The group of every input series, found once.
        let mut group_of = Vec::with_capacity(input.series.len());
        let mut groups: Vec<Lbls> = Vec::new();
        let mut drop_name: Vec<bool> = Vec::new();
        let mut index: HashMap<Lbls, u32> = HashMap::new();
        for s in &input.series {
            let key = group_labels(&s.labels, &a.modifier);
            let g = match index.get(&key) {
                Some(g) => *g,
                None => {
                    let g = groups.len() as u32;
                    index.insert(key.clone(), g);
                    groups.push(key);
                    drop_name.push(false);
                    g
                }
            };
            drop_name[g as usize] |= s.drop_name;
            group_of.push(g);
        }
        drop(index);
        let mut points: Vec<Vec<(u32, f64)>> = vec![Vec::new(); groups.len()];
        let mut order: Vec<Vec<u32>> = vec![Vec::new(); steps.count];
        let mut accs: Vec<Option<Acc>> = (0..groups.len()).map(|_| None).collect();
        let mut current = usize::MAX;
        let mut flush = |k: usize, order: &mut Vec<u32>, accs: &mut Vec<Option<Acc>>| {
            for g in order.iter() {
                if let Some(acc) = accs[*g as usize].take() {
                    points[*g as usize].push((k as u32, acc.value(op)));
                }
            }
        };
        input.for_each(
            |k, i, v| {
                if k != current {
                    if current != usize::MAX {
                        flush(current, &mut order[current], &mut accs);
                    }
                    current = k;
                }
                let g = group_of[i];
                match &mut accs[g as usize] {
                    Some(acc) => acc.add(v),
                    slot @ None => {
                        *slot = Some(Acc::new(op, v));
                        order[k].push(g);
                    }
                }
            },
            steps.count,
        );
        if current != usize::MAX {
            flush(current, &mut order[current], &mut accs);
        }
        Ok(Stepped {
            series: groups
                .into_iter()
                .zip(points)
                .zip(drop_name)
                .map(|((labels, points), drop_name)| StepSeries {
                    labels,
                    drop_name,
                    points,
                })
                .collect(),
            order: Some(order),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proto::TenantId;
    use storage::metrics::{MetricsWrite, Sample as WriteSample, SeriesWrite};
    use storage::series::Labels;
    use storage::{Config as StorageConfig, Storage};

    use super::super::{Engine, Value};
    use super::*;
    use crate::{Config, QueryContext};

    /// Counters and gauges that start and stop inside the query range, with a counter
    /// reset, a staleness marker and a gap; samples never on a step boundary.
    async fn engine() -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<Storage> = Storage::open(StorageConfig::default(), dir.path())
            .await
            .unwrap();
        let stale = f64::from_bits(super::super::value::STALE_NAN_BITS);
        let mut series = Vec::new();
        for i in 0..12i64 {
            let labels = Labels::new(vec![
                (
                    "__name__".into(),
                    if i % 3 == 2 { "g" } else { "c_total" }.into(),
                ),
                ("job".into(), format!("j{}", i % 2)),
                ("instance".into(), format!("i{i}")),
            ])
            .unwrap();
            let (first, last) = (i * 7, 200 - i * 5);
            let samples = (first..last)
                .filter(|k| !(i == 4 && (90..110).contains(k)))
                .map(|k| {
                    let ts_ms = 1_000_000 + k * 15_000 + 1_234 + i;
                    let value = match (i % 3, k) {
                        (2, _) => ((k * 37 + i) % 50) as f64,
                        (_, k) if i == 1 && k > 120 => (k - 120) as f64,
                        _ => (k * (i + 1)) as f64,
                    };
                    let value = if i == 5 && k == 150 { stale } else { value };
                    WriteSample { ts_ms, value }
                })
                .collect();
            series.push(SeriesWrite {
                labels,
                samples,
                exemplars: Vec::new(),
            });
        }
        storage
            .append_metrics(
                &TenantId::default(),
                &MetricsWrite {
                    series,
                    metadata: Vec::new(),
                },
            )
            .await
            .unwrap();
        let context = QueryContext::with_storage(Config::default(), storage, TenantId::default());
        (Engine::new(context), dir)
    }

    #[tokio::test]
    async fn stepped_range_queries_equal_instant_queries_at_every_step() {
        let (engine, _dir) = engine().await;
        let tenant = TenantId::default();
        let (start, end, step) = (1_000_000, 1_000_000 + 55 * 60_000, 60_000);
        for query in [
            "c_total",
            "rate(c_total[5m])",
            "sum by (job) (rate(c_total[5m]))",
            "avg without (instance) (g)",
            "max(max_over_time(g[3m] offset 2m))",
            "count(increase(c_total[10m] @ 2500))",
            "stddev by (job) (irate(c_total[1m]))",
            "histogram_quantile(0.9, sum by (le) (rate(c_total[5m])))",
            "topk(2, sum by (instance) (rate(c_total[5m])))",
            "sum(rate(c_total[5m])) / sum(rate(c_total[5m] offset 5m))",
        ] {
            let Value::Matrix(range) = engine
                .range(&tenant, query, start, end, step)
                .await
                .unwrap()
                .value
            else {
                panic!("{query}: not a matrix");
            };
            let mut t = start;
            while t <= end {
                let Value::Vector(instant) = engine.instant(&tenant, query, t).await.unwrap().value
                else {
                    panic!("{query}: not a vector");
                };
                for sample in &instant {
                    let series = range
                        .iter()
                        .find(|s| s.labels == sample.labels)
                        .unwrap_or_else(|| panic!("{query} at {t}: no {:?}", sample.labels));
                    let point = series.points.iter().find(|p| p.0 == t);
                    assert_eq!(
                        point.map(|p| p.1.to_bits()),
                        Some(sample.v.to_bits()),
                        "{query} at {t} for {:?}",
                        sample.labels
                    );
                }
                let in_range = range
                    .iter()
                    .filter(|s| s.points.iter().any(|p| p.0 == t))
                    .count();
                assert_eq!(in_range, instant.len(), "{query} at {t}");
                t += step;
            }
        }
    }

    #[test]
    fn steps_find_their_index() {
        let steps = Steps::new(1_000, 5_000, 2_000);
        assert_eq!(steps.count, 3);
        assert_eq!(steps.index(3_000), Some(1));
        assert_eq!(steps.index(4_000), None);
        assert_eq!(steps.index(7_000), None);
        assert_eq!(steps.time(2), 5_000);
    }
}
