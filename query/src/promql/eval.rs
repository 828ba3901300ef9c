//! The evaluator: plans which samples every selector needs over the whole query
//! window, loads them once, then evaluates the expression step by step in memory.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, MatrixSelector, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorMatchFillValues, VectorSelector,
};
use proto::TenantId;
use storage::Storage;
use storage::series::{MatchOp, Matcher};

use super::positions::Node;
use super::value::{Lbls, Matrix, NAME, Sample, Series, Val, drop_name, fmt_labels, get, is_stale};
use crate::{Error, Result};

/// Default subquery resolution when the subquery gives none (Prometheus' default
/// evaluation interval).
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Samples of one series loaded for a selector, in time order.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub labels: Lbls,
    pub ts: Vec<i64>,
    pub vs: Vec<f64>,
}

/// The inner series of one subquery node over the window last asked for.
#[derive(Default)]
struct SubqueryWindow {
    /// First inner step of the last window.
    from: Option<i64>,
    /// The next inner step not evaluated yet.
    next: Option<i64>,
    index: SeriesIndex,
    series: Vec<Series>,
}

/// Evaluation state of one query.
pub(crate) struct Evaluator {
    data: HashMap<usize, Vec<Loaded>>,
    /// Inner results of each subquery node by inner step time.
    subquery_cache: HashMap<usize, SubqueryWindow>,
    pub query_start: i64,
    pub query_end: i64,
    /// Step of a range query (0 for instant queries).
    pub query_step: i64,
    pub(crate) lookback: i64,
    deadline: Instant,
    timeout: Duration,
    max_samples: u64,
    /// Samples loaded plus points produced by subqueries, against `max_samples`.
    budget_used: u64,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    /// Where the query's nodes start, for the annotations that name one.
    pub(crate) positions: super::positions::Positions,
    /// The steps of a range query whose stepped nodes were computed.
    pub(crate) steps: Option<super::stepped::Steps>,
    /// Results of the stepped nodes of a range query, by node address.
    pub(crate) stepped_nodes: HashMap<usize, super::stepped::Stepped>,
}

/// Key of a selector node: its address in the (immutable, borrowed) AST.
fn key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

pub(crate) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

fn system_time_ms(time: &SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn too_many_samples() -> Error {
    Error::TooLarge(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

/// One selector's samples to load: `[lo, hi]` of the series matching any matcher group.
#[derive(Debug)]
pub(crate) struct Need {
    pub key: usize,
    pub matchers: Vec<Vec<Matcher>>,
    pub lo: i64,
    pub hi: i64,
}

/// Loads the samples of every need; returns them by selector and their total count.
pub(crate) async fn load(
    storage: &Storage,
    tenant: &TenantId,
    needs: Vec<Need>,
    deadline: Instant,
    timeout: Duration,
    max_samples: u64,
) -> Result<(HashMap<usize, Vec<Loaded>>, u64)> {
    let mut data = HashMap::new();
    let mut total = 0u64;
    for need in needs {
        if Instant::now() > deadline {
            return Err(Error::Timeout(timeout));
        }
        let mut loaded: Vec<Loaded> = Vec::new();
        for group in &need.matchers {
            let series = storage.select_series(tenant, group, need.lo, need.hi);
            if series.is_empty() {
                continue;
            }
            let ids: Vec<_> = series.iter().map(|(id, _)| *id).collect();
            let budget = max_samples.saturating_sub(total);
            let Some(found) = storage
                .scan_series_samples(tenant, &ids, need.lo, need.hi, budget)
                .await?
            else {
                return Err(too_many_samples());
            };
            total = total.saturating_add(found.iter().map(|s| s.ts.len() as u64).sum());
            if total > max_samples {
                return Err(too_many_samples());
            }
            // Both lists are sorted by series id.
            let mut found = found.into_iter().peekable();
            for (id, labels) in series {
                let Some(samples) = found.next_if(|s| s.id == id) else {
                    continue;
                };
                let labels = labels.into_pairs();
                if need.matchers.len() > 1 && loaded.iter().any(|l| l.labels == labels) {
                    continue;
                }
                loaded.push(Loaded {
                    labels,
                    ts: samples.ts,
                    vs: samples.values,
                });
            }
        }
        data.insert(need.key, loaded);
    }
    Ok((data, total))
}

/// One selector's window, found by [`Evaluator::plan`].
struct Window<'a> {
    vs: &'a VectorSelector,
    lo: i64,
    hi: i64,
}

impl Evaluator {
    /// Adds an annotation about node `at` to the response's `warnings`, once; the
    /// node's position in the query ends the text, as in Prometheus' annotations.
    pub(crate) fn add_warning(&mut self, at: &impl Node, mut text: String) {
        text.push_str(&self.positions.suffix(at));
        if !self.warnings.contains(&text) {
            self.warnings.push(text);
        }
    }

    /// Adds an annotation about node `at` to the response's `infos`, once, with the
    /// node's position.
    pub(crate) fn add_info(&mut self, at: &impl Node, mut text: String) {
        text.push_str(&self.positions.suffix(at));
        if !self.infos.contains(&text) {
            self.infos.push(text);
        }
    }

    /// Builds an evaluator for a query evaluated from `start` to `end`.
    pub(crate) fn new(
        query_start: i64,
        query_end: i64,
        lookback: i64,
        timeout: Duration,
        max_samples: u64,
    ) -> Self {
        Evaluator {
            data: HashMap::new(),
            subquery_cache: HashMap::new(),
            query_start,
            query_end,
            query_step: 0,
            lookback,
            deadline: Instant::now() + timeout,
            timeout,
            max_samples,
            budget_used: 0,
            warnings: Vec::new(),
            infos: Vec::new(),
            positions: super::positions::Positions::default(),
            steps: None,
            stepped_nodes: HashMap::new(),
        }
    }

    /// The samples loaded for a selector.
    pub(crate) fn loaded(&self, vs: &VectorSelector) -> &[Loaded] {
        self.data.get(&key(vs)).map_or(&[], Vec::as_slice)
    }

    /// How many more samples the query may hold.
    pub(crate) fn budget_left(&self) -> u64 {
        self.max_samples.saturating_sub(self.budget_used)
    }

    pub(crate) fn at_time(&self, at: &Option<AtModifier>, t: i64) -> i64 {
        match at {
            None => t,
            Some(AtModifier::Start) => self.query_start,
            Some(AtModifier::End) => self.query_end,
            Some(AtModifier::At(time)) => system_time_ms(time),
        }
    }

    /// Checks the deadline.
    pub(crate) fn check_time(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout(self.timeout));
        }
        Ok(())
    }

    /// Counts `n` samples against `max_samples`.
    pub(crate) fn charge(&mut self, n: u64) -> Result<()> {
        self.budget_used = self.budget_used.saturating_add(n);
        if self.budget_used > self.max_samples {
            return Err(too_many_samples());
        }
        Ok(())
    }

    /// Lists the windows every selector of `expr` needs over the whole query.
    pub(crate) fn needs(&self, expr: &Expr) -> Result<Vec<Need>> {
        let mut needs = Vec::new();
        self.plan(expr, self.query_start, self.query_end, &mut needs);
        needs
            .into_iter()
            .map(|n| {
                Ok(Need {
                    key: key(n.vs),
                    matchers: matchers_of(n.vs)?,
                    lo: n.lo,
                    hi: n.hi,
                })
            })
            .collect()
    }

    /// Hands over the samples loaded for [`Evaluator::needs`] and their count.
    pub(crate) fn set_data(
        &mut self,
        data: HashMap<usize, Vec<Loaded>>,
        samples: u64,
    ) -> Result<()> {
        self.data = data;
        self.charge(samples)
    }

    /// Finds the window each selector needs when its expression is evaluated at every
    /// time in `[lo, hi]`.
    fn plan<'a>(&self, expr: &'a Expr, lo: i64, hi: i64, out: &mut Vec<Window<'a>>) {
        match expr {
            Expr::VectorSelector(vs) => {
                let (lo, hi) = self.shift(&vs.at, lo, hi);
                let off = offset_ms(&vs.offset);
                out.push(Window {
                    vs,
                    lo: lo.saturating_sub(off).saturating_sub(self.lookback) + 1,
                    hi: hi.saturating_sub(off),
                });
            }
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let (lo, hi) = self.shift(&vs.at, lo, hi);
                let off = offset_ms(&vs.offset);
                let range = ms.range.as_millis() as i64;
                out.push(Window {
                    vs,
                    lo: lo.saturating_sub(off).saturating_sub(range) + 1,
                    hi: hi.saturating_sub(off),
                });
            }
            Expr::Subquery(sq) => {
                let (lo, hi) = self.shift(&sq.at, lo, hi);
                let off = offset_ms(&sq.offset);
                let range = sq.range.as_millis() as i64;
                self.plan(
                    &sq.expr,
                    lo.saturating_sub(off).saturating_sub(range),
                    hi.saturating_sub(off),
                    out,
                );
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.plan(p, lo, hi, out);
                }
                self.plan(&a.expr, lo, hi, out);
            }
            Expr::Unary(u) => self.plan(&u.expr, lo, hi, out),
            Expr::Binary(b) => {
                self.plan(&b.lhs, lo, hi, out);
                self.plan(&b.rhs, lo, hi, out);
            }
            Expr::Paren(p) => self.plan(&p.expr, lo, hi, out),
            Expr::Call(c) => {
                for arg in &c.args.args {
                    self.plan(arg, lo, hi, out);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn shift(&self, at: &Option<AtModifier>, lo: i64, hi: i64) -> (i64, i64) {
        match at {
            None => (lo, hi),
            Some(_) => {
                let t = self.at_time(at, lo);
                (t, t)
            }
        }
    }

    /// Evaluates `expr` at time `t`.
    pub(crate) fn eval(&mut self, expr: &Expr, t: i64) -> Result<Val> {
        self.check_time()?;
        if !self.stepped_nodes.is_empty()
            && matches!(expr, Expr::Call(_) | Expr::Aggregate(_))
            && let Some(samples) = self.stepped_at(expr, t)
        {
            return Ok(Val::Vector(samples));
        }
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(mut samples) => {
                    for s in &mut samples {
                        s.v = -s.v;
                        s.drop_name = true;
                    }
                    Ok(Val::Vector(samples))
                }
                other => Err(Error::Execution(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.select_instant(vs, t))),
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.select_range(ms, t))),
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, t)?)),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Aggregate(a) => super::aggregate::aggregate(self, a, t),
            Expr::Call(c) => super::functions::call(self, c, t),
            Expr::Extension(_) => Err(Error::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates an expression that must give an instant vector.
    pub(crate) fn eval_vector(&mut self, expr: &Expr, t: i64) -> Result<Vec<Sample>> {
        match self.eval(expr, t)? {
            Val::Vector(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an expression that must give a scalar.
    pub(crate) fn eval_scalar(&mut self, expr: &Expr, t: i64) -> Result<f64> {
        match self.eval(expr, t)? {
            Val::Scalar(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an expression that must give a range vector.
    pub(crate) fn eval_matrix(&mut self, expr: &Expr, t: i64) -> Result<Matrix> {
        match self.eval(expr, t)? {
            Val::Matrix(m) => Ok(m),
            other => Err(Error::Execution(format!(
                "expected range vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// The instant selector: the latest sample in `(t - lookback, t]`, unless stale.
    pub(crate) fn select_instant(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let t = self
            .at_time(&vs.at, t)
            .saturating_sub(offset_ms(&vs.offset));
        let Some(series) = self.data.get(&key(vs)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in series {
            let idx = s.ts.partition_point(|ts| *ts <= t);
            if idx == 0 {
                continue;
            }
            let (ts, v) = (s.ts[idx - 1], s.vs[idx - 1]);
            if ts <= t.saturating_sub(self.lookback) || is_stale(v) {
                continue;
            }
            out.push(Sample {
                labels: s.labels.clone(),
                t: ts,
                v,
                drop_name: false,
            });
        }
        out
    }

    /// The range selector: samples in `(t - range, t]`, staleness markers removed.
    pub(crate) fn select_range(&self, ms: &MatrixSelector, t: i64) -> Matrix {
        let vs = &ms.vs;
        let end = self
            .at_time(&vs.at, t)
            .saturating_sub(offset_ms(&vs.offset));
        let start = end.saturating_sub(ms.range.as_millis() as i64);
        let mut out = Vec::new();
        if let Some(series) = self.data.get(&key(vs)) {
            for s in series {
                let a = s.ts.partition_point(|ts| *ts <= start);
                let b = s.ts.partition_point(|ts| *ts <= end);
                let points: Vec<(i64, f64)> = (a..b)
                    .filter(|i| !is_stale(s.vs[*i]))
                    .map(|i| (s.ts[i], s.vs[i]))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                out.push(Series {
                    labels: s.labels.clone(),
                    points,
                    drop_name: false,
                });
            }
        }
        Matrix {
            series: out,
            start,
            end,
        }
    }

    /// A subquery: the inner expression at every aligned step in `(t - range, t]`.
    fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<Matrix> {
        let end = self
            .at_time(&sq.at, t)
            .saturating_sub(offset_ms(&sq.offset));
        let start = end.saturating_sub(sq.range.as_millis() as i64);
        let step = sq
            .step
            .map(|s| s.as_millis() as i64)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS)
            .max(1);
        let mut ts = step.saturating_mul(start / step);
        if ts <= start {
            ts = ts.saturating_add(step);
        }
        let steps =
            ((end as i128 - ts as i128) / step as i128 + 1).clamp(0, u64::MAX as i128) as u64;
        self.charge(steps)?;
        let key = std::ptr::from_ref(sq) as usize;
        // Inner steps are aligned to absolute multiples of the step, so consecutive outer
        // steps share most of them: keep the series of the current window and only
        // evaluate the new inner steps (restart when time goes backwards).
        let mut window = self.subquery_cache.remove(&key).unwrap_or_default();
        let reuse = window.from.is_some_and(|from| from <= ts)
            && window.next.is_some_and(|next| next >= ts);
        if !reuse {
            window = SubqueryWindow::default();
        }
        for s in &mut window.series {
            let keep = s.points.partition_point(|p| p.0 < ts);
            s.points.drain(..keep);
        }
        window.from = Some(ts);
        if let Some(next) = window.next {
            ts = ts.max(next);
        }
        while ts <= end {
            let value = self.eval(&sq.expr, ts)?;
            match value {
                Val::Scalar(v) => push_point(
                    &mut window.index,
                    &mut window.series,
                    &Vec::new(),
                    false,
                    ts,
                    v,
                ),
                Val::Vector(samples) => {
                    for s in &samples {
                        push_point(
                            &mut window.index,
                            &mut window.series,
                            &s.labels,
                            s.drop_name,
                            ts,
                            s.v,
                        );
                    }
                }
                other => {
                    return Err(Error::Execution(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.type_name()
                    )));
                }
            }
            match ts.checked_add(step) {
                Some(next) => ts = next,
                None => break,
            }
        }
        window.next = Some(ts);
        let series: Vec<Series> = window
            .series
            .iter()
            .filter(|s| !s.points.is_empty() && s.points[s.points.len() - 1].0 <= end)
            .map(|s| {
                let n = s.points.partition_point(|p| p.0 <= end);
                Series {
                    labels: s.labels.clone(),
                    points: s.points[..n].to_vec(),
                    drop_name: s.drop_name,
                }
            })
            .collect();
        // Series that vanished from the window are dropped from the index now and then.
        if window.series.len() > 2 * series.len() + 64 {
            window.series.retain(|s| !s.points.is_empty());
            window.index.clear();
            for (i, s) in window.series.iter().enumerate() {
                window.index.entry(s.labels.clone()).or_default()[usize::from(s.drop_name)] =
                    Some(i);
            }
        }
        self.charge(series.iter().map(|s| s.points.len() as u64).sum())?;
        self.subquery_cache.insert(key, window);
        Ok(Matrix { series, start, end })
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Val> {
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let op = b.op.id();
        let return_bool = b.return_bool();
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => {
                let (v, keep) = elem_binop(op, l, r)?;
                if is_comparison(op) {
                    Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Val::Scalar(v))
                }
            }
            (Val::Vector(l), Val::Scalar(r)) => {
                Ok(Val::Vector(vector_scalar(op, l, r, false, return_bool)?))
            }
            (Val::Scalar(l), Val::Vector(r)) => {
                Ok(Val::Vector(vector_scalar(op, r, l, true, return_bool)?))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let (on, labels) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                    Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                    None => (false, Vec::new()),
                };
                let matching = Matching { on, labels };
                match op {
                    T_LAND => Ok(Val::Vector(set_and(l, r, &matching))),
                    T_LOR => Ok(Val::Vector(set_or(l, r, &matching))),
                    T_LUNLESS => Ok(Val::Vector(set_unless(l, r, &matching))),
                    _ => {
                        let card = b
                            .modifier
                            .as_ref()
                            .map(|m| m.card.clone())
                            .unwrap_or(VectorMatchCardinality::OneToOne);
                        let fills = b
                            .modifier
                            .as_ref()
                            .map(|m| m.fill_values.clone())
                            .unwrap_or_default();
                        Ok(Val::Vector(vector_binop(
                            op,
                            l,
                            r,
                            &matching,
                            &card,
                            return_bool,
                            &fills,
                        )?))
                    }
                }
            }
            (l, r) => Err(Error::Execution(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

/// The storage matchers of a selector: one group, or one per `or` alternative.
fn matchers_of(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let convert = |list: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>> {
        let mut out = Vec::with_capacity(list.len() + 1);
        if let Some(name) = &vs.name
            && !list.iter().any(|m| m.name == NAME)
        {
            out.push(Matcher::new(MatchOp::Equal, NAME, name.as_str())?);
        }
        for m in list {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::RegexMatch,
                PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            out.push(
                Matcher::new(op, m.name.as_str(), m.value.as_str())
                    .map_err(|e| Error::BadRequest(e.to_string()))?,
            );
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers
            .or_matchers
            .iter()
            .map(|group| convert(group))
            .collect()
    }
}

/// Series of a matrix being built step by step, found by labels and name-drop flag.
pub(crate) type SeriesIndex = HashMap<Lbls, [Option<usize>; 2]>;

/// Appends a point to the series with these labels, creating it if needed.
pub(crate) fn push_point(
    index: &mut SeriesIndex,
    series: &mut Vec<Series>,
    labels: &Lbls,
    drop_name: bool,
    t: i64,
    v: f64,
) {
    let slot = usize::from(drop_name);
    if let Some(Some(i)) = index.get(labels).map(|e| e[slot]) {
        series[i].points.push((t, v));
        return;
    }
    index.entry(labels.clone()).or_default()[slot] = Some(series.len());
    series.push(Series {
        labels: labels.clone(),
        points: vec![(t, v)],
        drop_name,
    });
}

pub(crate) fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn drops_name(op: u16) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2)
}

/// Applies an operator to two floats: the value and whether a comparison keeps it.
fn elem_binop(op: u16, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (go_mod(l, r), true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => {
            return Err(Error::Execution(format!(
                "operator {op} not allowed between these operands"
            )));
        }
    })
}

/// Go's `math.Mod`: result has the sign of `l`.
fn go_mod(l: f64, r: f64) -> f64 {
    if r == 0.0 || l.is_infinite() || l.is_nan() || r.is_nan() {
        return f64::NAN;
    }
    l % r
}

fn vector_scalar(
    op: u16,
    vector: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(vector.len());
    for mut s in vector {
        let (l, r) = if swap { (scalar, s.v) } else { (s.v, scalar) };
        let (mut v, mut keep) = elem_binop(op, l, r)?;
        if is_comparison(op) && swap {
            v = r;
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            s.v = v;
            if drops_name(op) || return_bool {
                s.drop_name = true;
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// `on`/`ignoring` of a binary operation.
pub(crate) struct Matching {
    pub on: bool,
    pub labels: Vec<String>,
}

impl Matching {
    /// The match-group signature of a label set.
    fn signature(&self, labels: &Lbls) -> Lbls {
        if self.on {
            labels
                .iter()
                .filter(|(n, _)| self.labels.iter().any(|l| l == n))
                .cloned()
                .collect()
        } else {
            labels
                .iter()
                .filter(|(n, _)| n != NAME && !self.labels.iter().any(|l| l == n))
                .cloned()
                .collect()
        }
    }
}

fn set_and(l: Vec<Sample>, r: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let sigs: HashSet<Lbls> = r.iter().map(|s| m.signature(&s.labels)).collect();
    l.into_iter()
        .filter(|s| sigs.contains(&m.signature(&s.labels)))
        .collect()
}

fn set_or(l: Vec<Sample>, r: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let sigs: HashSet<Lbls> = l.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|s| !sigs.contains(&m.signature(&s.labels))),
    );
    out
}

fn set_unless(l: Vec<Sample>, r: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let sigs: HashSet<Lbls> = r.iter().map(|s| m.signature(&s.labels)).collect();
    l.into_iter()
        .filter(|s| !sigs.contains(&m.signature(&s.labels)))
        .collect()
}

fn vector_binop(
    op: u16,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &Matching,
    card: &VectorMatchCardinality,
    return_bool: bool,
    fills: &VectorMatchFillValues,
) -> Result<Vec<Sample>> {
    let fill_any = fills.lhs.is_some() || fills.rhs.is_some();
    if (lhs.is_empty() || rhs.is_empty()) && !fill_any {
        return Ok(Vec::new());
    }
    let (include, one_to_many) = match card {
        VectorMatchCardinality::ManyToOne(ls) => (Some(ls.labels.clone()), false),
        VectorMatchCardinality::OneToMany(ls) => (Some(ls.labels.clone()), true),
        _ => (None, false),
    };
    let one_to_one = include.is_none();
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<Lbls, usize> = HashMap::new();
    for (i, s) in rhs.iter().enumerate() {
        let sig = m.signature(&s.labels);
        if let Some(prev) = right.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            let (a, b) = (fmt_labels(&rhs[*prev].labels), fmt_labels(&s.labels));
            return Err(Error::Execution(if one_to_one {
                format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a}, {b}];many-to-many matching not allowed: matching labels must be unique on one side",
                    fmt_labels(&sig)
                )
            } else {
                format!(
                    "found duplicate series for the match group {} on the {side} side of the operation: {a} and {b}",
                    fmt_labels(&sig)
                )
            }));
        }
        right.insert(sig, i);
    }
    let mut matched: HashMap<Lbls, HashSet<Lbls>> = HashMap::new();
    let mut out = Vec::new();
    let mut rhs_matched = vec![false; rhs.len()];
    // Prometheus applies the fills after swapping sides for group_right.
    let (fill_rhs, fill_lhs) = (fills.rhs, fills.lhs);
    let mut pairs: Vec<(Sample, Option<usize>, f64)> = Vec::new();
    for ls in lhs {
        let sig = m.signature(&ls.labels);
        match right.get(&sig) {
            Some(ri) => {
                rhs_matched[*ri] = true;
                let v = rhs[*ri].v;
                pairs.push((ls, Some(*ri), v));
            }
            None => {
                if let Some(fill) = fill_rhs {
                    pairs.push((ls, None, fill));
                }
            }
        }
    }
    if let Some(fill) = fill_lhs {
        for (ri, rs) in rhs.iter().enumerate() {
            if rhs_matched[ri] {
                continue;
            }
            let mut labels = m.signature(&rs.labels);
            if let Some(include) = &include {
                for name in include {
                    super::value::set(&mut labels, name, get(&rs.labels, name));
                }
            }
            let synthetic = Sample {
                labels,
                t: rs.t,
                v: fill,
                drop_name: false,
            };
            pairs.push((synthetic, Some(ri), rs.v));
        }
    }
    let empty = Vec::new();
    for (ls, ri, rv) in pairs {
        let sig = m.signature(&ls.labels);
        let rs_labels = ri.map_or(&empty, |i| &rhs[i].labels);
        let (vl, vr) = if one_to_many { (rv, ls.v) } else { (ls.v, rv) };
        let (mut v, keep) = elem_binop(op, vl, vr)?;
        if one_to_one {
            if matched.contains_key(&sig) {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            matched.insert(sig.clone(), HashSet::new());
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let metric = result_metric(&ls.labels, rs_labels, m, include.as_deref());
        if !one_to_one {
            let set = matched.entry(sig).or_default();
            if !set.insert(metric.clone()) {
                return Err(Error::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
        }
        let keep_lhs_name = !(drops_name(op) || return_bool);
        let drop_name = if keep_lhs_name { ls.drop_name } else { true };
        out.push(Sample {
            labels: metric,
            t: ls.t,
            v,
            drop_name,
        });
    }
    Ok(out)
}

fn result_metric(lhs: &Lbls, rhs: &Lbls, m: &Matching, include: Option<&[String]>) -> Lbls {
    let mut out = lhs.clone();
    if include.is_none() {
        if m.on {
            out.retain(|(n, _)| m.labels.iter().any(|l| l == n));
        } else {
            out.retain(|(n, _)| !m.labels.iter().any(|l| l == n));
        }
    }
    if let Some(include) = include {
        for name in include {
            let v = get(rhs, name).to_string();
            super::value::set(&mut out, name, &v);
        }
    }
    out
}

/// Drops `__name__` where delayed name removal asks for it.
pub(crate) fn finish_vector(samples: Vec<Sample>) -> Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(samples.len());
    let mut seen = HashSet::new();
    for mut s in samples {
        if s.drop_name {
            drop_name(&mut s.labels);
            s.drop_name = false;
        }
        if !seen.insert(s.labels.clone()) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
        out.push(s);
    }
    Ok(out)
}

/// Checks a function or operator result for duplicate label sets (names included).
pub(crate) fn check_duplicates(samples: &[Sample]) -> Result<()> {
    let mut seen = HashSet::new();
    for s in samples {
        if !seen.insert((&s.labels, s.drop_name)) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Unwraps parentheses.
pub(crate) fn unparen(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}
