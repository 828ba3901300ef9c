//! TraceQL evaluation on the spans of one trace: field lookup, comparisons with
//! type coercion of stored text, spanset operators and structural relations.

use std::collections::{BTreeSet, HashMap};

use proto::SpanId;

use super::super::rows::SpanRef;
use super::{Condition, Field, Intrinsic, Operand, Scope, SpansetExpr, Value};

/// The spans of one trace with the links the structural operators follow.
pub(super) struct TraceView<'s, 'a> {
    spans: &'s [SpanRef<'a>],
    parents: Vec<Option<usize>>,
    root: Option<usize>,
    duration_ns: i64,
}

impl<'s, 'a> TraceView<'s, 'a> {
    pub(super) fn new(spans: &'s [SpanRef<'a>]) -> Self {
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

    pub(super) fn field(&self, index: usize, field: &Field) -> Option<Value> {
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

    pub(super) fn spanset(&self, expr: &SpansetExpr) -> BTreeSet<usize> {
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

pub(super) fn raw(text: &str) -> Value {
    Value::Raw(text.to_string())
}

/// A value as a number (durations in nanoseconds), when it is one.
pub(super) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) | Value::Duration(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Raw(text) => text.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
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

pub(super) fn compare(
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
