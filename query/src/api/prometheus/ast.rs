//! `GET|POST /api/v1/parse_query`: a query's syntax tree as JSON, in the shape Prometheus
//! 3 answers (its API docs: "Parsing a PromQL expressions into a abstract syntax tree").
//!
//! Each node is an object with a `type` (`aggregation`, `binaryExpr`, `call`,
//! `matrixSelector`, `subquery`, `numberLiteral`, `parenExpr`, `stringLiteral`,
//! `unaryExpr`, `vectorSelector`). Durations and offsets are milliseconds, `@` times
//! are `timestamp` (milliseconds) or `startOrEnd` (`"start"`/`"end"`), matchers list the
//! metric name last as `__name__="…"`, number values are strings as Go's
//! `FormatFloat(v, 'f', -1, 64)` writes them, and the fields newer Prometheus versions
//! add for experimental syntax (duration expressions, `anchored`/`smoothed`, `fill`)
//! are present with their empty values when the query does not use them.

use std::time::{Duration, UNIX_EPOCH};

use axum::response::Response;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{Value as Json, json};

use super::request::Params;
use super::{ApiError, success};
use crate::Error;

/// `GET|POST /api/v1/parse_query`: the syntax tree of `query`, or `bad_data`.
pub async fn parse_query(params: Params) -> Result<Response, ApiError> {
    let query = params.value("query").unwrap_or("");
    let expr = crate::promql::parse_checked(query)
        .map_err(|e| Error::BadRequest(format!("invalid parameter \"query\": {e}")))?;
    Ok(success(&translate(&expr).to_string(), &[], &[]))
}

/// The JSON node of `expr`. Recursion is bounded by `parse_checked`'s nesting limit.
fn translate(expr: &Expr) -> Json {
    match expr {
        Expr::Aggregate(aggregate) => {
            let (grouping, without) = match &aggregate.modifier {
                Some(LabelModifier::Include(labels)) => (labels.labels.clone(), false),
                Some(LabelModifier::Exclude(labels)) => (labels.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": aggregate.op.to_string(),
                "expr": translate(&aggregate.expr),
                "param": aggregate.param.as_deref().map_or(Json::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(binary) => json!({
            "type": "binaryExpr",
            "op": binary.op.to_string(),
            "lhs": translate(&binary.lhs),
            "rhs": translate(&binary.rhs),
            "matching": matching(binary),
            "bool": binary.modifier.as_ref().is_some_and(|m| m.return_bool),
        }),
        Expr::Call(call) => json!({
            "type": "call",
            "func": {
                "name": call.func.name,
                "argTypes": call.func.arg_types.iter().map(value_type).collect::<Vec<_>>(),
                "variadic": call.func.variadic,
                "returnType": value_type(&call.func.return_type),
            },
            "args": call.args.args.iter().map(|a| translate(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(matrix) => {
            let mut node = selector(&matrix.vs, "matrixSelector");
            node["range"] = json!(millis(matrix.range));
            node["rangeExpr"] = Json::Null;
            node
        }
        Expr::Subquery(subquery) => {
            let (timestamp, start_or_end) = at(subquery.at.as_ref());
            json!({
                "type": "subquery",
                "expr": translate(&subquery.expr),
                "range": millis(subquery.range),
                "rangeExpr": Json::Null,
                "offset": offset(subquery.offset.as_ref()),
                "offsetExpr": Json::Null,
                "step": subquery.step.map_or(0, millis),
                "stepExpr": Json::Null,
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::NumberLiteral(number) => json!({
            "type": "numberLiteral",
            "val": go_float_f(number.val),
        }),
        Expr::Paren(paren) => json!({
            "type": "parenExpr",
            "expr": translate(&paren.expr),
        }),
        Expr::StringLiteral(string) => json!({
            "type": "stringLiteral",
            "val": string.val,
        }),
        Expr::Unary(unary) => json!({
            "type": "unaryExpr",
            "op": "-",
            "expr": translate(&unary.expr),
        }),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
        // Extensions are not produced by the parser for PromQL text.
        Expr::Extension(_) => Json::Null,
    }
}

/// The fields a vector selector and a matrix selector share.
fn selector(vs: &VectorSelector, kind: &str) -> Json {
    let mut matchers: Vec<Json> = vs.matchers.matchers.iter().map(matcher).collect();
    if let Some(name) = &vs.name
        && !vs.matchers.matchers.iter().any(|m| m.name == "__name__")
    {
        matchers.push(json!({"name": "__name__", "type": "=", "value": name}));
    }
    let (timestamp, start_or_end) = at(vs.at.as_ref());
    json!({
        "type": kind,
        "name": vs.name.as_deref().unwrap_or(""),
        "offset": offset(vs.offset.as_ref()),
        "offsetExpr": Json::Null,
        "matchers": matchers,
        "timestamp": timestamp,
        "startOrEnd": start_or_end,
        "anchored": false,
        "smoothed": false,
    })
}

fn matcher(m: &Matcher) -> Json {
    let op = match &m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Re(_) => "=~",
        MatchOp::NotRe(_) => "!~",
    };
    json!({"name": m.name, "type": op, "value": m.value})
}

/// `matching` of a binary expression: only between two instant vectors, as Prometheus
/// drops it when a side is a scalar; set operators are many-to-many.
fn matching(binary: &BinaryExpr) -> Json {
    if binary.lhs.value_type() != ValueType::Vector || binary.rhs.value_type() != ValueType::Vector
    {
        return Json::Null;
    }
    let modifier = binary.modifier.as_ref();
    let (card, include) = if binary.op.is_set_operator() {
        ("many-to-many", Vec::new())
    } else {
        match modifier.map(|m| &m.card) {
            Some(VectorMatchCardinality::ManyToOne(labels)) => {
                ("many-to-one", labels.labels.clone())
            }
            Some(VectorMatchCardinality::OneToMany(labels)) => {
                ("one-to-many", labels.labels.clone())
            }
            Some(VectorMatchCardinality::ManyToMany) => ("many-to-many", Vec::new()),
            Some(VectorMatchCardinality::OneToOne) | None => ("one-to-one", Vec::new()),
        }
    };
    let (labels, on) = match modifier.and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(labels)) => (labels.labels.clone(), true),
        Some(LabelModifier::Exclude(labels)) => (labels.labels.clone(), false),
        None => (Vec::new(), false),
    };
    let fill = |v: Option<f64>| v.filter(|v| v.is_finite()).map_or(Json::Null, |v| json!(v));
    let fill_values = modifier.map(|m| &m.fill_values);
    json!({
        "card": card,
        "labels": labels,
        "on": on,
        "include": include,
        "fillValues": {
            "lhs": fill(fill_values.and_then(|f| f.lhs)),
            "rhs": fill(fill_values.and_then(|f| f.rhs)),
        },
    })
}

fn value_type(t: &ValueType) -> String {
    t.to_string()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset(offset: Option<&Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
        None => 0,
    }
}

/// `timestamp` and `startOrEnd` of an `@` modifier.
fn at(at: Option<&AtModifier>) -> (Json, Json) {
    match at {
        None => (Json::Null, Json::Null),
        Some(AtModifier::Start) => (Json::Null, json!("start")),
        Some(AtModifier::End) => (Json::Null, json!("end")),
        Some(AtModifier::At(time)) => {
            let ms = match time.duration_since(UNIX_EPOCH) {
                Ok(after) => millis(after),
                Err(before) => -millis(before.duration()),
            };
            (json!(ms), Json::Null)
        }
    }
}

/// A float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it: the shortest
/// digits that read back to `v`, in positional notation (`1e+100` is a 1 and 100 zeros).
fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // The decimal point sits after `point` digits.
    let point = exponent + 1;
    let mut out = String::from(sign);
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(query: &str) -> Json {
        translate(&promql_parser::parser::parse(query).unwrap())
    }

    #[test]
    fn binary_expression_of_two_selectors() {
        let node = ast("foo/bar");
        assert_eq!(node["type"], "binaryExpr");
        assert_eq!(node["op"], "/");
        assert_eq!(node["bool"], false);
        assert_eq!(node["matching"]["card"], "one-to-one");
        assert_eq!(node["matching"]["labels"], json!([]));
        assert_eq!(node["matching"]["on"], false);
        assert_eq!(node["matching"]["include"], json!([]));
        let lhs = &node["lhs"];
        assert_eq!(lhs["type"], "vectorSelector");
        assert_eq!(lhs["name"], "foo");
        assert_eq!(lhs["offset"], 0);
        assert_eq!(lhs["timestamp"], Json::Null);
        assert_eq!(lhs["startOrEnd"], Json::Null);
        assert_eq!(
            lhs["matchers"],
            json!([{"name": "__name__", "type": "=", "value": "foo"}])
        );
    }

    #[test]
    fn modifiers_matching_and_grouping() {
        let node = ast(
            r#"sum by (job) (rate(http{code=~"5.."}[5m] offset -1m @ 100)) > on (job) group_left (team) info"#,
        );
        assert_eq!(node["matching"]["card"], "many-to-one");
        assert_eq!(node["matching"]["on"], true);
        assert_eq!(node["matching"]["labels"], json!(["job"]));
        assert_eq!(node["matching"]["include"], json!(["team"]));
        let sum = &node["lhs"];
        assert_eq!(sum["type"], "aggregation");
        assert_eq!(sum["op"], "sum");
        assert_eq!(sum["grouping"], json!(["job"]));
        assert_eq!(sum["without"], false);
        assert_eq!(sum["param"], Json::Null);
        let call = &sum["expr"];
        assert_eq!(call["func"]["name"], "rate");
        assert_eq!(call["func"]["argTypes"], json!(["matrix"]));
        assert_eq!(call["func"]["returnType"], "vector");
        let matrix = &call["args"][0];
        assert_eq!(matrix["type"], "matrixSelector");
        assert_eq!(matrix["range"], 300_000);
        assert_eq!(matrix["offset"], -60_000);
        assert_eq!(matrix["timestamp"], 100_000);
        assert_eq!(
            matrix["matchers"],
            json!([
                {"name": "code", "type": "=~", "value": "5.."},
                {"name": "__name__", "type": "=", "value": "http"},
            ])
        );
    }

    #[test]
    fn scalars_subqueries_and_set_operators() {
        let node = ast("foo * 2");
        assert_eq!(node["matching"], Json::Null);
        assert_eq!(node["rhs"], json!({"type": "numberLiteral", "val": "2"}));
        assert_eq!(ast("a and on (x) b")["matching"]["card"], "many-to-many");
        let subquery = ast("max_over_time((-foo)[1h:5m] @ start())");
        let inner = &subquery["args"][0];
        assert_eq!(inner["type"], "subquery");
        assert_eq!(inner["range"], 3_600_000);
        assert_eq!(inner["step"], 300_000);
        assert_eq!(inner["startOrEnd"], "start");
        assert_eq!(inner["expr"]["type"], "parenExpr");
        assert_eq!(inner["expr"]["expr"]["type"], "unaryExpr");
        let topk = ast(r#"topk(3, label_replace(up, "a", "$1", "b", "(.*)"))"#);
        assert_eq!(topk["param"]["val"], "3");
        assert_eq!(
            topk["expr"]["args"][1],
            json!({"type": "stringLiteral", "val": "a"})
        );
    }

    #[test]
    fn floats_are_written_as_go_does() {
        assert_eq!(go_float_f(1e100), format!("1{}", "0".repeat(100)));
        assert_eq!(go_float_f(0.000_001_5), "0.0000015");
        assert_eq!(go_float_f(-2.5), "-2.5");
        assert_eq!(go_float_f(0.0), "0");
        assert_eq!(go_float_f(123.0), "123");
        assert_eq!(go_float_f(f64::NEG_INFINITY), "-Inf");
    }
}
