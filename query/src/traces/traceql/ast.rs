//! The TraceQL syntax tree.

use regex::Regex;

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `.x`: span first, then resource.
    Any,
}

/// A built-in field of every span or trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// `name`, `span:name`
    Name,
    /// `status`, `span:status`
    Status,
    /// `statusMessage`, `span:statusMessage`
    StatusMessage,
    /// `kind`, `span:kind`
    Kind,
    /// `duration`, `span:duration`
    Duration,
    /// `traceDuration`, `trace:duration`
    TraceDuration,
    /// `rootName`, `trace:rootName`
    RootName,
    /// `rootServiceName`, `trace:rootService`
    RootServiceName,
    /// `trace:id`
    TraceId,
    /// `span:id`
    SpanId,
    /// `span:parentID`
    ParentId,
    /// `event:name`
    EventName,
    /// `instrumentation:name`
    ScopeName,
    /// `instrumentation:version`
    ScopeVersion,
}

/// A field a condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A built-in field.
    Intrinsic(Intrinsic),
    /// An attribute.
    Attribute(Scope, String),
}

impl Field {
    /// The field as TraceQL writes it.
    pub fn display_name(&self) -> String {
        match self {
            Field::Attribute(Scope::Span, name) => format!("span.{name}"),
            Field::Attribute(Scope::Resource, name) => format!("resource.{name}"),
            Field::Attribute(Scope::Any, name) => format!(".{name}"),
            Field::Intrinsic(intrinsic) => format!("{intrinsic:?}")
                .chars()
                .enumerate()
                .map(|(i, c)| if i == 0 { c.to_ascii_lowercase() } else { c })
                .collect(),
        }
    }

    /// The attribute key (or intrinsic name) used in search output.
    pub fn output_key(&self) -> String {
        match self {
            Field::Attribute(_, name) => name.clone(),
            Field::Intrinsic(_) => self.display_name(),
        }
    }
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A duration in nanoseconds.
    Duration(i64),
    /// `true` / `false`.
    Bool(bool),
    /// `ok` (1), `error` (2), `unset` (0).
    Status(i32),
    /// `server`, `client`, `producer`, `consumer`, `internal`, `unspecified`.
    Kind(String),
    /// `nil`
    Nil,
    /// An attribute value as stored (text; its type decided by what it is compared to).
    Raw(String),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A span or trace field.
    Field(Field),
    /// A constant.
    Literal(Value),
}

/// A condition on one span (inside `{ … }`).
#[derive(Debug, Clone)]
pub enum Condition {
    /// Always true (`{}`, `{ true }`).
    True,
    /// Both.
    And(Box<Condition>, Box<Condition>),
    /// Either.
    Or(Box<Condition>, Box<Condition>),
    /// Negation.
    Not(Box<Condition>),
    /// `left op right`.
    Compare {
        /// Left operand.
        left: Operand,
        /// Operator.
        op: &'static str,
        /// Right operand.
        right: Operand,
        /// The compiled, fully anchored regex of `=~` / `!~`.
        regex: Option<Regex>,
    },
}

/// A spanset expression.
#[derive(Debug, Clone)]
pub enum SpansetExpr {
    /// `{ condition }`
    Filter(Condition),
    /// `a && b`: both non-empty, their union.
    And(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `a || b`: the union.
    Or(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `a op b` with op one of `>`, `>>`, `<`, `<<`, `~`: spans of b related to spans of a.
    Structural(&'static str, Box<SpansetExpr>, Box<SpansetExpr>),
}

/// An aggregate of a pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `count()`
    Count,
    /// `avg(f)`
    Avg,
    /// `min(f)`
    Min,
    /// `max(f)`
    Max,
    /// `sum(f)`
    Sum,
}

/// A pipeline stage after `|`.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `count() > 2`, `avg(duration) > 1s`.
    Filter {
        /// The aggregate.
        aggregate: Aggregate,
        /// Its field (none for count).
        field: Option<Field>,
        /// Comparison operator.
        op: &'static str,
        /// The threshold.
        value: Value,
    },
    /// `select(a, b)`: return these fields with each span.
    Select(Vec<Field>),
    /// `by(a)`: split spansets by the value of a field.
    By(Vec<Field>),
    /// `coalesce()`: merge spansets back into one.
    Coalesce,
    /// A metrics function (`rate()`, `count_over_time()`, `quantile_over_time(f, q…)`,
    /// `min/max/avg_over_time(f)`) with its `by (…)`; only valid last, and only for
    /// the metrics API.
    Metric {
        /// The function.
        function: MetricFunction,
        /// Its grouping fields.
        by: Vec<Field>,
    },
}

/// A TraceQL metrics function.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricFunction {
    /// Matching spans per second.
    Rate,
    /// Matching spans per step.
    CountOverTime,
    /// Quantiles of a field per step.
    Quantile(Field, Vec<f64>),
    /// Smallest value of a field per step.
    Min(Field),
    /// Largest value of a field per step.
    Max(Field),
    /// Mean of a field per step.
    Avg(Field),
}

/// A parsed TraceQL query.
#[derive(Debug, Clone)]
pub struct Query {
    /// The spanset expression.
    pub spansets: SpansetExpr,
    /// Pipeline stages, in order.
    pub stages: Vec<Stage>,
}
