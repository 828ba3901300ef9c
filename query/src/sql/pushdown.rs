//! Filter pushdown: which `WHERE` conjuncts the storage scan can enforce, and the
//! scan request they add up to.
//!
//! Each conjunct DataFusion offers is classified once ([`classify`]); what the storage
//! read API enforces row for row is reported `Exact` (DataFusion drops its own filter),
//! what only narrows the rows is `Inexact` (DataFusion filters again), the rest is
//! `Unsupported`. [`ScanRequest::from_filters`] folds the pushed conjuncts into one
//! request per scan.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use proto::TraceId;
use storage::TextQuery;
use storage::series::{MatchOp, Matcher};

use super::schema::TableKind;
use super::udf::{MATCH_NAME, parse_text_query};

/// One conjunct the storage scan understands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pushed {
    /// An inclusive time range in Unix nanoseconds (either end may be open).
    Time {
        start_ns: Option<i64>,
        end_ns: Option<i64>,
    },
    /// The `service` column is one of these.
    Services(Vec<String>),
    /// The `trace_id` column equals this id.
    TraceId(TraceId),
    /// The log body satisfies this text query.
    Text(TextQuery),
    /// A metric series label equals a non-empty value (`__name__` for `metric`).
    Label { name: String, value: String },
}

/// What the storage scan of one table is asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScanRequest {
    /// Inclusive start, Unix nanoseconds.
    pub start_ns: i64,
    /// Inclusive end, Unix nanoseconds.
    pub end_ns: i64,
    /// Keep only these services (`None`: all).
    pub services: Option<Vec<String>>,
    /// Keep only rows of this trace.
    pub trace_id: Option<TraceId>,
    /// Every one of these must match the log body.
    pub text: Vec<TextQuery>,
    /// Series label equalities (metrics).
    pub labels: Vec<(String, String)>,
    /// The filters contradict each other: no row can match.
    pub empty: bool,
}

impl Default for ScanRequest {
    fn default() -> Self {
        ScanRequest {
            start_ns: i64::MIN,
            end_ns: i64::MAX,
            services: None,
            trace_id: None,
            text: Vec::new(),
            labels: Vec::new(),
            empty: false,
        }
    }
}

impl ScanRequest {
    /// Folds every pushable conjunct of `filters` into one request; the others are
    /// left to DataFusion (they were reported `Unsupported`).
    pub fn from_filters(table: TableKind, filters: &[Expr]) -> ScanRequest {
        let mut request = ScanRequest::default();
        for filter in filters {
            if let Some((pushed, _)) = classify(table, filter) {
                request.add(pushed);
            }
        }
        if request.start_ns > request.end_ns {
            request.empty = true;
        }
        request
    }

    fn add(&mut self, pushed: Pushed) {
        match pushed {
            Pushed::Time { start_ns, end_ns } => {
                self.start_ns = self.start_ns.max(start_ns.unwrap_or(i64::MIN));
                self.end_ns = self.end_ns.min(end_ns.unwrap_or(i64::MAX));
            }
            Pushed::Services(services) => {
                let kept: Vec<String> = match self.services.take() {
                    None => services,
                    Some(current) => current
                        .into_iter()
                        .filter(|s| services.contains(s))
                        .collect(),
                };
                self.empty |= kept.is_empty();
                self.services = Some(kept);
            }
            Pushed::TraceId(id) => match self.trace_id {
                Some(current) if current != id => self.empty = true,
                _ => self.trace_id = Some(id),
            },
            Pushed::Text(query) => self.text.push(query),
            Pushed::Label { name, value } => self.labels.push((name, value)),
        }
    }

    /// The text conjuncts as one storage query.
    pub fn text_query(&self) -> Option<TextQuery> {
        match self.text.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(TextQuery::And(many.to_vec())),
        }
    }

    /// The label conjuncts as series matchers.
    pub fn matchers(&self) -> Vec<Matcher> {
        self.labels
            .iter()
            .filter_map(|(name, value)| Matcher::new(MatchOp::Equal, name, value).ok())
            .collect()
    }

    /// The time range in milliseconds, rounded inwards (samples have whole-ms times).
    pub fn range_ms(&self) -> (i64, i64) {
        (
            self.start_ns.div_euclid(1_000_000)
                + i64::from(self.start_ns.rem_euclid(1_000_000) != 0),
            self.end_ns.div_euclid(1_000_000),
        )
    }
}

/// Returns how `table` handles the conjunct `filter`.
pub(crate) fn support(table: TableKind, filter: &Expr) -> TableProviderFilterPushDown {
    match classify(table, filter) {
        Some((_, exact)) => exact,
        None => TableProviderFilterPushDown::Unsupported,
    }
}

/// Recognises a conjunct the storage scan of `table` can enforce.
pub(crate) fn classify(
    table: TableKind,
    filter: &Expr,
) -> Option<(Pushed, TableProviderFilterPushDown)> {
    use TableProviderFilterPushDown::Exact;
    if let Some(pushed) = time_bound(filter, table.time_column()) {
        return Some((pushed, Exact));
    }
    match (table, filter) {
        (_, Expr::BinaryExpr(BinaryExpr { left, op, right })) if *op == Operator::Eq => {
            let (other, value) = equals_string(left, right)?;
            let column = column_name(other).unwrap_or("");
            match (table, column) {
                (TableKind::Logs | TableKind::Spans, "service") => {
                    Some((Pushed::Services(vec![value.to_string()]), Exact))
                }
                (TableKind::Logs | TableKind::Spans, "trace_id") => {
                    lowercase_trace_id(value).map(|id| (Pushed::TraceId(id), Exact))
                }
                (TableKind::Metrics, "metric") if !value.is_empty() => Some((
                    Pushed::Label {
                        name: storage::series::METRIC_NAME_LABEL.to_string(),
                        value: value.to_string(),
                    },
                    Exact,
                )),
                (TableKind::Metrics, "service" | "instance" | "job") if !value.is_empty() => {
                    Some((
                        Pushed::Label {
                            name: column.to_string(),
                            value: value.to_string(),
                        },
                        Exact,
                    ))
                }
                (TableKind::Metrics, _) => {
                    let name = map_key(other, "labels")?;
                    (!value.is_empty() && name != storage::series::METRIC_NAME_LABEL).then(|| {
                        (
                            Pushed::Label {
                                name,
                                value: value.to_string(),
                            },
                            Exact,
                        )
                    })
                }
                _ => None,
            }
        }
        (
            TableKind::Logs,
            Expr::BinaryExpr(BinaryExpr {
                op: Operator::Or, ..
            }),
        ) => {
            let mut services = Vec::new();
            collect_service_disjuncts(filter, &mut services)?;
            Some((Pushed::Services(services), Exact))
        }
        (TableKind::Logs, Expr::InList(list)) if !list.negated => {
            (column_name(&list.expr)? == "service").then_some(())?;
            let values: Option<Vec<String>> = list
                .list
                .iter()
                .map(|v| string_literal(v).map(str::to_string))
                .collect();
            Some((Pushed::Services(values?), Exact))
        }
        (TableKind::Logs, Expr::ScalarFunction(function)) if function.name() == MATCH_NAME => {
            let [body, query] = function.args.as_slice() else {
                return None;
            };
            (column_name(body)? == "body").then_some(())?;
            let query = parse_text_query(string_literal(query)?).ok()?;
            Some((Pushed::Text(query), Exact))
        }
        (TableKind::Logs, Expr::Like(like))
            if !like.negated && !like.case_insensitive && like.escape_char.is_none() =>
        {
            (column_name(&like.expr)? == "body").then_some(())?;
            like_to_text(string_literal(&like.pattern)?)
        }
        _ => None,
    }
}

/// `service = 'a' OR service = 'b' OR …` (how DataFusion rewrites a short `IN` list).
fn collect_service_disjuncts(expr: &Expr, services: &mut Vec<String>) -> Option<()> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    match op {
        Operator::Or => {
            collect_service_disjuncts(left, services)?;
            collect_service_disjuncts(right, services)
        }
        Operator::Eq => {
            let (other, value) = equals_string(left, right)?;
            (column_name(other)? == "service").then_some(())?;
            services.push(value.to_string());
            Some(())
        }
        _ => None,
    }
}

/// `body LIKE '%a%'` is exactly "contains a"; `'%a%b%'` needs both, in order, so the
/// storage query (both, any order) only narrows the rows.
fn like_to_text(pattern: &str) -> Option<(Pushed, TableProviderFilterPushDown)> {
    let inner = pattern.strip_prefix('%')?.strip_suffix('%')?;
    if inner.contains(['_', '\\']) {
        return None;
    }
    let parts: Vec<&str> = inner.split('%').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [] => None,
        [one] => Some((
            Pushed::Text(TextQuery::Contains(one.to_string())),
            TableProviderFilterPushDown::Exact,
        )),
        many => Some((
            Pushed::Text(TextQuery::And(
                many.iter()
                    .map(|p| TextQuery::Contains(p.to_string()))
                    .collect(),
            )),
            TableProviderFilterPushDown::Inexact,
        )),
    }
}

/// Trace ids are shown as lowercase hex; only that spelling can equal a row's value.
fn lowercase_trace_id(value: &str) -> Option<TraceId> {
    if value.len() != 32 || value.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    value.parse().ok()
}

/// `time_column <op> literal`, `literal <op> time_column` or `time_column BETWEEN a AND b`.
fn time_bound(filter: &Expr, time_column: &str) -> Option<Pushed> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, literal) = if is_time_column(left, time_column) {
                (*op, right)
            } else if is_time_column(right, time_column) {
                (op.swap()?, left)
            } else {
                return None;
            };
            let at = timestamp_ns(literal)?;
            let (start_ns, end_ns) = match op {
                Operator::Eq => (Some(at), Some(at)),
                Operator::Gt => (Some(at.checked_add(1)?), None),
                Operator::GtEq => (Some(at), None),
                Operator::Lt => (None, Some(at.checked_sub(1)?)),
                Operator::LtEq => (None, Some(at)),
                _ => return None,
            };
            Some(Pushed::Time { start_ns, end_ns })
        }
        Expr::Between(between) if !between.negated => {
            is_time_column(&between.expr, time_column).then_some(())?;
            Some(Pushed::Time {
                start_ns: Some(timestamp_ns(&between.low)?),
                end_ns: Some(timestamp_ns(&between.high)?),
            })
        }
        _ => None,
    }
}

/// The time column itself, or a cast of it to another timestamp unit (exact and
/// monotonic, which DataFusion inserts when units differ).
fn is_time_column(expr: &Expr, time_column: &str) -> bool {
    match expr {
        Expr::Column(column) => column.name == time_column,
        Expr::Cast(cast)
            if matches!(
                cast.field.data_type(),
                arrow::datatypes::DataType::Timestamp(..)
            ) =>
        {
            is_time_column(&cast.expr, time_column)
        }
        _ => false,
    }
}

fn timestamp_ns(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(column) => Some(column.name.as_str()),
        _ => None,
    }
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.as_str()),
        Expr::Cast(cast) => string_literal(&cast.expr),
        _ => None,
    }
}

/// `expr = 'text'` in either order: the other side and the text.
fn equals_string<'a>(left: &'a Expr, right: &'a Expr) -> Option<(&'a Expr, &'a str)> {
    if let Some(value) = string_literal(right) {
        return Some((left, value));
    }
    Some((right, string_literal(left)?))
}

/// `map_column['key']`, however DataFusion spells the access: the key.
fn map_key(expr: &Expr, map_column: &str) -> Option<String> {
    let Expr::ScalarFunction(function) = expr else {
        return None;
    };
    if !matches!(function.name(), "get_field" | "map_extract") {
        return None;
    }
    let [map, key] = function.args.as_slice() else {
        return None;
    };
    (column_name(map)? == map_column).then_some(())?;
    string_literal(key).map(str::to_string)
}

#[cfg(test)]
#[path = "pushdown_tests.rs"]
mod tests;
