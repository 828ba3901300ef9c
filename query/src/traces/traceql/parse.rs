//! TraceQL parser: tokens → [`Query`].

use regex::Regex;

use super::ast::{
    Aggregate, Condition, Field, Intrinsic, MetricFunction, Operand, Query, Scope, SpansetExpr,
    Stage, Value,
};
use super::lex::{Token, tokenize};
use crate::{Error, Result};

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(format!("invalid TraceQL query: {}", message.into()))
}

/// Parses an identifier as a field.
pub fn parse_field(name: &str) -> Result<Field> {
    let intrinsic = match name {
        "name" | "span:name" => Intrinsic::Name,
        "status" | "span:status" => Intrinsic::Status,
        "statusMessage" | "span:statusMessage" => Intrinsic::StatusMessage,
        "kind" | "span:kind" => Intrinsic::Kind,
        "duration" | "span:duration" => Intrinsic::Duration,
        "traceDuration" | "trace:duration" => Intrinsic::TraceDuration,
        "rootName" | "trace:rootName" => Intrinsic::RootName,
        "rootServiceName" | "trace:rootService" => Intrinsic::RootServiceName,
        "trace:id" => Intrinsic::TraceId,
        "span:id" => Intrinsic::SpanId,
        "span:parentID" => Intrinsic::ParentId,
        "event:name" => Intrinsic::EventName,
        "instrumentation:name" => Intrinsic::ScopeName,
        "instrumentation:version" => Intrinsic::ScopeVersion,
        _ => {
            let (scope, rest) = if let Some(rest) = name.strip_prefix("span.") {
                (Scope::Span, rest)
            } else if let Some(rest) = name.strip_prefix("resource.") {
                (Scope::Resource, rest)
            } else if let Some(rest) = name.strip_prefix('.') {
                (Scope::Any, rest)
            } else {
                return Err(bad(format!(
                    "unknown field {name:?} (attributes need a scope: span., resource. or .)"
                )));
            };
            if rest.is_empty() {
                return Err(bad(format!("empty attribute name in {name:?}")));
            }
            return Ok(Field::Attribute(scope, rest.to_string()));
        }
    };
    Ok(Field::Intrinsic(intrinsic))
}

fn keyword(name: &str) -> Option<Value> {
    Some(match name {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "nil" => Value::Nil,
        "ok" => Value::Status(1),
        "error" => Value::Status(2),
        "unset" => Value::Status(0),
        "server" | "client" | "producer" | "consumer" | "internal" | "unspecified" => {
            Value::Kind(name.to_string())
        }
        _ => return None,
    })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, wanted: Token) -> Result<()> {
        match self.next() {
            Some(token) if token == wanted => Ok(()),
            Some(token) => Err(bad(format!("expected {wanted:?}, found {token:?}"))),
            None => Err(bad(format!("expected {wanted:?}, found the end"))),
        }
    }

    fn spanset_or(&mut self) -> Result<SpansetExpr> {
        let mut left = self.spanset_and()?;
        while self.peek() == Some(&Token::Or) {
            self.next();
            left = SpansetExpr::Or(Box::new(left), Box::new(self.spanset_and()?));
        }
        Ok(left)
    }

    fn spanset_and(&mut self) -> Result<SpansetExpr> {
        let mut left = self.structural()?;
        while self.peek() == Some(&Token::And) {
            self.next();
            left = SpansetExpr::And(Box::new(left), Box::new(self.structural()?));
        }
        Ok(left)
    }

    fn structural(&mut self) -> Result<SpansetExpr> {
        let mut left = self.spanset_primary()?;
        while let Some(Token::Op(op @ (">" | ">>" | "<" | "<<" | "~"))) = self.peek() {
            let op = *op;
            self.next();
            left = SpansetExpr::Structural(op, Box::new(left), Box::new(self.spanset_primary()?));
        }
        Ok(left)
    }

    fn spanset_primary(&mut self) -> Result<SpansetExpr> {
        match self.next() {
            Some(Token::OpenBrace) => {
                if self.peek() == Some(&Token::CloseBrace) {
                    self.next();
                    return Ok(SpansetExpr::Filter(Condition::True));
                }
                let condition = self.condition_or()?;
                self.expect(Token::CloseBrace)?;
                Ok(SpansetExpr::Filter(condition))
            }
            Some(Token::OpenParen) => {
                let inner = self.spanset_or()?;
                self.expect(Token::CloseParen)?;
                Ok(inner)
            }
            other => Err(bad(format!("expected a spanset {{ … }}, found {other:?}"))),
        }
    }

    fn condition_or(&mut self) -> Result<Condition> {
        let mut left = self.condition_and()?;
        while self.peek() == Some(&Token::Or) {
            self.next();
            left = Condition::Or(Box::new(left), Box::new(self.condition_and()?));
        }
        Ok(left)
    }

    fn condition_and(&mut self) -> Result<Condition> {
        let mut left = self.condition_unary()?;
        while self.peek() == Some(&Token::And) {
            self.next();
            left = Condition::And(Box::new(left), Box::new(self.condition_unary()?));
        }
        Ok(left)
    }

    fn condition_unary(&mut self) -> Result<Condition> {
        match self.peek() {
            Some(Token::Not) => {
                self.next();
                Ok(Condition::Not(Box::new(self.condition_unary()?)))
            }
            Some(Token::OpenParen) => {
                self.next();
                let inner = self.condition_or()?;
                self.expect(Token::CloseParen)?;
                Ok(inner)
            }
            _ => self.comparison(),
        }
    }

    fn operand(&mut self) -> Result<Operand> {
        match self.next() {
            Some(Token::Str(text)) => Ok(Operand::Literal(Value::Str(text))),
            Some(Token::Duration(ns)) => Ok(Operand::Literal(Value::Duration(ns))),
            Some(Token::Number(number)) => Ok(Operand::Literal(parse_number(&number)?)),
            Some(Token::Ident(name)) => match keyword(&name) {
                Some(value) => Ok(Operand::Literal(value)),
                None => Ok(Operand::Field(parse_field(&name)?)),
            },
            other => Err(bad(format!("expected a field or a value, found {other:?}"))),
        }
    }

    fn comparison(&mut self) -> Result<Condition> {
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Op(op @ ("=" | "!=" | ">" | ">=" | "<" | "<=" | "=~" | "!~"))) => *op,
            _ => {
                return match left {
                    Operand::Literal(Value::Bool(true)) => Ok(Condition::True),
                    Operand::Literal(Value::Bool(false)) => {
                        Ok(Condition::Not(Box::new(Condition::True)))
                    }
                    Operand::Field(field) => Ok(Condition::Compare {
                        left: Operand::Field(field),
                        op: "=",
                        right: Operand::Literal(Value::Bool(true)),
                        regex: None,
                    }),
                    other => Err(bad(format!("expected an operator after {other:?}"))),
                };
            }
        };
        self.next();
        let right = self.operand()?;
        let regex = if matches!(op, "=~" | "!~") {
            let Operand::Literal(Value::Str(pattern)) = &right else {
                return Err(bad(format!("{op} needs a string pattern on its right")));
            };
            Some(
                Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| bad(format!("bad regex {pattern:?}: {e}")))?,
            )
        } else {
            None
        };
        Ok(Condition::Compare {
            left,
            op,
            right,
            regex,
        })
    }

    fn fields(&mut self) -> Result<Vec<Field>> {
        self.expect(Token::OpenParen)?;
        let mut fields = Vec::new();
        loop {
            match self.next() {
                Some(Token::Ident(name)) => fields.push(parse_field(&name)?),
                Some(Token::CloseParen) if fields.is_empty() => return Ok(fields),
                other => return Err(bad(format!("expected a field, found {other:?}"))),
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::CloseParen) => return Ok(fields),
                other => return Err(bad(format!("expected , or ), found {other:?}"))),
            }
        }
    }

    fn stage(&mut self) -> Result<Stage> {
        let Some(Token::Ident(name)) = self.next() else {
            return Err(bad("expected a pipeline stage after |"));
        };
        let metric = match name.as_str() {
            "rate" | "count_over_time" => {
                self.expect(Token::OpenParen)?;
                self.expect(Token::CloseParen)?;
                Some(if name == "rate" {
                    MetricFunction::Rate
                } else {
                    MetricFunction::CountOverTime
                })
            }
            "quantile_over_time" => {
                self.expect(Token::OpenParen)?;
                let Some(Token::Ident(field)) = self.next() else {
                    return Err(bad("quantile_over_time needs a field first"));
                };
                let field = parse_field(&field)?;
                let mut quantiles = Vec::new();
                while self.peek() == Some(&Token::Comma) {
                    self.next();
                    match self.next() {
                        Some(Token::Number(number)) => quantiles.push(
                            number
                                .parse::<f64>()
                                .ok()
                                .filter(|q| (0.0..=1.0).contains(q))
                                .ok_or_else(|| bad(format!("bad quantile {number}")))?,
                        ),
                        other => return Err(bad(format!("expected a quantile, found {other:?}"))),
                    }
                }
                self.expect(Token::CloseParen)?;
                if quantiles.is_empty() {
                    return Err(bad("quantile_over_time needs at least one quantile"));
                }
                Some(MetricFunction::Quantile(field, quantiles))
            }
            "min_over_time" | "max_over_time" | "avg_over_time" => {
                let mut fields = self.fields()?;
                if fields.len() != 1 {
                    return Err(bad(format!("{name}() takes one field")));
                }
                let field = fields.remove(0);
                Some(match name.as_str() {
                    "min_over_time" => MetricFunction::Min(field),
                    "max_over_time" => MetricFunction::Max(field),
                    _ => MetricFunction::Avg(field),
                })
            }
            _ => None,
        };
        if let Some(function) = metric {
            let by = match self.peek() {
                Some(Token::Ident(word)) if word == "by" => {
                    self.next();
                    self.fields()?
                }
                _ => Vec::new(),
            };
            return Ok(Stage::Metric { function, by });
        }
        let aggregate = match name.as_str() {
            "select" => return Ok(Stage::Select(self.fields()?)),
            "by" => return Ok(Stage::By(self.fields()?)),
            "coalesce" => {
                self.fields()?;
                return Ok(Stage::Coalesce);
            }
            "count" => Aggregate::Count,
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "sum" => Aggregate::Sum,
            other => return Err(bad(format!("unsupported pipeline stage {other:?}"))),
        };
        let mut fields = self.fields()?;
        let field = match (aggregate, fields.len()) {
            (Aggregate::Count, 0) => None,
            (Aggregate::Count, _) => return Err(bad("count() takes no argument")),
            (_, 1) => fields.pop(),
            _ => return Err(bad(format!("{name}() takes one field"))),
        };
        let op = match self.next() {
            Some(Token::Op(op @ ("=" | "!=" | ">" | ">=" | "<" | "<="))) => op,
            other => {
                return Err(bad(format!(
                    "expected a comparison after {name}(), found {other:?}"
                )));
            }
        };
        let value = match self.operand()? {
            Operand::Literal(value @ (Value::Int(_) | Value::Float(_) | Value::Duration(_))) => {
                value
            }
            other => return Err(bad(format!("{name}() compares to a number, not {other:?}"))),
        };
        Ok(Stage::Filter {
            aggregate,
            field,
            op,
            value,
        })
    }
}

fn parse_number(text: &str) -> Result<Value> {
    if let Ok(int) = text.parse::<i64>() {
        return Ok(Value::Int(int));
    }
    text.parse::<f64>()
        .map(Value::Float)
        .map_err(|_| bad(format!("bad number {text:?}")))
}

/// Most tokens one query may have: the parser, the evaluator and dropping the tree all
/// recurse along it, so its size is bounded before parsing starts.
const MAX_TOKENS: usize = 4096;
/// Deepest bracket nesting one query may have.
const MAX_NESTING: usize = 64;

fn check_bounds(tokens: &[Token]) -> Result<()> {
    if tokens.len() > MAX_TOKENS {
        return Err(bad(format!(
            "query has {} tokens, more than the {MAX_TOKENS} allowed",
            tokens.len()
        )));
    }
    let mut depth = 0usize;
    for token in tokens {
        match token {
            Token::OpenBrace | Token::OpenParen => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(bad(format!(
                        "query nests brackets deeper than {MAX_NESTING}"
                    )));
                }
            }
            Token::CloseBrace | Token::CloseParen => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

impl Query {
    /// Parses a TraceQL query of the supported subset; errors are [`Error::BadRequest`].
    pub fn parse(text: &str) -> Result<Query> {
        let tokens = tokenize(text)?;
        check_bounds(&tokens)?;
        if tokens.is_empty() {
            return Ok(Query {
                spansets: SpansetExpr::Filter(Condition::True),
                stages: Vec::new(),
            });
        }
        let mut parser = Parser { tokens, at: 0 };
        let spansets = parser.spanset_or()?;
        let mut stages = Vec::new();
        while parser.peek() == Some(&Token::Pipe) {
            parser.next();
            stages.push(parser.stage()?);
        }
        if let Some(token) = parser.peek() {
            return Err(bad(format!("unexpected {token:?} after the query")));
        }
        let metrics = stages
            .iter()
            .filter(|s| matches!(s, Stage::Metric { .. }))
            .count();
        if metrics > 1 || (metrics == 1 && !matches!(stages.last(), Some(Stage::Metric { .. }))) {
            return Err(bad("a metrics function may only be the last stage"));
        }
        Ok(Query { spansets, stages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_builder_output_parses() {
        let query = Query::parse(
            r#"{resource.service.name="api" && name="GET /x" && duration>100ms && status=error}"#,
        )
        .unwrap();
        let SpansetExpr::Filter(Condition::And(_, last)) = &query.spansets else {
            panic!("{query:?}");
        };
        let Condition::Compare { left, right, .. } = last.as_ref() else {
            panic!("{last:?}");
        };
        assert_eq!(left, &Operand::Field(Field::Intrinsic(Intrinsic::Status)));
        assert_eq!(right, &Operand::Literal(Value::Status(2)));
        assert!(Query::parse("{}").is_ok());
        assert!(Query::parse("").is_ok());
    }

    #[test]
    fn pipelines_and_structure() {
        let query = Query::parse(
            r#"({ .a = 1 } >> { span.b =~ "x.*" }) || { kind = server } | count() > 2 | select(span.http.url, resource.x) | by(resource.service.name)"#,
        )
        .unwrap();
        assert!(matches!(query.spansets, SpansetExpr::Or(..)));
        assert_eq!(query.stages.len(), 3);
        assert!(matches!(
            &query.stages[1],
            Stage::Select(fields) if fields[0] == Field::Attribute(Scope::Span, "http.url".into())
        ));
        assert!(Query::parse("{ .a = 1 } | avg(duration) > 1s").is_ok());
        let metric =
            Query::parse("{ } | quantile_over_time(duration, .5, 0.9) by (resource.service.name)")
                .unwrap();
        assert!(matches!(
            &metric.stages[0],
            Stage::Metric { function: MetricFunction::Quantile(_, q), by } if q == &[0.5, 0.9] && by.len() == 1
        ));
        assert!(Query::parse("{ } | rate() | count() > 1").is_err());
    }

    #[test]
    fn errors_are_bad_requests_with_a_message() {
        for (query, expected) in [
            ("{ foo = 1 }", "unknown field"),
            ("{ .a = 1 ", "expected CloseBrace"),
            ("{ .a =~ 3 }", "string pattern"),
            ("{ .a =~ \"(\" }", "bad regex"),
            ("{ .a = 1 } | histogram()", "unsupported pipeline stage"),
            ("{ .a = 1 } }", "unexpected"),
        ] {
            let error = Query::parse(query).unwrap_err();
            assert!(matches!(error, Error::BadRequest(_)), "{query}");
            assert!(error.to_string().contains(expected), "{query}: {error}");
        }
    }
}
