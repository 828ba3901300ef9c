//! The TraceQL subset Grafana's search builder, TraceQL editor and Traces Drilldown
//! emit (PROTOCOLS.md §5.5): spanset filters on intrinsics and attributes, `&&` / `||`
//! inside and between spansets, structural `>`, `>>`, `<`, `<<`, `~`, and the pipeline
//! stages `count()`, `avg/min/max/sum(field)` comparisons, `select(…)`, `by(…)`.
//!
//! Attribute values are stored as text; a comparison gives them the type of the other
//! side (number, duration in nanoseconds, bool, string).

mod ast;
mod eval;
mod lex;
mod parse;

use std::collections::BTreeMap;

pub use ast::{
    Aggregate, Condition, Field, Intrinsic, MetricFunction, Operand, Query, Scope, SpansetExpr,
    Stage, Value,
};
pub use parse::parse_field;
use proto::SpanId;

use super::rows::SpanRef;
use eval::{TraceView, compare, number, text};
pub use eval::{status_name, typed};

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
