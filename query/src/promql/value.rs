//! Internal value model of the evaluator: label sets, samples, series and the four
//! PromQL value types, plus Go-compatible float helpers the functions need.

/// A label set sorted by name (`__name__` included while not dropped).
pub(crate) type Lbls = Vec<(String, String)>;

/// The label holding the metric name.
pub(crate) const NAME: &str = "__name__";

/// Prometheus' staleness marker bit pattern.
pub(crate) const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True for the staleness marker (and only for it, not for ordinary NaN).
pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One element of an instant vector.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub labels: Lbls,
    /// Timestamp of the underlying raw sample (only meaningful right after a selector).
    pub t: i64,
    pub v: f64,
    /// Delayed `__name__` removal: the name is dropped when the result is returned.
    pub drop_name: bool,
}

/// One series of a range vector.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub labels: Lbls,
    pub points: Vec<(i64, f64)>,
    pub drop_name: bool,
}

/// A range vector and the bounds `(start, end]` it was selected over.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    pub series: Vec<Series>,
    pub start: i64,
    pub end: i64,
}

/// A value during evaluation at one instant.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Sample>),
    Matrix(Matrix),
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }
}

/// Returns a label's value or "".
pub(crate) fn get<'a>(labels: &'a Lbls, name: &str) -> &'a str {
    labels
        .binary_search_by(|(n, _)| n.as_str().cmp(name))
        .map(|i| labels[i].1.as_str())
        .unwrap_or("")
}

/// Sets (or, for an empty value, deletes) a label.
pub(crate) fn set(labels: &mut Lbls, name: &str, value: &str) {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) => {
            if value.is_empty() {
                labels.remove(i);
            } else {
                labels[i].1 = value.to_string();
            }
        }
        Err(i) => {
            if !value.is_empty() {
                labels.insert(i, (name.to_string(), value.to_string()));
            }
        }
    }
}

/// Deletes a label.
pub(crate) fn del(labels: &mut Lbls, name: &str) {
    if let Ok(i) = labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        labels.remove(i);
    }
}

/// Removes the metric name, and the `__type__`/`__unit__` metadata labels that
/// describe it, as Prometheus does when a function or operator changes the value.
pub(crate) fn drop_name(labels: &mut Lbls) {
    labels.retain(|(n, _)| n != NAME && n != "__type__" && n != "__unit__");
}

/// Formats labels as Prometheus does: `{a="b", c="d"}` (name included as a label).
pub(crate) fn fmt_labels(labels: &Lbls) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Go's `math.Max` (NaN wins, +0 > -0).
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b && a == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min` (NaN wins, -0 < +0).
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b && a == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// Neumaier-compensated summation step, as Prometheus' `kahanSumInc`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Formats a float as Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// The incremental-mean-with-overflow-fallback average Prometheus uses for `avg` and
/// `avg_over_time`.
#[derive(Default)]
pub(crate) struct MeanAcc {
    count: f64,
    sum: f64,
    c: f64,
    mean: f64,
    incremental: bool,
}

impl MeanAcc {
    pub(crate) fn add(&mut self, v: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.sum = v;
            self.mean = v;
            return;
        }
        if !self.incremental {
            let (s, c) = kahan_inc(v, self.sum, self.c);
            if !s.is_infinite() {
                self.sum = s;
                self.c = c;
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                return;
            }
            if !v.is_infinite() && !v.is_nan() {
                return;
            }
        }
        let q = (self.count - 1.0) / self.count;
        let (m, c) = kahan_inc(v / self.count, q * self.mean, q * self.c);
        self.mean = m;
        self.c = c;
    }

    pub(crate) fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else if self.count == 1.0 {
            self.sum
        } else {
            (self.sum + self.c) / self.count
        }
    }
}

/// Welford variance accumulator (population variance), as Prometheus' stdvar.
#[derive(Default)]
pub(crate) struct VarAcc {
    count: f64,
    mean: f64,
    cmean: f64,
    m2: f64,
    cm2: f64,
}

impl VarAcc {
    pub(crate) fn add(&mut self, v: f64) {
        self.count += 1.0;
        let delta = v - (self.mean + self.cmean);
        let (m, c) = kahan_inc(delta / self.count, self.mean, self.cmean);
        self.mean = m;
        self.cmean = c;
        let new_mean = self.mean + self.cmean;
        let (m2, c2) = kahan_inc(delta * (v - new_mean), self.m2, self.cm2);
        self.m2 = m2;
        self.cm2 = c2;
    }

    pub(crate) fn variance(&self) -> f64 {
        (self.m2 + self.cm2) / self.count
    }
}

/// Prometheus' `quantile` over a set of values (sorts them; NaN first).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(f64::NAN, 1.0).is_nan());
        assert!(go_min(1.0, f64::NAN).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
    }

    #[test]
    fn mean_survives_overflow() {
        let mut acc = MeanAcc::default();
        acc.add(f64::MAX);
        acc.add(f64::MAX);
        assert_eq!(acc.value(), f64::MAX);
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0, 4.0]), 2.5);
    }
}
