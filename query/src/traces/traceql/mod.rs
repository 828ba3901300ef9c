//! The TraceQL subset Grafana's search builder, TraceQL editor and Traces Drilldown
//! emit (PROTOCOLS.md §5.5): spanset filters on intrinsics and attributes, `&&` / `||`
//! inside and between spansets, structural `>`, `>>`, `<`, `<<`, `~`, and the pipeline
//! stages `count()`, `avg/min/max/sum(field)` comparisons, `select(…)`, `by(…)`.
//!
//! Attribute values are stored as text; a comparison gives them the type of the other
//! side (number, duration in nanoseconds, bool, string).

mod lex;
mod parse;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use parse::{
    Aggregate, Condition, Field, Intrinsic, MetricFunction, Operand, Query, Scope, SpansetExpr,
    Stage, Value, parse_field,
};
use proto::SpanId;

use super::rows::SpanRef;

/// One span of a matched spanset, with the fields the query named.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSpan {
    /// The span id.
    pub span_id: SpanId,
    /// The span name.
    pub name: String,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// Duration, nanoseconds.
    pub duration_ns: i64,
    /// `(key, value)` of every field the query read or selected that the span has.
    pub attributes: Vec<(String, Value)>,
}

/// One spanset of a matched trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanset {
    /// The first `spss` matching spans.
    pub spans: Vec<MatchedSpan>,
    /// How many spans matched in all.
    pub matched: usize,
    /// The `by(…)` values of this spanset.
    pub group: Vec<(String, Value)>,
}

/// One span a metrics query counts: its `by (…)` labels, its start (Unix ns), and the
/// value of the function's field (durations in seconds).
pub(crate) type MetricPoint = (Labels, i64, Option<f64>);

/// `(name, value)` labels of a group or series.
pub type Labels = Vec<(String, Value)>;

/// A spanset during the pipeline: its `by(…)` labels and its members (span indices).
type Group = (Labels, Vec<usize>);

/// The spans of one trace with the links the structural operators follow.
struct TraceView<'s, 'a> {
    spans: &'s [SpanRef<'a>],
    parents: Vec<Option<usize>>,
    root: Option<usize>,
    duration_ns: i64,
}

impl<'s, 'a> TraceView<'s, 'a> {
    fn new(spans: &'s [SpanRef<'a>]) -> Self {
        let by_id: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id(), i))
            .collect();
        let parents = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_id()
                    .and_then(|p| by_id.get(&p).copied())
                    .filter(|p| *p != i)
            })
            .collect();
        let root = spans
            .iter()
            .position(|s| s.parent_id().is_none())
            .or_else(|| (0..spans.len()).min_by_key(|i| spans[*i].start_ns()));
        let start = spans.iter().map(SpanRef::start_ns).min().unwrap_or(0);
        let end = spans
            .iter()
            .map(|s| s.start_ns().saturating_add(s.duration_ns()))
            .max()
            .unwrap_or(0);
        TraceView {
            spans,
            parents,
            root,
            duration_ns: end.saturating_sub(start),
        }
    }

    fn field(&self, index: usize, field: &Field) -> Option<Value> {
        let span = &self.spans[index];
        let text = |s: &str| Some(Value::Str(s.to_string()));
        match field {
            Field::Attribute(Scope::Span, name) => span.attribute(name).map(raw),
            Field::Attribute(Scope::Resource, name) => span.resource_attribute(name).map(raw),
            Field::Attribute(Scope::Any, name) => span
                .attribute(name)
                .or_else(|| span.resource_attribute(name))
                .map(raw),
            Field::Intrinsic(intrinsic) => match intrinsic {
                Intrinsic::Name => text(span.name()),
                Intrinsic::Status => Some(Value::Status(span.status_code())),
                Intrinsic::StatusMessage => text(span.status_message().unwrap_or("")),
                Intrinsic::Kind => Some(Value::Kind(span.kind().to_string())),
                Intrinsic::Duration => Some(Value::Duration(span.duration_ns())),
                Intrinsic::TraceDuration => Some(Value::Duration(self.duration_ns)),
                Intrinsic::RootName => self.root.and_then(|r| text(self.spans[r].name())),
                Intrinsic::RootServiceName => self.root.and_then(|r| text(self.spans[r].service())),
                Intrinsic::TraceId => text(&span.trace_id().to_string()),
                Intrinsic::SpanId => text(&span.span_id().to_string()),
                Intrinsic::ParentId => span.parent_id().and_then(|p| text(&p.to_string())),
                Intrinsic::EventName => None,
                Intrinsic::ScopeName => span.attribute("otel.scope.name").map(raw),
                Intrinsic::ScopeVersion => span.attribute("otel.scope.version").map(raw),
            },
        }
    }

    fn operand(&self, index: usize, operand: &Operand) -> Option<Value> {
        match operand {
            Operand::Literal(value) => Some(value.clone()),
            Operand::Field(field) => self.field(index, field),
        }
    }

    fn event_names(&self, index: usize) -> Vec<Value> {
        let Some(events) = self.spans[index].events_json() else {
            return Vec::new();
        };
        serde_json::from_str::<Vec<serde_json::Value>>(events)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["name"].as_str().map(|n| Value::Str(n.to_string())))
            .collect()
    }

    fn condition(&self, index: usize, condition: &Condition) -> bool {
        match condition {
            Condition::True => true,
            Condition::And(a, b) => self.condition(index, a) && self.condition(index, b),
            Condition::Or(a, b) => self.condition(index, a) || self.condition(index, b),
            Condition::Not(inner) => !self.condition(index, inner),
            Condition::Compare {
                left,
                op,
                right,
                regex,
            } => {
                let is_events =
                    |o: &Operand| *o == Operand::Field(Field::Intrinsic(Intrinsic::EventName));
                if is_events(left) {
                    let right = self.operand(index, right);
                    return self
                        .event_names(index)
                        .into_iter()
                        .any(|name| compare(Some(&name), op, right.as_ref(), regex.as_ref()));
                }
                let left = self.operand(index, left);
                let right = self.operand(index, right);
                compare(left.as_ref(), op, right.as_ref(), regex.as_ref())
            }
        }
    }

    fn spanset(&self, expr: &SpansetExpr) -> BTreeSet<usize> {
        match expr {
            SpansetExpr::Filter(condition) => (0..self.spans.len())
                .filter(|i| self.condition(*i, condition))
                .collect(),
            SpansetExpr::Or(a, b) => {
                let mut set = self.spanset(a);
                set.extend(self.spanset(b));
                set
            }
            SpansetExpr::And(a, b) => {
                let (left, right) = (self.spanset(a), self.spanset(b));
                if left.is_empty() || right.is_empty() {
                    return BTreeSet::new();
                }
                left.union(&right).copied().collect()
            }
            SpansetExpr::Structural(op, a, b) => {
                let (left, right) = (self.spanset(a), self.spanset(b));
                right
                    .into_iter()
                    .filter(|r| self.related(op, &left, *r))
                    .collect()
            }
        }
    }

    /// Whether span `r` stands in relation `op` to some span of `left`.
    fn related(&self, op: &str, left: &BTreeSet<usize>, r: usize) -> bool {
        match op {
            ">" => self.parents[r].is_some_and(|p| left.contains(&p)),
            ">>" => {
                let mut current = self.parents[r];
                let mut steps = 0;
                while let Some(p) = current {
                    if left.contains(&p) {
                        return true;
                    }
                    steps += 1;
                    if steps > self.spans.len() {
                        return false;
                    }
                    current = self.parents[p];
                }
                false
            }
            "<" => left.iter().any(|l| self.parents[*l] == Some(r)),
            "<<" => left.iter().any(|l| {
                let mut current = self.parents[*l];
                let mut steps = 0;
                while let Some(p) = current {
                    if p == r {
                        return true;
                    }
                    steps += 1;
                    if steps > self.spans.len() {
                        return false;
                    }
                    current = self.parents[p];
                }
                false
            }),
            _ => {
                // `~`: siblings, same parent, another span.
                self.parents[r].is_some_and(|parent| {
                    left.iter()
                        .any(|l| *l != r && self.parents[*l] == Some(parent))
                })
            }
        }
    }
}

fn raw(text: &str) -> Value {
    Value::Raw(text.to_string())
}

/// A value as a number (durations in nanoseconds), when it is one.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) | Value::Duration(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Raw(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) | Value::Raw(s) | Value::Kind(s) => Some(s.clone()),
        Value::Int(i) | Value::Duration(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Status(code) => Some(status_name(*code).to_string()),
        Value::Nil => None,
    }
}

/// `ok`, `error` or `unset`.
pub fn status_name(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn ordering_holds(ordering: std::cmp::Ordering, op: &str) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "=" => ordering == Equal,
        "!=" => ordering != Equal,
        ">" => ordering == Greater,
        ">=" => ordering != Less,
        "<" => ordering == Less,
        "<=" => ordering != Greater,
        _ => false,
    }
}

fn compare(
    left: Option<&Value>,
    op: &str,
    right: Option<&Value>,
    regex: Option<&regex::Regex>,
) -> bool {
    if right == Some(&Value::Nil) {
        return match op {
            "=" => left.is_none(),
            "!=" => left.is_some(),
            _ => false,
        };
    }
    let (Some(left), Some(right)) = (left, right) else {
        return false;
    };
    if let Some(regex) = regex {
        let matched = text(left).is_some_and(|t| regex.is_match(&t));
        return if op == "=~" { matched } else { !matched };
    }
    let numeric = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_) | Value::Duration(_));
    if numeric(left) || numeric(right) {
        return match (number(left), number(right)) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ordering_holds(o, op)),
            _ => false,
        };
    }
    match (left, right) {
        (Value::Status(a), Value::Status(b)) => {
            ordering_holds(a.cmp(b), op) && matches!(op, "=" | "!=")
        }
        (Value::Bool(a), Value::Bool(b)) => {
            ordering_holds(a.cmp(b), op) && matches!(op, "=" | "!=")
        }
        (Value::Raw(s), Value::Bool(b)) | (Value::Bool(b), Value::Raw(s)) => {
            let same = s.eq_ignore_ascii_case(&b.to_string());
            match op {
                "=" => same,
                "!=" => !same,
                _ => false,
            }
        }
        _ => match (text(left), text(right)) {
            (Some(a), Some(b)) => ordering_holds(a.cmp(&b), op),
            _ => false,
        },
    }
}

/// A value as a search result attribute: typed from its text when it came from storage.
pub fn typed(value: Value) -> Value {
    match value {
        Value::Raw(text) => {
            if let Ok(int) = text.parse::<i64>()
                && int.to_string() == text
            {
                Value::Int(int)
            } else if let Ok(float) = text.parse::<f64>()
                && float.to_string() == text
                && float.is_finite()
            {
                Value::Float(float)
            } else if text == "true" || text == "false" {
                Value::Bool(text == "true")
            } else {
                Value::Str(text)
            }
        }
        other => other,
    }
}

fn collect_fields(condition: &Condition, out: &mut Vec<Field>) {
    match condition {
        Condition::True => {}
        Condition::And(a, b) | Condition::Or(a, b) => {
            collect_fields(a, out);
            collect_fields(b, out);
        }
        Condition::Not(inner) => collect_fields(inner, out),
        Condition::Compare { left, right, .. } => {
            for operand in [left, right] {
                if let Operand::Field(field) = operand
                    && !out.contains(field)
                {
                    out.push(field.clone());
                }
            }
        }
    }
}

fn spanset_fields(expr: &SpansetExpr, out: &mut Vec<Field>) {
    match expr {
        SpansetExpr::Filter(condition) => collect_fields(condition, out),
        SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) | SpansetExpr::Structural(_, a, b) => {
            spanset_fields(a, out);
            spanset_fields(b, out);
        }
    }
}

impl Query {
    /// Every field the query reads or selects (the attributes search results show).
    pub fn output_fields(&self) -> Vec<Field> {
        let mut fields = Vec::new();
        spanset_fields(&self.spansets, &mut fields);
        for stage in &self.stages {
            if let Stage::Select(selected) | Stage::By(selected) = stage {
                for field in selected {
                    if !fields.contains(field) {
                        fields.push(field.clone());
                    }
                }
            }
        }
        let always = Field::Attribute(Scope::Resource, "service.name".to_string());
        if !fields.contains(&always) {
            fields.push(always);
        }
        fields.retain(|f| {
            !matches!(
                f,
                Field::Intrinsic(Intrinsic::Name | Intrinsic::Duration | Intrinsic::EventName)
            )
        });
        fields
    }

    /// Runs the spanset expression and the pipeline on one trace.
    fn groups<'s, 'a>(&self, spans: &'s [SpanRef<'a>]) -> Option<(TraceView<'s, 'a>, Vec<Group>)> {
        let view = TraceView::new(spans);
        let first = view.spanset(&self.spansets);
        if first.is_empty() {
            return None;
        }
        let mut groups: Vec<Group> = vec![(Vec::new(), first.into_iter().collect())];
        for stage in &self.stages {
            groups = match stage {
                Stage::Select(_) | Stage::Metric { .. } => groups,
                Stage::Coalesce => {
                    let mut all: Vec<usize> = groups.into_iter().flat_map(|(_, g)| g).collect();
                    all.sort_unstable();
                    all.dedup();
                    vec![(Vec::new(), all)]
                }
                Stage::By(fields) => {
                    let mut split: BTreeMap<Vec<String>, Group> = BTreeMap::new();
                    for (labels, members) in groups {
                        for member in members {
                            let values: Vec<Option<Value>> =
                                fields.iter().map(|f| view.field(member, f)).collect();
                            let key: Vec<String> = values
                                .iter()
                                .map(|v| v.as_ref().and_then(text).unwrap_or_default())
                                .collect();
                            let entry = split.entry(key).or_insert_with(|| {
                                let mut labels = labels.clone();
                                for (field, value) in fields.iter().zip(&values) {
                                    labels.push((
                                        field.display_name(),
                                        value.clone().map(typed).unwrap_or(Value::Nil),
                                    ));
                                }
                                (labels, Vec::new())
                            });
                            entry.1.push(member);
                        }
                    }
                    split.into_values().collect()
                }
                Stage::Filter {
                    aggregate,
                    field,
                    op,
                    value,
                } => groups
                    .into_iter()
                    .filter(|(_, members)| {
                        let result = aggregate_of(&view, members, *aggregate, field.as_ref());
                        result
                            .is_some_and(|r| compare(Some(&Value::Float(r)), op, Some(value), None))
                    })
                    .collect(),
            };
            if groups.is_empty() {
                return None;
            }
        }
        Some((view, groups))
    }

    /// For a metrics query, every matching span of one trace as (labels, start, value of
    /// the function's field). Empty when the trace does not match.
    pub(crate) fn metric_points(&self, spans: &[SpanRef<'_>]) -> Vec<MetricPoint> {
        let Some(Stage::Metric { function, by }) = self.stages.last() else {
            return Vec::new();
        };
        let Some((view, groups)) = self.groups(spans) else {
            return Vec::new();
        };
        let field = match function {
            MetricFunction::Quantile(field, _)
            | MetricFunction::Min(field)
            | MetricFunction::Max(field)
            | MetricFunction::Avg(field) => Some(field),
            MetricFunction::Rate | MetricFunction::CountOverTime => None,
        };
        let mut members: Vec<usize> = groups.into_iter().flat_map(|(_, m)| m).collect();
        members.sort_unstable();
        members.dedup();
        members
            .into_iter()
            .map(|i| {
                let labels = by
                    .iter()
                    .map(|f| {
                        let value = view.field(i, f).map(output_value).unwrap_or(Value::Nil);
                        (f.display_name(), value)
                    })
                    .collect();
                let value = field.and_then(|f| {
                    let value = view.field(i, f)?;
                    // Durations are reported in seconds, as Tempo does.
                    match value {
                        Value::Duration(ns) => Some(ns as f64 / 1e9),
                        other => number(&other),
                    }
                });
                (labels, spans[i].start_ns(), value)
            })
            .collect()
    }

    /// Evaluates the query on the spans of one trace: the spansets left after the
    /// pipeline, or `None` when the trace does not match. Each spanset lists at most
    /// `spans_per_set` spans.
    pub(crate) fn evaluate(
        &self,
        spans: &[SpanRef<'_>],
        spans_per_set: usize,
    ) -> Option<Vec<Spanset>> {
        let (view, groups) = self.groups(spans)?;
        let fields = self.output_fields();
        let sets = groups
            .into_iter()
            .filter(|(_, members)| !members.is_empty())
            .map(|(group, members)| {
                let mut ordered = members.clone();
                ordered.sort_by_key(|i| std::cmp::Reverse(spans[*i].start_ns()));
                Spanset {
                    matched: members.len(),
                    group,
                    spans: ordered
                        .into_iter()
                        .take(spans_per_set)
                        .map(|i| {
                            let span = &spans[i];
                            MatchedSpan {
                                span_id: span.span_id(),
                                name: span.name().to_string(),
                                start_ns: span.start_ns(),
                                duration_ns: span.duration_ns(),
                                attributes: fields
                                    .iter()
                                    .filter_map(|f| {
                                        let value = view.field(i, f)?;
                                        Some((f.output_key(), output_value(value)))
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                }
            })
            .collect::<Vec<_>>();
        (!sets.is_empty()).then_some(sets)
    }
}

fn output_value(value: Value) -> Value {
    match value {
        Value::Status(code) => Value::Str(status_name(code).to_string()),
        Value::Kind(kind) => Value::Str(kind),
        other => typed(other),
    }
}

fn aggregate_of(
    view: &TraceView<'_, '_>,
    members: &[usize],
    aggregate: Aggregate,
    field: Option<&Field>,
) -> Option<f64> {
    if aggregate == Aggregate::Count {
        return Some(members.len() as f64);
    }
    let values: Vec<f64> = members
        .iter()
        .filter_map(|m| number(&view.field(*m, field?)?))
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(match aggregate {
        Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Count => values.len() as f64,
    })
}

#[cfg(test)]
mod tests;
