//! The PromQL engine: parse with `promql-parser`, evaluate over the storage engine as
//! Prometheus 3.x does.
//!
//! The interface below is what the HTTP API (`api::prometheus`) calls. Behind it:
//! the query is parsed and evaluated on a dedicated thread with a large stack (deep
//! expressions cannot overflow a runtime thread), which first lists the sample window
//! every selector needs over the whole query; the async side loads those samples once
//! (`select_series` + `scan_samples`), and the thread then steps through the query in
//! memory. Name removal is delayed as in Prometheus 3 (`__name__` is dropped when the
//! result is returned), lookback and range windows are left-open, staleness markers
//! end a series.
//!
//! Modules: `eval` (planning, loading, selectors, subqueries, binary operators),
//! `stepped` (range queries: selectors, range functions and aggregations computed for
//! all steps at once), `aggregate`, `functions`, `value` (internal value model and
//! float helpers), `go_strings` (string literals holding bytes that are not UTF-8, as
//! Go reads them).

mod aggregate;
mod eval;
mod functions;
mod go_strings;
mod positions;
mod stepped;
mod value;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use promql_parser::parser::Expr;

use proto::TenantId;
use storage::series::Labels;

use crate::{Error, QueryContext, Result};

/// A query's result value, as the Prometheus HTTP API types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `scalar`: one number at the evaluation time.
    Scalar { t_ms: i64, v: f64 },
    /// `string`: a string literal at the evaluation time.
    String { t_ms: i64, v: String },
    /// `vector`: one sample per series at the evaluation time.
    Vector(Vec<InstantSample>),
    /// `matrix`: several samples per series (range queries, range selectors).
    Matrix(Vec<RangeSeries>),
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub t_ms: i64,
    pub v: f64,
}

/// One series of a matrix, points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// A value plus the annotations Prometheus returns beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub value: Value,
    /// `warnings` of the response envelope (e.g. "PromQL warning: …").
    pub warnings: Vec<String>,
    /// `infos` of the response envelope (e.g. "PromQL info: …").
    pub infos: Vec<String>,
}

/// Evaluates PromQL over one storage engine, bounded by the `[query]` configuration
/// (timeout, `max_samples`, lookback delta).
#[derive(Debug, Clone)]
pub struct Engine {
    context: QueryContext,
    /// Lookback delta of this engine's queries, instead of `query.lookback_delta`.
    lookback_delta: Option<Duration>,
}

/// Most points per series a range query may return (Prometheus' limit).
const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// Deepest bracket nesting accepted in a query.
const MAX_NESTING: usize = 256;
/// Deepest expression tree evaluated.
const MAX_DEPTH: usize = 1_000;
/// Most binary operators one query may have. The parser's time grows with the square of
/// their number (10 000 `or`s take most of a second); dashboards use a few dozen.
const MAX_BINARY_OPERATORS: usize = 2_000;
/// Stack of the evaluation thread.
const EVAL_STACK_BYTES: usize = 64 << 20;

/// What to evaluate: one instant, or steps from start to end.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    end: i64,
    step: i64,
    range: bool,
}

impl Engine {
    /// Builds an engine reading through `context`.
    pub fn new(context: QueryContext) -> Self {
        Engine {
            context,
            lookback_delta: None,
        }
    }

    /// Uses `lookback_delta` (how far back an instant selector looks for a sample)
    /// instead of `query.lookback_delta`; zero keeps the configured one, as in
    /// Prometheus. The caller bounds it.
    pub fn with_lookback_delta(mut self, lookback_delta: Duration) -> Self {
        self.lookback_delta = (!lookback_delta.is_zero()).then_some(lookback_delta);
        self
    }

    /// Evaluates `query` at one instant (Unix milliseconds).
    /// Parse errors are [`Error::BadRequest`] (`bad_data`), evaluation errors
    /// [`Error::Execution`], limits [`Error::TooLarge`], the timeout [`Error::Timeout`].
    pub async fn instant(&self, tenant: &TenantId, query: &str, time_ms: i64) -> Result<Evaluated> {
        let window = Window {
            start: time_ms,
            end: time_ms,
            step: 1,
            range: false,
        };
        self.run(tenant, query, window).await
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive; the
    /// result is always a matrix (or a scalar/string error as Prometheus gives).
    pub async fn range(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Evaluated> {
        if step_ms <= 0 {
            return Err(Error::BadRequest(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::BadRequest(
                "end timestamp must not be before start time".into(),
            ));
        }
        // As Prometheus: (end - start) / step may reach 11 000, i.e. 11 001 points.
        if (end_ms as i128 - start_ms as i128) / step_ms as i128 > MAX_POINTS_PER_SERIES as i128 {
            return Err(Error::BadRequest(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let window = Window {
            start: start_ms,
            end: end_ms,
            step: step_ms,
            range: true,
        };
        self.run(tenant, query, window).await
    }

    async fn run(&self, tenant: &TenantId, query: &str, window: Window) -> Result<Evaluated> {
        check_nesting(query)?;
        let config = self.context.config();
        let timeout = config.timeout.get();
        let lookback = self
            .lookback_delta
            .unwrap_or_else(|| config.lookback_delta.get())
            .as_millis()
            .min(i64::MAX as u128) as i64;
        let max_samples = config.max_samples;
        let storage = self.context.storage()?.clone();
        let deadline = Instant::now() + timeout;

        let (needs_tx, needs_rx) = tokio::sync::oneshot::channel::<Result<Vec<eval::Need>>>();
        let (data_tx, data_rx) =
            tokio::sync::oneshot::channel::<Result<(HashMap<usize, Vec<eval::Loaded>>, u64)>>();
        let (result_tx, result_rx) = tokio::sync::oneshot::channel::<Result<Evaluated>>();
        let query_for_log = query.to_string();
        let query = query.to_string();
        std::thread::Builder::new()
            .name("promql-eval".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn(move || {
                let (expr, parsed) = match parse(&query) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        let _ = needs_tx.send(Err(e));
                        return;
                    }
                };
                let mut ev =
                    eval::Evaluator::new(window.start, window.end, lookback, timeout, max_samples);
                if window.range {
                    ev.query_step = window.step;
                }
                ev.positions = positions::Positions::of(&parsed, &expr);
                let _ = needs_tx.send(ev.needs(&expr));
                let result = match data_rx.blocking_recv() {
                    Ok(Ok((data, samples))) => ev
                        .set_data(data, samples)
                        .and_then(|()| evaluate(&mut ev, &expr, window)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => return,
                };
                let _ = result_tx.send(result);
            })
            .map_err(|e| Error::Internal(format!("starting the evaluation thread: {e}")))?;

        let work = async {
            let needs = needs_rx
                .await
                .map_err(|_| Error::Internal("the evaluation thread stopped".into()))??;
            let loaded = eval::load(&storage, tenant, needs, deadline, timeout, max_samples).await;
            let _ = data_tx.send(loaded);
            result_rx
                .await
                .map_err(|_| Error::Internal("the evaluation thread stopped".into()))?
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout + Duration::from_millis(100), work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        };
        tracing::debug!(
            query = %query_for_log,
            start = window.start,
            end = window.end,
            step = window.step,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "promql query"
        );
        result
    }
}

/// Parses a query for the HTTP API's own checks, refusing first what [`check_nesting`]
/// refuses, so that no request can make the parser recurse or spin without bound.
/// Errors are the message alone, as the parser gives them.
pub fn parse_checked(query: &str) -> std::result::Result<Expr, String> {
    check_nesting(query).map_err(|e| e.to_string())?;
    promql_parser::parser::parse(query)
}

/// Rejects queries nested deeper than [`MAX_NESTING`] brackets or with more than
/// [`MAX_BINARY_OPERATORS`] binary operators (both counted outside strings).
fn check_nesting(query: &str) -> Result<()> {
    if binary_operators(query) > MAX_BINARY_OPERATORS {
        return Err(Error::BadRequest(format!(
            "query has more than {MAX_BINARY_OPERATORS} binary operators"
        )));
    }
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in query.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_NESTING {
        return Err(Error::BadRequest(format!(
            "query is nested too deeply (more than {MAX_NESTING} levels)"
        )));
    }
    Ok(())
}

/// Counts binary operators outside strings: symbols (`==` and friends count once; a
/// unary sign or a comparison's `=` may count too, which only makes the bound stricter)
/// and the set operators `and`, `or`, `unless`.
fn binary_operators(query: &str) -> usize {
    let mut count = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut word = String::new();
    let mut previous_symbol = false;
    for c in query.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            previous_symbol = false;
            continue;
        }
        if matches!(word.as_str(), "and" | "or" | "unless") {
            count += 1;
        }
        word.clear();
        let symbol = matches!(c, '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>');
        if symbol && !previous_symbol {
            count += 1;
        }
        previous_symbol = symbol;
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
        }
    }
    if matches!(word.as_str(), "and" | "or" | "unless") {
        count += 1;
    }
    count
}

/// Parses a query; parse errors are bad requests. Returns the text the parser read too
/// (Go-style byte escapes in strings re-encoded), which node positions refer to.
fn parse(query: &str) -> Result<(Expr, String)> {
    let query = go_strings::encode_byte_escapes(query);
    let expr = promql_parser::parser::parse(&query).map_err(Error::BadRequest)?;
    if !depth_ok(&expr, 0) {
        return Err(Error::BadRequest(format!(
            "query is nested too deeply (more than {MAX_DEPTH} levels)"
        )));
    }
    Ok((expr, query.into_owned()))
}

fn depth_ok(expr: &Expr, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let d = depth + 1;
    match expr {
        Expr::Aggregate(a) => {
            a.param.as_ref().is_none_or(|p| depth_ok(p, d)) && depth_ok(&a.expr, d)
        }
        Expr::Unary(u) => depth_ok(&u.expr, d),
        Expr::Binary(b) => depth_ok(&b.lhs, d) && depth_ok(&b.rhs, d),
        Expr::Paren(p) => depth_ok(&p.expr, d),
        Expr::Subquery(s) => depth_ok(&s.expr, d),
        Expr::Call(c) => c.args.args.iter().all(|a| depth_ok(a, d)),
        _ => true,
    }
}

fn to_labels(labels: value::Lbls) -> Result<Labels> {
    Labels::new(labels).map_err(|e| Error::Internal(e.to_string()))
}

/// Evaluates the parsed query over its window and shapes the result.
fn evaluate(ev: &mut eval::Evaluator, expr: &Expr, window: Window) -> Result<Evaluated> {
    let value = if !window.range {
        let t = window.start;
        match ev.eval(expr, t)? {
            value::Val::Scalar(v) => Value::Scalar { t_ms: t, v },
            value::Val::Str(v) => Value::String { t_ms: t, v },
            value::Val::Vector(samples) => Value::Vector(
                eval::finish_vector(samples)?
                    .into_iter()
                    .map(|s| {
                        Ok(InstantSample {
                            labels: to_labels(s.labels)?,
                            t_ms: t,
                            v: s.v,
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            value::Val::Matrix(m) => Value::Matrix(finish_matrix(m.series)?),
        }
    } else if let Some(root) = ev.prepare_stepped(
        expr,
        stepped::Steps::new(window.start, window.end, window.step),
    )? {
        // The whole query was computed for every step at once.
        let series = root.into_series(stepped::Steps::new(window.start, window.end, window.step));
        ev.charge(series.iter().map(|s| s.points.len() as u64).sum())?;
        Value::Matrix(finish_matrix(series)?)
    } else {
        let mut index = eval::SeriesIndex::new();
        let mut series = Vec::new();
        let mut t = window.start;
        while t <= window.end {
            match ev.eval(expr, t)? {
                value::Val::Scalar(v) => {
                    eval::push_point(&mut index, &mut series, &Vec::new(), false, t, v)
                }
                value::Val::Vector(samples) => {
                    eval::check_duplicates(&samples)?;
                    ev.charge(samples.len() as u64)?;
                    for s in samples {
                        eval::push_point(&mut index, &mut series, &s.labels, s.drop_name, t, s.v);
                    }
                }
                other => {
                    return Err(Error::Execution(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        other.type_name()
                    )));
                }
            }
            match t.checked_add(window.step) {
                Some(next) => t = next,
                None => break,
            }
        }
        Value::Matrix(finish_matrix(series)?)
    };
    Ok(Evaluated {
        value,
        warnings: std::mem::take(&mut ev.warnings),
        infos: std::mem::take(&mut ev.infos),
    })
}

/// Drops delayed names, merges series whose label sets became equal (an error if
/// they overlap in time) and sorts by labels.
fn finish_matrix(series: Vec<value::Series>) -> Result<Vec<RangeSeries>> {
    let mut merged: HashMap<value::Lbls, Vec<(i64, f64)>> = HashMap::new();
    for mut s in series {
        if s.drop_name {
            value::drop_name(&mut s.labels);
        }
        match merged.get_mut(&s.labels) {
            Some(points) => {
                points.extend(s.points);
                points.sort_by_key(|p| p.0);
                if points.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(Error::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
            None => {
                merged.insert(s.labels, s.points);
            }
        }
    }
    let mut out: Vec<RangeSeries> = merged
        .into_iter()
        .map(|(labels, points)| {
            Ok(RangeSeries {
                labels: to_labels(labels)?,
                points,
            })
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

#[cfg(test)]
mod tests;
