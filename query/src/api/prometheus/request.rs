//! Request parameters of the Prometheus HTTP API: the query string merged with a
//! form-encoded POST body (Go `r.FormValue` semantics, PROTOCOLS.md §1.2), typed
//! accessors for times, durations and limits, and `match[]` selectors turned into
//! storage matchers.

use axum::extract::{FromRequest, Query, Request};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use promql_parser::label::{MatchOp as ParserOp, Matcher as ParserMatcher};
use promql_parser::parser::{Expr, VectorSelector};
use storage::series::{METRIC_NAME_LABEL, MatchOp, Matcher};

use super::ApiError;
use crate::api::params::{parse_duration, parse_time};
use crate::{Error, Result};

/// The earliest time of an open `start`, in Unix milliseconds (the same clamp as
/// [`parse_time`] applies to Prometheus' min-time sentinel).
pub const MIN_TIME_MS: i64 = i64::MIN / 2;
/// The latest time of an open `end`, in Unix milliseconds.
pub const MAX_TIME_MS: i64 = i64::MAX / 2;

/// The merged parameters of one request, in arrival order (query string first).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs = match Query::<Vec<(String, String)>>::try_from_uri(request.uri()) {
            Ok(Query(pairs)) => pairs,
            Err(e) => {
                return Err(ApiError::from(Error::BadRequest(format!(
                    "invalid query string: {e}"
                )))
                .into_response());
            }
        };
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if request.method() == Method::POST && is_form {
            let axum::Form(body) =
                axum::Form::<Vec<(String, String)>>::from_request(request, state)
                    .await
                    .map_err(|e| {
                        ApiError::from(Error::BadRequest(format!(
                            "invalid form body: {}",
                            e.body_text()
                        )))
                        .into_response()
                    })?;
            // Go's r.Form puts body values before query-string values.
            let mut merged = body;
            merged.append(&mut pairs);
            pairs = merged;
        }
        Ok(Params(pairs))
    }
}

impl Params {
    /// Builds parameters from pairs (tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Params(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Returns the first value of `name`, as `r.FormValue` does ("" when absent).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Returns every value of `name` (`match[]`).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Returns the time parameter `name`, or `default` when absent.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64> {
        match self.value(name) {
            Some(text) => parse_time(name, text),
            None => Ok(default),
        }
    }

    /// Returns the required time parameter `name`.
    pub fn time(&self, name: &str) -> Result<i64> {
        parse_time(name, self.value(name).unwrap_or(""))
    }

    /// Returns the optional duration parameter `name`, in milliseconds.
    pub fn duration(&self, name: &str) -> Result<Option<i64>> {
        self.value(name)
            .map(|text| parse_duration(name, text))
            .transpose()
    }

    /// Returns the `limit` parameter: 0 (absent) means unlimited; negative is refused.
    pub fn limit(&self) -> Result<usize> {
        let Some(text) = self.value("limit") else {
            return Ok(0);
        };
        let limit: i64 = text.trim().parse().map_err(|_| {
            Error::BadRequest(format!(
                "invalid parameter \"limit\": cannot parse \"{text}\" to a valid limit"
            ))
        })?;
        if limit < 0 {
            return Err(Error::BadRequest(
                "invalid parameter \"limit\": limit must be non-negative".to_string(),
            ));
        }
        Ok(usize::try_from(limit).unwrap_or(usize::MAX))
    }

    /// Returns `start` and `end` (defaults: Prometheus' min and max time), checking order.
    pub fn time_range(&self) -> Result<(i64, i64)> {
        let start = self.time_or("start", MIN_TIME_MS)?;
        let end = self.time_or("end", MAX_TIME_MS)?;
        if end < start {
            return Err(Error::BadRequest(
                "invalid parameter \"end\": end timestamp must not be before start time"
                    .to_string(),
            ));
        }
        Ok((start, end))
    }

    /// Parses every `match[]` into alternatives of storage matchers: one entry per
    /// selector (or per `or` branch of a selector).
    pub fn match_sets(&self) -> Result<Vec<Vec<Matcher>>> {
        let mut sets = Vec::new();
        for text in self.values("match[]") {
            let expr = crate::promql::parse_checked(text)
                .map_err(|e| Error::BadRequest(format!("invalid parameter \"match[]\": {e}")))?;
            let Expr::VectorSelector(selector) = expr else {
                return Err(Error::BadRequest(format!(
                    "invalid parameter \"match[]\": {text:?} is not a series selector"
                )));
            };
            sets.extend(selector_matcher_sets(&selector)?);
        }
        Ok(sets)
    }
}

/// Converts a selector into storage matcher sets (several when it uses `or`).
pub fn selector_matcher_sets(selector: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let groups: Vec<&Vec<ParserMatcher>> = if selector.matchers.or_matchers.is_empty() {
        vec![&selector.matchers.matchers]
    } else {
        selector.matchers.or_matchers.iter().collect()
    };
    let mut sets = Vec::with_capacity(groups.len());
    for group in groups {
        let mut set = Vec::with_capacity(group.len() + 1);
        if let Some(name) = &selector.name {
            set.push(storage_matcher(MatchOp::Equal, METRIC_NAME_LABEL, name)?);
        }
        for matcher in group {
            let op = match matcher.op {
                ParserOp::Equal => MatchOp::Equal,
                ParserOp::NotEqual => MatchOp::NotEqual,
                ParserOp::Re(_) => MatchOp::RegexMatch,
                ParserOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            set.push(storage_matcher(op, &matcher.name, &matcher.value)?);
        }
        if set.iter().all(|m| m.matches("")) {
            return Err(Error::BadRequest(
                "match[] must contain at least one non-empty matcher".to_string(),
            ));
        }
        sets.push(set);
    }
    Ok(sets)
}

fn storage_matcher(op: MatchOp, name: &str, value: &str) -> Result<Matcher> {
    Matcher::new(op, name, value).map_err(|e| Error::BadRequest(e.to_string()))
}

/// Collects every series selector of an expression (vector and matrix selectors,
/// wherever they sit), in order.
pub fn collect_selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::Aggregate(e) => {
            collect_selectors(&e.expr, out);
            if let Some(param) = &e.param {
                collect_selectors(param, out);
            }
        }
        Expr::Unary(e) => collect_selectors(&e.expr, out),
        Expr::Binary(e) => {
            collect_selectors(&e.lhs, out);
            collect_selectors(&e.rhs, out);
        }
        Expr::Paren(e) => collect_selectors(&e.expr, out),
        Expr::Subquery(e) => collect_selectors(&e.expr, out),
        Expr::VectorSelector(selector) => out.push(selector),
        Expr::MatrixSelector(matrix) => out.push(&matrix.vs),
        Expr::Call(call) => {
            for arg in &call.args.args {
                collect_selectors(arg, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Decodes a label name from a URL path segment: `U__`-prefixed names carry
/// `_XXXX_` hex code points (Grafana's `escapeForUtf8Support`), others are literal.
pub fn decode_label_name(segment: &str) -> Result<String> {
    let Some(rest) = segment.strip_prefix("U__") else {
        return Ok(segment.to_string());
    };
    let invalid = || Error::BadRequest(format!("invalid label name: {segment:?}"));
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let hex: String = chars.by_ref().take_while(|c| *c != '_').collect();
        if hex.is_empty() {
            out.push('_');
            continue;
        }
        let code = u32::from_str_radix(&hex, 16).map_err(|_| invalid())?;
        out.push(char::from_u32(code).ok_or_else(invalid)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_sets_from_selectors() {
        let params = Params::from_pairs(&[
            ("match[]", "up{job=~\"a|b\"}"),
            ("match[]", "{__name__=\"x\", env!=\"dev\"}"),
            ("start", "1"),
        ]);
        let sets = params.match_sets().unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0][0].name(), "__name__");
        assert!(sets[0][1].matches("a") && !sets[0][1].matches("ab"));
        assert_eq!(sets[1].len(), 2);
        let or = Params::from_pairs(&[("match[]", "up{a=\"1\" or b=\"2\"}")]);
        assert_eq!(or.match_sets().unwrap().len(), 2);
        for bad in ["rate(up[5m])", "{job=~\".*\"}", "up{", "1"] {
            let params = Params::from_pairs(&[("match[]", bad)]);
            assert!(
                matches!(params.match_sets(), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_times_and_limits() {
        let params = Params::from_pairs(&[
            ("time", ""),
            ("start", "10"),
            ("end", "5"),
            ("limit", "3"),
            ("step", "1m"),
        ]);
        assert_eq!(params.time_or("time", 42).unwrap(), 42);
        assert!(params.time_range().unwrap_err().to_string().contains("end"));
        assert_eq!(params.limit().unwrap(), 3);
        assert_eq!(params.duration("step").unwrap(), Some(60_000));
        assert_eq!(params.duration("timeout").unwrap(), None);
        let all = Params::default();
        assert_eq!(all.time_range().unwrap(), (MIN_TIME_MS, MAX_TIME_MS));
        assert_eq!(all.limit().unwrap(), 0);
        assert!(Params::from_pairs(&[("limit", "x")]).limit().is_err());
        assert!(Params::from_pairs(&[("limit", "-1")]).limit().is_err());
    }

    #[test]
    fn selectors_anywhere_in_an_expression() {
        let expr = promql_parser::parser::parse(
            "sum by (le) (rate(a_bucket{x=\"1\"}[5m])) / on() group_left count(b offset 1m) + max_over_time(c[1h:1m])",
        )
        .unwrap();
        let mut selectors = Vec::new();
        collect_selectors(&expr, &mut selectors);
        let names: Vec<_> = selectors.iter().map(|s| s.name.clone().unwrap()).collect();
        assert_eq!(names, ["a_bucket", "b", "c"]);
    }

    #[test]
    fn utf8_escaped_label_names() {
        assert_eq!(decode_label_name("job").unwrap(), "job");
        assert_eq!(decode_label_name("U__my_2e_label").unwrap(), "my.label");
        assert_eq!(decode_label_name("U__a__b").unwrap(), "a_b");
        assert!(decode_label_name("U__x_zz_").is_err());
    }
}
