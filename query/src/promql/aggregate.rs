//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, `limitk` …)
//! with `by`/`without` grouping.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::Evaluator;
use super::go_strings::{go_quote, valid_label_name};
use super::value::{Lbls, MeanAcc, NAME, Sample, Val, VarAcc, format_float, kahan_inc, quantile};
use crate::{Error, Result};

/// The group key of a sample's labels under `by`/`without`.
pub(crate) fn group_labels(labels: &Lbls, modifier: &Option<LabelModifier>) -> Lbls {
    match modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(ls)) => labels
            .iter()
            .filter(|(n, _)| ls.labels.iter().any(|l| l == n))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(ls)) => labels
            .iter()
            .filter(|(n, _)| n != NAME && !ls.labels.iter().any(|l| l == n))
            .cloned()
            .collect(),
    }
}

/// Converts a `k` parameter as Prometheus does.
fn k_param(v: f64) -> Result<i64> {
    if v.is_nan() {
        return Err(Error::Execution("Parameter value is NaN".into()));
    }
    if v >= i64::MAX as f64 {
        return Ok(i64::MAX);
    }
    if v <= i64::MIN as f64 {
        return Ok(i64::MIN);
    }
    Ok(v as i64)
}

fn label_hash_ratio(labels: &Lbls) -> f64 {
    let mut h = DefaultHasher::new();
    labels.hash(&mut h);
    h.finish() as f64 / u64::MAX as f64
}

/// Evaluates an aggregation at time `t`.
pub(crate) fn aggregate(ev: &mut Evaluator, a: &AggregateExpr, t: i64) -> Result<Val> {
    let op = a.op.id();
    let mut param_num = None;
    let mut param_str = None;
    if let Some(p) = &a.param {
        match ev.eval(p, t)? {
            Val::Scalar(v) => param_num = Some(v),
            Val::Str(s) => param_str = Some(s),
            other => {
                return Err(Error::Execution(format!(
                    "expected scalar or string aggregation parameter, got {}",
                    other.type_name()
                )));
            }
        }
    }
    let input = ev.eval_vector(&a.expr, t)?;
    let mut order: Vec<Lbls> = Vec::new();
    let mut groups: HashMap<Lbls, Vec<Sample>> = HashMap::new();
    for s in input {
        let key = group_labels(&s.labels, &a.modifier);
        match groups.get_mut(&key) {
            Some(g) => g.push(s),
            None => {
                order.push(key.clone());
                groups.insert(key, vec![s]);
            }
        }
    }
    let mut out = Vec::new();
    match op {
        T_TOPK | T_BOTTOMK | T_LIMITK => {
            let k = k_param(param_num.unwrap_or(f64::NAN))?;
            if k < 1 {
                return Ok(Val::Vector(Vec::new()));
            }
            for key in &order {
                let mut members = groups.remove(key).unwrap_or_default();
                if op != T_LIMITK {
                    let top = op == T_TOPK;
                    members.sort_by(|x, y| {
                        use std::cmp::Ordering;
                        match (x.v.is_nan(), y.v.is_nan()) {
                            (true, true) => Ordering::Equal,
                            (true, false) => Ordering::Greater,
                            (false, true) => Ordering::Less,
                            _ => {
                                let o = x.v.partial_cmp(&y.v).unwrap_or(Ordering::Equal);
                                if top { o.reverse() } else { o }
                            }
                        }
                    });
                }
                let k = (k as u64).min(members.len() as u64) as usize;
                members.truncate(k);
                out.extend(members);
            }
            return Ok(Val::Vector(out));
        }
        T_LIMIT_RATIO => {
            let mut ratio = param_num.unwrap_or(f64::NAN);
            if ratio.is_nan() {
                return Err(Error::Execution("Ratio value is NaN".into()));
            }
            if !(-1.0..=1.0).contains(&ratio)
                && let Some(param) = &a.param
            {
                ev.add_warning(
                    &**param,
                    format!(
                        "PromQL warning: ratio value should be between -1 and 1, got {ratio}, capping to {}",
                        ratio.clamp(-1.0, 1.0)
                    ),
                );
            }
            ratio = ratio.clamp(-1.0, 1.0);
            for key in &order {
                for s in groups.remove(key).unwrap_or_default() {
                    let offset = label_hash_ratio(&s.labels);
                    let keep = if ratio >= 0.0 {
                        offset < ratio
                    } else {
                        offset >= 1.0 + ratio
                    };
                    if keep {
                        out.push(s);
                    }
                }
            }
            return Ok(Val::Vector(out));
        }
        _ => {}
    }
    if op == T_COUNT_VALUES {
        let label = param_str.unwrap_or_default();
        if !valid_label_name(&label) {
            return Err(Error::Execution(format!(
                "invalid label name {}",
                go_quote(&label)
            )));
        }
        let mut counts: Vec<(Lbls, f64)> = Vec::new();
        let mut index: HashMap<Lbls, usize> = HashMap::new();
        for key in &order {
            for s in groups.remove(key).unwrap_or_default() {
                let mut labels = key.clone();
                super::value::set(&mut labels, &label, &format_float(s.v));
                match index.get(&labels) {
                    Some(i) => counts[*i].1 += 1.0,
                    None => {
                        index.insert(labels.clone(), counts.len());
                        counts.push((labels, 1.0));
                    }
                }
            }
        }
        return Ok(Val::Vector(
            counts
                .into_iter()
                .map(|(labels, v)| Sample {
                    labels,
                    t,
                    v,
                    drop_name: false,
                })
                .collect(),
        ));
    }
    for key in order {
        let members = groups.remove(&key).unwrap_or_default();
        let drop_name = members.iter().any(|s| s.drop_name);
        let v = match op {
            T_SUM => {
                let (mut sum, mut c) = (0.0, 0.0);
                for s in &members {
                    (sum, c) = kahan_inc(s.v, sum, c);
                }
                if c.is_finite() { sum + c } else { sum }
            }
            T_AVG => {
                let mut acc = MeanAcc::default();
                for s in &members {
                    acc.add(s.v);
                }
                acc.value()
            }
            T_COUNT => members.len() as f64,
            T_GROUP => 1.0,
            T_MIN => {
                let mut v = members[0].v;
                for s in &members[1..] {
                    if v > s.v || v.is_nan() {
                        v = s.v;
                    }
                }
                v
            }
            T_MAX => {
                let mut v = members[0].v;
                for s in &members[1..] {
                    if v < s.v || v.is_nan() {
                        v = s.v;
                    }
                }
                v
            }
            T_STDDEV | T_STDVAR => {
                let mut acc = VarAcc::default();
                for s in &members {
                    acc.add(s.v);
                }
                if op == T_STDDEV {
                    acc.variance().sqrt()
                } else {
                    acc.variance()
                }
            }
            T_QUANTILE => {
                let q = param_num.unwrap_or(f64::NAN);
                let mut values: Vec<f64> = members.iter().map(|s| s.v).collect();
                quantile(q, &mut values)
            }
            _ => {
                return Err(Error::Execution(format!(
                    "unsupported aggregation operator {}",
                    a.op
                )));
            }
        };
        out.push(Sample {
            labels: key,
            t,
            v,
            drop_name,
        });
    }
    if op == T_QUANTILE
        && let Some(q) = param_num
        && !(0.0..=1.0).contains(&q)
        && let Some(param) = &a.param
    {
        ev.add_warning(&**param, super::functions::invalid_quantile(q));
    }
    Ok(Val::Vector(out))
}
