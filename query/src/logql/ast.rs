//! The LogQL syntax tree.

use regex::Regex;

/// A parsed LogQL query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A log query: stream selector and pipeline.
    Log(LogExpr),
    /// A query that returns samples.
    Metric(MetricExpr),
}

/// `{selector} | stage | stage…`
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// Stream matchers.
    pub matchers: Vec<Matcher>,
    /// Pipeline stages in order.
    pub stages: Vec<Stage>,
}

/// Matcher operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

/// A label matcher (`name op "value"`).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or pattern.
    pub value: String,
    /// Anchored regex for `=~`/`!~`.
    pub regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling the regex of `=~`/`!~` (anchored, as Prometheus).
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            MatchOp::Re | MatchOp::Nre => Some(
                Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| format!("invalid regex {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// True when `value` (empty when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Eq => value == self.value,
            MatchOp::Ne => value != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::Nre => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }
}

/// A line filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
}

/// Comparison of a numeric label filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` or `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl CmpOp {
    /// Applies the comparison.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// How a numeric label value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumKind {
    /// A plain number.
    Number,
    /// A duration (`1.5s`, `250ms`), in seconds.
    Duration,
    /// A byte size (`10KB`, `1MiB`), in bytes.
    Bytes,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// String matcher on a label.
    Str(Matcher),
    /// Numeric comparison on a label.
    Num {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Right-hand value (seconds for durations, bytes for sizes).
        value: f64,
        /// How the label is read.
        kind: NumKind,
    },
    /// Both hold.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// One holds.
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

/// A piece of a `line_format`/`label_format` template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// `{{.name}}` (empty when absent).
    Label(String),
    /// `{{__line__}}`
    Line,
    /// `{{__timestamp__}}` (RFC 3339)
    Timestamp,
}

/// A `pattern` parser element.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternPart {
    /// Literal text to find.
    Literal(String),
    /// `<name>` capture (`<_>` skips).
    Capture(Option<String>),
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Line filter; several values are alternatives (`|= "a" or "b"`).
    Line {
        /// Operator.
        op: FilterOp,
        /// Needles (Contains) or patterns.
        values: Vec<String>,
        /// Compiled patterns for the regex operators.
        regexes: Vec<Regex>,
    },
    /// `| json` with optional `name="path"` extractions.
    Json(Vec<(String, String)>),
    /// `| logfmt`
    Logfmt,
    /// `| pattern "…"`
    Pattern(Vec<PatternPart>),
    /// `| regexp "…"` with named groups.
    Regexp(Regex),
    /// `| unpack` (a JSON object whose keys become labels, `_entry` the line).
    Unpack,
    /// `| label filter`
    Filter(LabelFilter),
    /// `| line_format "…"`
    LineFormat(Vec<TemplatePart>),
    /// `| label_format a=b, c="{{…}}"`
    LabelFormat(Vec<(String, LabelFormatValue)>),
    /// `| drop a, b="v"`
    Drop(Vec<Matcher>),
    /// `| keep a, b="v"`
    Keep(Vec<Matcher>),
    /// `| decolorize`
    Decolorize,
}

/// The right-hand side of a `label_format` assignment.
#[derive(Debug, Clone)]
pub enum LabelFormatValue {
    /// Rename from this label.
    Rename(String),
    /// Render this template.
    Template(Vec<TemplatePart>),
}

/// A range aggregation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    /// `count_over_time`
    Count,
    /// `rate`
    Rate,
    /// `bytes_over_time`
    Bytes,
    /// `bytes_rate`
    BytesRate,
    /// `sum_over_time`
    Sum,
    /// `avg_over_time`
    Avg,
    /// `min_over_time`
    Min,
    /// `max_over_time`
    Max,
    /// `first_over_time`
    First,
    /// `last_over_time`
    Last,
    /// `stddev_over_time`
    Stddev,
    /// `quantile_over_time`
    Quantile,
    /// `absent_over_time`
    Absent,
}

impl RangeFn {
    /// True for the functions that need `| unwrap`.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeFn::Count | RangeFn::Rate | RangeFn::Bytes | RangeFn::BytesRate | RangeFn::Absent
        )
    }
}

/// A vector aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `stddev`
    Stddev,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
}

/// `by (…)` or `without (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// True for `without`.
    pub without: bool,
    /// Label names.
    pub labels: Vec<String>,
}

/// `| unwrap [conv(]label[)]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrap {
    /// Label to read.
    pub label: String,
    /// How to read it.
    pub kind: NumKind,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

/// A query returning samples.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `fn(log-expr [range] [offset])`
    Range {
        /// Function.
        func: RangeFn,
        /// Parameter (quantile).
        param: Option<f64>,
        /// The lines.
        log: LogExpr,
        /// `| unwrap`
        unwrap: Option<Unwrap>,
        /// Window, milliseconds.
        range_ms: i64,
        /// Offset, milliseconds.
        offset_ms: i64,
        /// `by`/`without` on unwrapped range functions.
        grouping: Option<Grouping>,
    },
    /// `op [by|without] ([param,] expr)`
    Agg {
        /// Operator.
        op: AggOp,
        /// `k` of topk/bottomk.
        param: Option<f64>,
        /// Grouping.
        grouping: Option<Grouping>,
        /// Operand.
        inner: Box<MetricExpr>,
    },
    /// `lhs op [bool] rhs`
    Binary {
        /// Operator.
        op: BinOp,
        /// Comparison returns 0/1 instead of filtering.
        bool_modifier: bool,
        /// Left operand.
        lhs: Box<MetricExpr>,
        /// Right operand.
        rhs: Box<MetricExpr>,
    },
    /// A number literal.
    Number(f64),
    /// `vector(n)`
    Vector(f64),
}
