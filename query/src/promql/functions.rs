//! PromQL functions: range-vector functions (rate family, `*_over_time`, `deriv` …),
//! instant-vector math, label manipulation, sorting, dates and classic histograms.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use super::eval::{Evaluator, check_duplicates, unparen};
use super::go_strings::{go_quote, valid_label_name};
use super::value::{
    Lbls, Matrix, MeanAcc, NAME, Sample, Val, VarAcc, del, get, go_max, go_min, kahan_inc,
    quantile, set,
};
use crate::{Error, Result};

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    c.args
        .args
        .get(i)
        .map(|b| b.as_ref())
        .ok_or_else(|| Error::Execution(format!("missing argument {i} of {}", c.func.name)))
}

fn string_arg(ev: &mut Evaluator, c: &Call, i: usize, t: i64) -> Result<String> {
    match ev.eval(arg(c, i)?, t)? {
        Val::Str(s) => Ok(s),
        other => Err(Error::Execution(format!(
            "expected string argument, got {}",
            other.type_name()
        ))),
    }
}

/// Maps every sample of a vector through `f`, dropping the metric name.
fn map_vector(samples: Vec<Sample>, f: impl Fn(f64) -> f64) -> Val {
    Val::Vector(
        samples
            .into_iter()
            .map(|mut s| {
                s.v = f(s.v);
                s.drop_name = true;
                s
            })
            .collect(),
    )
}

fn simple_math(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => return None,
    })
}

/// Evaluates a function call at time `t`.
pub(crate) fn call(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Val> {
    let name = c.func.name;
    if let Some(f) = simple_math(name) {
        let v = ev.eval_vector(arg(c, 0)?, t)?;
        return Ok(map_vector(v, f));
    }
    if ev.query_step > 0
        && matches!(
            name,
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
        )
    {
        // A range query's series come out ordered by labels whatever sorted them.
        ev.add_warning(
            c,
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into(),
        );
    }
    match name {
        "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
        "step" => Ok(Val::Scalar(ev.query_step as f64 / 1000.0)),
        "range" => Ok(Val::Scalar((ev.query_end - ev.query_start) as f64 / 1000.0)),
        "start" => Ok(Val::Scalar(ev.query_start as f64 / 1000.0)),
        "end" => Ok(Val::Scalar(ev.query_end as f64 / 1000.0)),
        "min_of" | "max_of" => {
            let mut acc = ev.eval_scalar(arg(c, 0)?, t)?;
            for a in c.args.args.iter().skip(1) {
                let v = ev.eval_scalar(a, t)?;
                acc = if name == "min_of" {
                    go_min(acc, v)
                } else {
                    go_max(acc, v)
                };
            }
            Ok(Val::Scalar(acc))
        }
        "pi" => Ok(Val::Scalar(std::f64::consts::PI)),
        "vector" => {
            let v = ev.eval_scalar(arg(c, 0)?, t)?;
            Ok(Val::Vector(vec![Sample {
                labels: Vec::new(),
                t,
                v,
                drop_name: false,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            Ok(Val::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "round" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let to_nearest = match c.args.args.get(1) {
                Some(e) => ev.eval_scalar(e, t)?,
                None => 1.0,
            };
            let inv = 1.0 / to_nearest;
            Ok(map_vector(v, |x| (x * inv + 0.5).floor() / inv))
        }
        "clamp" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let min = ev.eval_scalar(arg(c, 1)?, t)?;
            let max = ev.eval_scalar(arg(c, 2)?, t)?;
            if max < min {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(map_vector(v, |x| go_max(min, go_min(max, x))))
        }
        "clamp_min" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let min = ev.eval_scalar(arg(c, 1)?, t)?;
            Ok(map_vector(v, |x| go_max(min, x)))
        }
        "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let max = ev.eval_scalar(arg(c, 1)?, t)?;
            Ok(map_vector(v, |x| go_min(max, x)))
        }
        "timestamp" => {
            let a = arg(c, 0)?;
            let direct = matches!(unparen(a), Expr::VectorSelector(_));
            let v = ev.eval_vector(a, t)?;
            Ok(Val::Vector(
                v.into_iter()
                    .map(|mut s| {
                        s.v = if direct { s.t as f64 } else { t as f64 } / 1000.0;
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            let input = match c.args.args.first() {
                Some(e) => ev.eval_vector(e, t)?,
                None => vec![Sample {
                    labels: Vec::new(),
                    t,
                    v: t as f64 / 1000.0,
                    drop_name: false,
                }],
            };
            Ok(map_vector(input, |x| date_part(name, x)))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let desc = name == "sort_desc";
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => {
                    let o = a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal);
                    if desc { o.reverse() } else { o }
                }
            });
            Ok(Val::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let mut names = Vec::new();
            for i in 1..c.args.args.len() {
                names.push(string_arg(ev, c, i, t)?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                for n in &names {
                    let (x, y) = (get(&a.labels, n), get(&b.labels, n));
                    if x == y {
                        continue;
                    }
                    let o = natural_cmp(x, y);
                    return if desc { o.reverse() } else { o };
                }
                let o = a.labels.cmp(&b.labels);
                if desc { o.reverse() } else { o }
            });
            Ok(Val::Vector(v))
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let dst = string_arg(ev, c, 1, t)?;
            let repl = string_arg(ev, c, 2, t)?;
            let src = string_arg(ev, c, 3, t)?;
            let re_src = string_arg(ev, c, 4, t)?;
            let re = Regex::new(&format!("^(?s:{re_src})$")).map_err(|_| {
                Error::Execution(format!(
                    "invalid regular expression in label_replace(): {re_src}"
                ))
            })?;
            if !valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let value = get(&s.labels, &src).to_string();
                if let Some(caps) = re.captures(&value) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    set(&mut s.labels, &dst, &res);
                    if dst == NAME {
                        s.drop_name = false;
                    }
                }
                out.push(s);
            }
            check_duplicates(&out)?;
            Ok(Val::Vector(out))
        }
        "label_join" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let dst = string_arg(ev, c, 1, t)?;
            let sep = string_arg(ev, c, 2, t)?;
            let mut srcs = Vec::new();
            for i in 3..c.args.args.len() {
                srcs.push(string_arg(ev, c, i, t)?);
            }
            if !valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let joined: Vec<&str> = srcs.iter().map(|n| get(&s.labels, n)).collect();
                let joined = joined.join(&sep);
                set(&mut s.labels, &dst, &joined);
                if dst == NAME {
                    s.drop_name = false;
                }
                out.push(s);
            }
            check_duplicates(&out)?;
            Ok(Val::Vector(out))
        }
        "absent" => {
            let a = arg(c, 0)?;
            let v = ev.eval_vector(a, t)?;
            if !v.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Sample {
                labels: absent_labels(a),
                t,
                v: 1.0,
                drop_name: false,
            }]))
        }
        "absent_over_time" => {
            let a = arg(c, 0)?;
            let m = ev.eval_matrix(a, t)?;
            if !m.series.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Sample {
                labels: absent_labels(a),
                t,
                v: 1.0,
                drop_name: false,
            }]))
        }
        "histogram_quantile" => {
            let q_arg = arg(c, 0)?;
            let q = ev.eval_scalar(q_arg, t)?;
            let buckets = arg(c, 1)?;
            let v = ev.eval_vector(buckets, t)?;
            // Prometheus 3 warns on NaN too (it answers NaN for every series).
            if !(0.0..=1.0).contains(&q) {
                ev.add_warning(q_arg, invalid_quantile(q));
            }
            Ok(Val::Vector(classic_histogram(
                ev,
                buckets,
                v,
                t,
                |b, forced| bucket_quantile(q, b, forced),
            )))
        }
        "histogram_quantiles" => {
            let buckets = arg(c, 0)?;
            let v = ev.eval_vector(buckets, t)?;
            let label = string_arg(ev, c, 1, t)?;
            let mut out = Vec::new();
            for a in c.args.args.iter().skip(2) {
                let q = ev.eval_scalar(a, t)?;
                if !(0.0..=1.0).contains(&q) {
                    ev.add_warning(&**a, invalid_quantile(q));
                }
                let text = if q.is_finite() && q.fract() == 0.0 {
                    format!("{q:.1}")
                } else {
                    super::value::format_float(q)
                };
                for mut s in classic_histogram(ev, buckets, v.clone(), t, |b, forced| {
                    bucket_quantile(q, b, forced)
                }) {
                    set(&mut s.labels, &label, &text);
                    out.push(s);
                }
            }
            Ok(Val::Vector(out))
        }
        "histogram_fraction" => {
            let lower = ev.eval_scalar(arg(c, 0)?, t)?;
            let upper = ev.eval_scalar(arg(c, 1)?, t)?;
            let buckets = arg(c, 2)?;
            let v = ev.eval_vector(buckets, t)?;
            Ok(Val::Vector(classic_histogram(ev, buckets, v, t, |b, _| {
                bucket_fraction(lower, upper, b)
            })))
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Float samples are not native histograms: these functions ignore them.
            let _ = ev.eval_vector(arg(c, 0)?, t)?;
            Ok(Val::Vector(Vec::new()))
        }
        _ => range_function(ev, c, t),
    }
}

/// The warning on a quantile outside [0, 1] (NaN included).
pub(crate) fn invalid_quantile(q: f64) -> String {
    format!("PromQL warning: quantile value should be between 0 and 1, got {q}")
}

/// The warning of `quantile_over_time` with a quantile outside [0, 1] (NaN included),
/// whose answer is then -Inf, +Inf or NaN, as Prometheus 3 gives it.
pub(crate) fn quantile_warning(name: &str, scalars: &[f64]) -> Option<String> {
    let q = *scalars.first()?;
    (name == "quantile_over_time" && !(0.0..=1.0).contains(&q)).then(|| invalid_quantile(q))
}

fn range_function(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Val> {
    let name = c.func.name;
    let matrix_arg = if name == "quantile_over_time" { 1 } else { 0 };
    let mut scalars = Vec::new();
    for (i, a) in c.args.args.iter().enumerate() {
        if i != matrix_arg {
            scalars.push(ev.eval_scalar(a, t)?);
        }
    }
    if let Some(warning) = quantile_warning(name, &scalars) {
        ev.add_warning(arg(c, 0)?, warning);
    }
    let matrix = arg(c, matrix_arg)?;
    let m = ev.eval_matrix(matrix, t)?;
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    if matches!(name, "double_exponential_smoothing" | "holt_winters") {
        let (sf, tf) = (
            scalars.first().copied().unwrap_or(f64::NAN),
            scalars.get(1).copied().unwrap_or(f64::NAN),
        );
        if !(sf > 0.0 && sf < 1.0) {
            return Err(Error::Execution(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
            )));
        }
        if !(tf > 0.0 && tf < 1.0) {
            return Err(Error::Execution(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf}"
            )));
        }
    }
    let mut out = Vec::with_capacity(m.series.len());
    for s in &m.series {
        let Some(v) = range_value(name, &s.points, &m, &scalars, t)? else {
            continue;
        };
        if let Some(info) = non_counter_info(name, &s.labels) {
            ev.add_info(matrix, info);
        }
        out.push(Sample {
            labels: s.labels.clone(),
            t,
            v,
            drop_name: s.drop_name || !keeps_name,
        });
    }
    Ok(Val::Vector(out))
}

/// The value of range function `name` over the points `p` of one series in the window of `m`.
pub(crate) fn range_value(
    name: &str,
    p: &[(i64, f64)],
    m: &Matrix,
    scalars: &[f64],
    t: i64,
) -> Result<Option<f64>> {
    if p.is_empty() {
        return Ok(None);
    }
    let values = || p.iter().map(|(_, v)| *v);
    Ok(match name {
        "rate" => extrapolated(p, m, true, true),
        "increase" => extrapolated(p, m, true, false),
        "delta" => extrapolated(p, m, false, false),
        "irate" | "idelta" => {
            if p.len() < 2 {
                return Ok(None);
            }
            let (last, prev) = (p[p.len() - 1], p[p.len() - 2]);
            let is_rate = name == "irate";
            let mut v = if is_rate && last.1 < prev.1 {
                last.1
            } else {
                last.1 - prev.1
            };
            let interval = last.0 - prev.0;
            if interval == 0 {
                return Ok(None);
            }
            if is_rate {
                v /= interval as f64 / 1000.0;
            }
            Some(v)
        }
        "deriv" => {
            if p.len() < 2 {
                return Ok(None);
            }
            Some(linear_regression(p, p[0].0).0)
        }
        "predict_linear" => {
            if p.len() < 2 {
                return Ok(None);
            }
            let (slope, intercept) = linear_regression(p, t);
            Some(intercept + slope * scalars.first().copied().unwrap_or(0.0))
        }
        "changes" => {
            let mut n = 0.0;
            for w in p.windows(2) {
                let (a, b) = (w[0].1, w[1].1);
                if !(a == b || (a.is_nan() && b.is_nan())) {
                    n += 1.0;
                }
            }
            Some(n)
        }
        "resets" => {
            let mut n = 0.0;
            for w in p.windows(2) {
                if w[1].1 < w[0].1 {
                    n += 1.0;
                }
            }
            Some(n)
        }
        "avg_over_time" => {
            let mut acc = MeanAcc::default();
            for v in values() {
                acc.add(v);
            }
            Some(acc.value())
        }
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for v in values() {
                (sum, c) = kahan_inc(v, sum, c);
            }
            Some(if c.is_finite() { sum + c } else { sum })
        }
        "count_over_time" => Some(p.len() as f64),
        "min_over_time" => {
            let mut m = p[0].1;
            for v in values() {
                if v < m || m.is_nan() {
                    m = v;
                }
            }
            Some(m)
        }
        "max_over_time" => {
            let mut m = p[0].1;
            for v in values() {
                if v > m || m.is_nan() {
                    m = v;
                }
            }
            Some(m)
        }
        "last_over_time" => Some(p[p.len() - 1].1),
        "first_over_time" => Some(p[0].1),
        "ts_of_last_over_time" => Some(p[p.len() - 1].0 as f64 / 1000.0),
        "ts_of_first_over_time" => Some(p[0].0 as f64 / 1000.0),
        "present_over_time" => Some(1.0),
        "stddev_over_time" | "stdvar_over_time" => {
            let mut acc = VarAcc::default();
            for v in values() {
                acc.add(v);
            }
            let var = acc.variance();
            Some(if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            })
        }
        "quantile_over_time" => {
            let q = scalars.first().copied().unwrap_or(f64::NAN);
            let mut vals: Vec<f64> = values().collect();
            Some(quantile(q, &mut vals))
        }
        "ts_of_min_over_time" | "ts_of_max_over_time" => {
            let min = name == "ts_of_min_over_time";
            let (mut best_t, mut best) = p[0];
            for (ts, v) in p.iter().copied() {
                let better = if min { v <= best } else { v >= best };
                if better || best.is_nan() {
                    best = v;
                    best_t = ts;
                }
            }
            Some(best_t as f64 / 1000.0)
        }
        "mad_over_time" => {
            if values().any(f64::is_nan) {
                return Ok(Some(f64::NAN));
            }
            let mut vals: Vec<f64> = values().collect();
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = vals.iter().map(|v| (v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }
        "double_exponential_smoothing" | "holt_winters" => {
            if p.len() < 2 {
                return Ok(None);
            }
            let (sf, tf) = (scalars[0], scalars[1]);
            let (mut s0, mut s1) = (0.0, p[0].1);
            let mut b = p[1].1 - p[0].1;
            for (i, point) in p.iter().enumerate().skip(1) {
                let x = sf * point.1;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            Some(s1)
        }
        other => {
            return Err(Error::Execution(format!(
                "function {other} is not supported"
            )));
        }
    })
}

/// `rate`, `increase` and `delta`: extrapolated to the range boundaries as Prometheus does.
fn extrapolated(p: &[(i64, f64)], m: &Matrix, is_counter: bool, is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let n1 = (p.len() - 1) as f64;
    let (first_t, last_t) = (p[0].0, p[p.len() - 1].0);
    let mut result = p[p.len() - 1].1 - p[0].1;
    if is_counter {
        let mut last = 0.0;
        for (_, v) in p {
            if *v < last {
                result += last;
            }
            last = *v;
        }
    }
    let mut to_start = (first_t as f64 - m.start as f64) / 1000.0;
    let mut to_end = (m.end as f64 - last_t as f64) / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / n1;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result > 0.0 && p[0].1 >= 0.0 {
            to_zero = sampled * (p[0].1 / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (m.end as f64 - m.start as f64) / 1000.0;
    }
    Some(result * factor)
}

/// Least-squares slope and intercept (at `intercept_t`), as Prometheus computes them.
fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, (ts, v)) in p.iter().enumerate() {
        if const_y && i > 0 && *v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (*ts as f64 - intercept_t as f64) / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(*v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn date_part(name: &str, v: f64) -> f64 {
    if !v.is_finite() {
        return f64::NAN;
    }
    let secs = v as i64;
    let Some(d) = DateTime::from_timestamp(secs, 0) else {
        return f64::NAN;
    };
    match name {
        "day_of_month" => d.day() as f64,
        "day_of_week" => d.weekday().num_days_from_sunday() as f64,
        "day_of_year" => d.ordinal() as f64,
        "days_in_month" => {
            let (y, m) = (d.year(), d.month());
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            match (
                chrono::NaiveDate::from_ymd_opt(y, m, 1),
                chrono::NaiveDate::from_ymd_opt(ny, nm, 1),
            ) {
                (Some(a), Some(b)) => (b - a).num_days() as f64,
                _ => f64::NAN,
            }
        }
        "hour" => d.hour() as f64,
        "minute" => d.minute() as f64,
        "month" => d.month() as f64,
        "year" => d.year() as f64,
        _ => f64::NAN,
    }
}

/// Natural order: digit runs compare as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx
                    .iter()
                    .position(|c| *c != b'0')
                    .map_or(&dx[dx.len()..], |i| &dx[i..]);
                let ty = dy
                    .iter()
                    .position(|c| *c != b'0')
                    .map_or(&dy[dy.len()..], |i| &dy[i..]);
                let o = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// The labels `absent()` reports: the equality matchers of a plain selector.
fn absent_labels(expr: &Expr) -> Lbls {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut has: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == NAME {
            continue;
        }
        if matches!(m.op, PMatchOp::Equal) && !has.contains(&m.name.as_str()) {
            set(&mut out, &m.name, &m.value);
            has.push(&m.name);
        } else {
            del(&mut out, &m.name);
        }
    }
    out
}

/// Groups classic `le` buckets (`v`, the value of expression `at`) by their other
/// labels and reduces each group with `f`.
fn classic_histogram(
    ev: &mut Evaluator,
    at: &Expr,
    v: Vec<Sample>,
    t: i64,
    f: impl Fn(&mut Vec<(f64, f64)>, &mut bool) -> f64,
) -> Vec<Sample> {
    let mut order: Vec<Lbls> = Vec::new();
    let mut groups: HashMap<Lbls, Vec<(f64, f64)>> = HashMap::new();
    for s in v {
        let le = get(&s.labels, "le");
        let Some(bound) = parse_go_float(le) else {
            ev.add_warning(
                at,
                format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of {} for metric name {}",
                    go_quote(le),
                    go_quote(get(&s.labels, NAME))
                ),
            );
            continue;
        };
        let mut key = s.labels.clone();
        del(&mut key, "le");
        match groups.get_mut(&key) {
            Some(g) => g.push((bound, s.v)),
            None => {
                order.push(key.clone());
                groups.insert(key, vec![(bound, s.v)]);
            }
        }
    }
    let mut out = Vec::new();
    for key in order {
        let mut buckets = groups.remove(&key).unwrap_or_default();
        let mut forced = false;
        let v = f(&mut buckets, &mut forced);
        if forced {
            // Prometheus names the bucket group, which has lost `__name__` by then
            // (without its delayed-name-removal flag), so the name is always "".
            ev.add_info(
                at,
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (and may give inaccurate results) for metric name \"\"".to_string(),
            );
        }
        out.push(Sample {
            labels: key,
            t,
            v,
            drop_name: true,
        });
    }
    out
}

/// Prometheus' info for `rate`/`increase` over a float series whose name does not
/// look like a counter's.
pub(crate) fn non_counter_info(func: &str, labels: &Lbls) -> Option<String> {
    let name = get(labels, NAME);
    let counter_like = ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|suffix| name.ends_with(suffix));
    (matches!(func, "rate" | "increase") && !name.is_empty() && !counter_like).then(|| {
        format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}",
            go_quote(name)
        )
    })
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "" => None,
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn sort_coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Prometheus' classic-bucket quantile.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>, forced_monotonic: &mut bool) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    sort_coalesce(buckets);
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut prev = buckets[0].1;
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            bucket.1 = prev;
            continue;
        }
        if curr < prev {
            bucket.1 = prev;
            *forced_monotonic = true;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.1 < rank);
    if b == n {
        return buckets[n - 1].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Prometheus' classic-bucket fraction of observations in `[lower, upper]`.
///
/// Observations are spread evenly within each bucket (the first bucket starts at 0 when
/// its upper bound is positive, else at -Inf). A bucket the range covers only in part
/// contributes the share it covers, except an infinitely wide bucket, which contributes
/// all of its observations when the range reaches its infinite end and none otherwise.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    sort_coalesce(buckets);
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut covered = 0.0;
    let mut previous_count = 0.0;
    for i in 0..buckets.len() {
        let (upper_bound, cumulative) = buckets[i];
        let count = cumulative - previous_count;
        previous_count = cumulative;
        let lower_bound = if i > 0 {
            buckets[i - 1].0
        } else if upper_bound > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        if upper <= lower_bound || lower >= upper_bound {
            continue;
        }
        if lower <= lower_bound && upper_bound <= upper {
            covered += count;
        } else if lower_bound.is_infinite() || upper_bound.is_infinite() {
            let reaches_end = (upper_bound == f64::INFINITY && upper == f64::INFINITY)
                || (lower_bound == f64::NEG_INFINITY && lower == f64::NEG_INFINITY);
            if reaches_end {
                covered += count;
            }
        } else {
            let from = lower.max(lower_bound);
            let to = upper.min(upper_bound);
            covered += count * (to - from) / (upper_bound - lower_bound);
        }
    }
    covered / total
}

#[cfg(test)]
mod tests {
    use super::super::value::Series;
    use super::*;

    fn matrix(points: &[(i64, f64)], start: i64, end: i64) -> Matrix {
        Matrix {
            series: Vec::new(),
            start,
            end,
        }
        .with(points)
    }

    impl Matrix {
        fn with(mut self, points: &[(i64, f64)]) -> Self {
            self.series.push(Series {
                labels: Vec::new(),
                points: points.to_vec(),
                drop_name: false,
            });
            self
        }
    }

    #[test]
    fn classic_fraction_takes_nothing_partial_from_infinite_buckets() {
        let buckets = [(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (f64::INFINITY, 100.0)];
        let fraction =
            |lower: f64, upper: f64| bucket_fraction(lower, upper, &mut buckets.to_vec());
        // Both bounds inside [3, +Inf): nothing, not a negative share.
        assert_eq!(fraction(4.0, 5.0), 0.0);
        // The range reaches +Inf: the whole last bucket.
        assert!((fraction(400.0, f64::INFINITY) - 0.94).abs() < 1e-12);
        // [0, 1] whole, half of (1, 2].
        assert!((fraction(0.0, 1.5) - 0.02).abs() < 1e-12);
        assert!((fraction(2.0, 3.5) - 0.03).abs() < 1e-12);
        assert_eq!(fraction(3.0, 2.0), 0.0);
        assert!(fraction(f64::NAN, 1.0).is_nan());
        let negative = [
            (-3.0, 10.0),
            (-2.0, 12.0),
            (-1.0, 15.0),
            (f64::INFINITY, 100.0),
        ];
        let fraction =
            |lower: f64, upper: f64| bucket_fraction(lower, upper, &mut negative.to_vec());
        assert!((fraction(-4.0, -2.0) - 0.02).abs() < 1e-12);
        assert!((fraction(f64::NEG_INFINITY, -1.5) - 0.135).abs() < 1e-12);
    }

    #[test]
    fn rate_extrapolates_to_the_range_boundaries() {
        // Samples every 10s from 10s to 50s over (0, 60s]: 0..40 increase over 40s sampled.
        let points: Vec<(i64, f64)> = (1..=5)
            .map(|i| (i * 10_000, (i - 1) as f64 * 10.0))
            .collect();
        let m = matrix(&points, 0, 60_000);
        // Extrapolated 10s on each side, but towards the start only to the zero point (0 at 10s).
        let inc = extrapolated(&points, &m, true, false).unwrap();
        assert!((inc - 50.0).abs() < 1e-9, "{inc}");
        let rate = extrapolated(&points, &m, true, true).unwrap();
        assert!((rate - 50.0 / 60.0).abs() < 1e-9);
        // delta is not zero-clamped: 40 * (40 + 10 + 10) / 40.
        let delta = extrapolated(&points, &m, false, false).unwrap();
        assert!((delta - 60.0).abs() < 1e-9, "{delta}");
    }

    #[test]
    fn counter_resets_add_the_value_before_the_reset() {
        let points = [(10_000, 5.0), (20_000, 10.0), (30_000, 2.0), (40_000, 6.0)];
        let m = matrix(&points, 10_000 - 1, 40_000);
        // 6 - 5 + 10 (reset) = 11, range covers the samples almost exactly.
        let inc = extrapolated(&points, &m, true, false).unwrap();
        assert!((inc - 11.0 * (30.001 / 30.0)).abs() < 1e-6, "{inc}");
    }

    #[test]
    fn gaps_extrapolate_only_half_an_interval() {
        let points = [(100_000, 10.0), (110_000, 20.0)];
        let m = matrix(&points, 0, 200_000);
        let delta = extrapolated(&points, &m, false, false).unwrap();
        // 10 over 10s, extended by 5s on each side.
        assert!((delta - 20.0).abs() < 1e-9, "{delta}");
    }

    #[test]
    fn classic_quantile_interpolates_within_a_bucket() {
        let mut b = vec![(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        let mut forced = false;
        assert!((bucket_quantile(0.75, &mut b, &mut forced) - 0.15).abs() < 1e-12);
        let mut b = vec![(1.0, 0.0), (f64::INFINITY, 0.0)];
        assert!(bucket_quantile(0.5, &mut b, &mut forced).is_nan());
        assert!(!forced);
        // A bucket below its predecessor is raised to it, and that is reported.
        let mut b = vec![(0.1, 50.0), (0.2, 40.0), (f64::INFINITY, 100.0)];
        assert!((bucket_quantile(0.25, &mut b, &mut forced) - 0.05).abs() < 1e-12);
        assert!(forced);
    }

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(natural_cmp("a9", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
    }
}
