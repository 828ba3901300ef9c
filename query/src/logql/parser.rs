//! The LogQL parser: a hand-written lexer and recursive-descent parser for the subset
//! in PROTOCOLS.md §6.6 (selectors, line filters, parsers, label filters, formats,
//! drop/keep, range and vector aggregations, binary arithmetic, `vector(n)`).

use regex::Regex;

use super::ast::*;
use crate::api::params::parse_prometheus_duration;
use crate::{Error, Result};

/// Longest query text accepted.
const MAX_QUERY_LEN: usize = 64 * 1024;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Range(String),
    Op(&'static str),
}

const OPS: [&str; 26] = [
    "|=", "|~", "|>", "!=", "!~", "=~", "==", ">=", "<=", "{", "}", "(", ")", ",", "|", "=", ">",
    "<", "+", "-", "*", "/", "%", "^", "[", "]",
];

fn lex(text: &str) -> Result<Vec<Tok>> {
    if text.len() > MAX_QUERY_LEN {
        return Err(Error::BadRequest("query is too long".into()));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            let mut value = String::new();
            let mut chars = text[i + 1..].char_indices();
            let mut closed = None;
            while let Some((at, ch)) = chars.next() {
                match ch {
                    '"' => {
                        closed = Some(at);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, other)) => value.push(other),
                        None => break,
                    },
                    other => value.push(other),
                }
            }
            let at = closed.ok_or_else(|| Error::BadRequest("unterminated string".into()))?;
            out.push(Tok::Str(value));
            i += at + 2;
            continue;
        }
        if c == '`' {
            let end = text[i + 1..]
                .find('`')
                .ok_or_else(|| Error::BadRequest("unterminated raw string".into()))?;
            out.push(Tok::Str(text[i + 1..i + 1 + end].to_string()));
            i += end + 2;
            continue;
        }
        if c == '[' {
            let end = text[i + 1..]
                .find(']')
                .ok_or_else(|| Error::BadRequest("unterminated range".into()))?;
            out.push(Tok::Range(text[i + 1..i + 1 + end].trim().to_string()));
            i += end + 2;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(text[start..i].to_string()));
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            // Non-ASCII letters: take the whole char.
            if i == start {
                i += c.len_utf8();
            }
            out.push(Tok::Ident(text[start..i].to_string()));
            continue;
        }
        match OPS.iter().find(|op| text[i..].starts_with(**op)) {
            Some(op) => {
                out.push(Tok::Op(op));
                i += op.len();
            }
            None => {
                return Err(Error::BadRequest(format!(
                    "parse error: unexpected character {c:?} at {i}"
                )));
            }
        }
    }
    Ok(out)
}

/// Parses a LogQL query.
pub fn parse(text: &str) -> Result<Expr> {
    let mut parser = Parser {
        toks: lex(text)?,
        pos: 0,
        depth: 0,
    };
    if parser.toks.is_empty() {
        return Err(Error::BadRequest("parse error: empty query".into()));
    }
    let expr = if parser.peek_op("{") {
        let log = parser.log_expr()?;
        if parser.pos == parser.toks.len() {
            Expr::Log(log)
        } else {
            return Err(parser.error("unexpected token after a log query"));
        }
    } else {
        Expr::Metric(parser.metric(0)?)
    };
    if parser.pos != parser.toks.len() {
        return Err(parser.error("unexpected token"));
    }
    Ok(expr)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn bin_op(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Ident(w) if w == "or" => (BinOp::Or, 1),
        Tok::Ident(w) if w == "and" => (BinOp::And, 2),
        Tok::Ident(w) if w == "unless" => (BinOp::Unless, 2),
        Tok::Op("==") => (BinOp::Eq, 3),
        Tok::Op("!=") => (BinOp::Ne, 3),
        Tok::Op(">") => (BinOp::Gt, 3),
        Tok::Op(">=") => (BinOp::Ge, 3),
        Tok::Op("<") => (BinOp::Lt, 3),
        Tok::Op("<=") => (BinOp::Le, 3),
        Tok::Op("+") => (BinOp::Add, 4),
        Tok::Op("-") => (BinOp::Sub, 4),
        Tok::Op("*") => (BinOp::Mul, 5),
        Tok::Op("/") => (BinOp::Div, 5),
        Tok::Op("%") => (BinOp::Mod, 5),
        Tok::Op("^") => (BinOp::Pow, 6),
        _ => return None,
    })
}

fn agg_op(name: &str) -> Option<AggOp> {
    Some(match name {
        "sum" => AggOp::Sum,
        "avg" => AggOp::Avg,
        "min" => AggOp::Min,
        "max" => AggOp::Max,
        "count" => AggOp::Count,
        "stddev" => AggOp::Stddev,
        "topk" => AggOp::Topk,
        "bottomk" => AggOp::Bottomk,
        _ => return None,
    })
}

fn range_fn(name: &str) -> Option<RangeFn> {
    Some(match name {
        "count_over_time" => RangeFn::Count,
        "rate" => RangeFn::Rate,
        "bytes_over_time" => RangeFn::Bytes,
        "bytes_rate" => RangeFn::BytesRate,
        "sum_over_time" => RangeFn::Sum,
        "avg_over_time" => RangeFn::Avg,
        "min_over_time" => RangeFn::Min,
        "max_over_time" => RangeFn::Max,
        "first_over_time" => RangeFn::First,
        "last_over_time" => RangeFn::Last,
        "stddev_over_time" => RangeFn::Stddev,
        "quantile_over_time" => RangeFn::Quantile,
        "absent_over_time" => RangeFn::Absent,
        _ => return None,
    })
}

/// Parses a Go-style duration (`1h30m`, `1.5s`, `250ms`, `10us`) into seconds.
pub fn parse_go_duration(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Some(if negative { -total } else { total })
}

/// Parses a byte size (`10KB`, `1.5MiB`, `42`, `3b`) into bytes.
pub fn parse_bytes(text: &str) -> Option<f64> {
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..digits].parse().ok()?;
    let scale = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(number * scale)
}

/// Parses a `line_format` / `label_format` template (`{{.name}}`, `{{ .name }}`,
/// `{{__line__}}`, `{{__timestamp__}}`).
pub fn parse_template(text: &str) -> Result<Vec<TemplatePart>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(TemplatePart::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find("}}")
            .ok_or_else(|| Error::BadRequest("unterminated {{ in template".into()))?;
        let action = rest[open + 2..open + close].trim().trim_matches('-').trim();
        out.push(match action {
            "__line__" => TemplatePart::Line,
            "__timestamp__" => TemplatePart::Timestamp,
            _ => match action.strip_prefix('.') {
                Some(name)
                    if !name.is_empty()
                        && name.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                {
                    TemplatePart::Label(name.to_string())
                }
                _ => {
                    return Err(Error::BadRequest(format!(
                        "unsupported template action {{{{{action}}}}}"
                    )));
                }
            },
        });
        rest = &rest[open + close + 2..];
    }
    if !rest.is_empty() {
        out.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(out)
}

/// Parses a `pattern` parser expression (`<ip> - <_> "<method> <path>"`).
pub fn parse_pattern(text: &str) -> Result<Vec<PatternPart>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<')
            && let Some(end) = after.find('>')
            && after[..end]
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_')
            && !after[..end].is_empty()
        {
            let name = &after[..end];
            if matches!(out.last(), Some(PatternPart::Capture(_))) {
                return Err(Error::BadRequest(
                    "pattern captures must be separated by literal text".into(),
                ));
            }
            out.push(PatternPart::Capture(
                (name != "_").then(|| name.to_string()),
            ));
            rest = &after[end + 1..];
            continue;
        }
        let next = rest[1..].find('<').map_or(rest.len(), |i| i + 1);
        match out.last_mut() {
            Some(PatternPart::Literal(text)) => text.push_str(&rest[..next]),
            _ => out.push(PatternPart::Literal(rest[..next].to_string())),
        }
        rest = &rest[next..];
    }
    if !out
        .iter()
        .any(|p| matches!(p, PatternPart::Capture(Some(_))))
    {
        return Err(Error::BadRequest("pattern has no named capture".into()));
    }
    Ok(out)
}

impl Parser {
    fn error(&self, what: &str) -> Error {
        match self.toks.get(self.pos) {
            Some(tok) => Error::BadRequest(format!("parse error: {what} near {tok:?}")),
            None => Error::BadRequest(format!("parse error: {what} at end of query")),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }

    fn expect_op(&mut self, op: &str) -> Result<()> {
        if self.peek_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {op:?}")))
        }
    }

    fn ident(&mut self) -> Result<String> {
        match self.peek() {
            Some(Tok::Ident(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error("expected a name")),
        }
    }

    fn string(&mut self) -> Result<String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("expected a string")),
        }
    }

    fn number(&mut self) -> Result<f64> {
        let negative = if self.peek_op("-") {
            self.pos += 1;
            true
        } else {
            false
        };
        match self.peek() {
            Some(Tok::Num(n)) => {
                let value: f64 = n.parse().map_err(|_| self.error("expected a number"))?;
                self.pos += 1;
                Ok(if negative { -value } else { value })
            }
            _ => Err(self.error("expected a number")),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::BadRequest("query nests too deeply".into()));
        }
        Ok(())
    }

    fn metric(&mut self, min_prec: u8) -> Result<MetricExpr> {
        self.enter()?;
        let mut lhs = self.metric_unary()?;
        while let Some((op, prec)) = self.peek().and_then(bin_op) {
            if prec < min_prec || (prec == min_prec && op != BinOp::Pow) {
                break;
            }
            self.pos += 1;
            let bool_modifier = if self.peek_ident("bool") {
                self.pos += 1;
                true
            } else {
                false
            };
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.metric(next)?;
            lhs = MetricExpr::Binary {
                op,
                bool_modifier,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn grouping(&mut self) -> Result<Option<Grouping>> {
        let without = match self.peek() {
            Some(Tok::Ident(w)) if w == "by" => false,
            Some(Tok::Ident(w)) if w == "without" => true,
            _ => return Ok(None),
        };
        self.pos += 1;
        self.expect_op("(")?;
        let mut labels = Vec::new();
        while !self.peek_op(")") {
            labels.push(self.ident()?);
            if !self.peek_op(",") {
                break;
            }
            self.pos += 1;
        }
        self.expect_op(")")?;
        Ok(Some(Grouping { without, labels }))
    }

    fn metric_unary(&mut self) -> Result<MetricExpr> {
        match self.peek().cloned() {
            Some(Tok::Op("(")) => {
                self.pos += 1;
                let inner = self.metric(0)?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Some(Tok::Op("-")) | Some(Tok::Num(_)) => Ok(MetricExpr::Number(self.number()?)),
            Some(Tok::Ident(name)) if name == "vector" => {
                self.pos += 1;
                self.expect_op("(")?;
                let value = self.number()?;
                self.expect_op(")")?;
                Ok(MetricExpr::Vector(value))
            }
            Some(Tok::Ident(name)) if agg_op(&name).is_some() => {
                self.pos += 1;
                let op = agg_op(&name).expect("checked");
                let mut grouping = self.grouping()?;
                self.expect_op("(")?;
                let param = if matches!(op, AggOp::Topk | AggOp::Bottomk) {
                    let k = self.number()?;
                    self.expect_op(",")?;
                    Some(k)
                } else {
                    None
                };
                let inner = self.metric(0)?;
                self.expect_op(")")?;
                if grouping.is_none() {
                    grouping = self.grouping()?;
                }
                Ok(MetricExpr::Agg {
                    op,
                    param,
                    grouping,
                    inner: Box::new(inner),
                })
            }
            Some(Tok::Ident(name)) if range_fn(&name).is_some() => {
                self.pos += 1;
                let func = range_fn(&name).expect("checked");
                self.expect_op("(")?;
                let param = if func == RangeFn::Quantile {
                    let q = self.number()?;
                    self.expect_op(",")?;
                    Some(q)
                } else {
                    None
                };
                let (log, unwrap, range_ms) = self.log_range()?;
                let mut offset_ms = 0;
                if self.peek_ident("offset") {
                    self.pos += 1;
                    let text = match self.peek() {
                        Some(Tok::Num(n)) => n.clone(),
                        _ => return Err(self.error("expected an offset duration")),
                    };
                    self.pos += 1;
                    offset_ms = parse_prometheus_duration(&text)
                        .ok_or_else(|| self.error("invalid offset duration"))?;
                }
                self.expect_op(")")?;
                let grouping = self.grouping()?;
                if func.needs_unwrap() && unwrap.is_none() {
                    return Err(Error::BadRequest(format!(
                        "parse error: {name} needs an unwrap expression"
                    )));
                }
                if !func.needs_unwrap() && unwrap.is_some() {
                    return Err(Error::BadRequest(format!(
                        "parse error: {name} does not take an unwrap expression"
                    )));
                }
                Ok(MetricExpr::Range {
                    func,
                    param,
                    log,
                    unwrap,
                    range_ms,
                    offset_ms,
                    grouping,
                })
            }
            _ => Err(self.error("expected a metric expression")),
        }
    }

    /// `{sel} pipeline [range]` or `{sel} [range] pipeline`, possibly parenthesised.
    fn log_range(&mut self) -> Result<(LogExpr, Option<Unwrap>, i64)> {
        if self.peek_op("(") {
            self.pos += 1;
            let (log, unwrap, range) = self.log_range_inner()?;
            self.expect_op(")")?;
            let range = match range {
                Some(range) => range,
                None => self.range()?,
            };
            return Ok((log, unwrap, range));
        }
        let (log, unwrap, range) = self.log_range_inner()?;
        let range = range.ok_or_else(|| self.error("expected a [range]"))?;
        Ok((log, unwrap, range))
    }

    fn range(&mut self) -> Result<i64> {
        match self.peek() {
            Some(Tok::Range(text)) => {
                let ms = parse_prometheus_duration(text)
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        Error::BadRequest(format!("parse error: invalid range [{text}]"))
                    })?;
                self.pos += 1;
                Ok(ms)
            }
            _ => Err(self.error("expected a [range]")),
        }
    }

    fn log_range_inner(&mut self) -> Result<(LogExpr, Option<Unwrap>, Option<i64>)> {
        let matchers = self.selector()?;
        let mut range = None;
        if matches!(self.peek(), Some(Tok::Range(_))) {
            range = Some(self.range()?);
        }
        let mut unwrap = None;
        let stages = self.pipeline(Some(&mut unwrap))?;
        if range.is_none() && matches!(self.peek(), Some(Tok::Range(_))) {
            range = Some(self.range()?);
        }
        Ok((LogExpr { matchers, stages }, unwrap, range))
    }

    fn log_expr(&mut self) -> Result<LogExpr> {
        let matchers = self.selector()?;
        let stages = self.pipeline(None)?;
        Ok(LogExpr { matchers, stages })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>> {
        self.expect_op("{")?;
        let mut matchers = Vec::new();
        while !self.peek_op("}") {
            let name = self.ident()?;
            let op = self.match_op()?;
            let value = self.string()?;
            matchers.push(Matcher::new(&name, op, &value).map_err(Error::BadRequest)?);
            if !self.peek_op(",") {
                break;
            }
            self.pos += 1;
        }
        self.expect_op("}")?;
        if matchers.is_empty() || matchers.iter().all(|m| m.matches("")) {
            return Err(Error::BadRequest(
                "parse error: queries require at least one regexp or equality matcher that does not have an empty-compatible value"
                    .into(),
            ));
        }
        Ok(matchers)
    }

    fn match_op(&mut self) -> Result<MatchOp> {
        let op = match self.peek() {
            Some(Tok::Op("=")) | Some(Tok::Op("==")) => MatchOp::Eq,
            Some(Tok::Op("!=")) => MatchOp::Ne,
            Some(Tok::Op("=~")) => MatchOp::Re,
            Some(Tok::Op("!~")) => MatchOp::Nre,
            _ => return Err(self.error("expected a matcher operator")),
        };
        self.pos += 1;
        Ok(op)
    }

    fn pipeline(&mut self, mut unwrap: Option<&mut Option<Unwrap>>) -> Result<Vec<Stage>> {
        let mut stages = Vec::new();
        loop {
            let filter_op = match self.peek() {
                Some(Tok::Op("|=")) => Some(FilterOp::Contains),
                Some(Tok::Op("!=")) => Some(FilterOp::NotContains),
                Some(Tok::Op("|~")) => Some(FilterOp::Regex),
                Some(Tok::Op("!~")) => Some(FilterOp::NotRegex),
                Some(Tok::Op("|>")) => {
                    return Err(self.error("pattern line filters |> are not supported"));
                }
                _ => None,
            };
            if let Some(op) = filter_op {
                self.pos += 1;
                let mut values = vec![self.string()?];
                while self.peek_ident("or")
                    && matches!(self.toks.get(self.pos + 1), Some(Tok::Str(_)))
                {
                    self.pos += 1;
                    values.push(self.string()?);
                }
                let regexes = match op {
                    FilterOp::Regex | FilterOp::NotRegex => values
                        .iter()
                        .map(|v| {
                            Regex::new(v)
                                .map_err(|e| Error::BadRequest(format!("invalid regex {v:?}: {e}")))
                        })
                        .collect::<Result<_>>()?,
                    _ => Vec::new(),
                };
                stages.push(Stage::Line {
                    op,
                    values,
                    regexes,
                });
                continue;
            }
            if !self.peek_op("|") {
                break;
            }
            self.pos += 1;
            let word = match self.peek() {
                Some(Tok::Ident(w)) => w.clone(),
                Some(Tok::Op("(")) => {
                    stages.push(Stage::Filter(self.label_filter()?));
                    continue;
                }
                _ => return Err(self.error("expected a pipeline stage")),
            };
            let is_stage_word = !matches!(
                self.toks.get(self.pos + 1),
                Some(Tok::Op(
                    "=" | "==" | "!=" | "=~" | "!~" | ">" | ">=" | "<" | "<="
                ))
            );
            if !is_stage_word {
                stages.push(Stage::Filter(self.label_filter()?));
                continue;
            }
            self.pos += 1;
            match word.as_str() {
                "json" => stages.push(Stage::Json(self.extractions()?)),
                "logfmt" => {
                    while self.peek_op("-") {
                        // --strict, --keep-empty
                        self.pos += 1;
                        if self.peek_op("-") {
                            self.pos += 1;
                        }
                        self.ident()?;
                        if self.peek_op("-") {
                            self.pos += 1;
                            self.ident()?;
                        }
                    }
                    if !self.extractions()?.is_empty() {
                        return Err(self.error("logfmt extractions are not supported"));
                    }
                    stages.push(Stage::Logfmt);
                }
                "unpack" => stages.push(Stage::Unpack),
                "decolorize" => stages.push(Stage::Decolorize),
                "pattern" => stages.push(Stage::Pattern(parse_pattern(&self.string()?)?)),
                "regexp" => {
                    let text = self.string()?;
                    let regex = Regex::new(&text)
                        .map_err(|e| Error::BadRequest(format!("invalid regex {text:?}: {e}")))?;
                    if regex.capture_names().flatten().next().is_none() {
                        return Err(Error::BadRequest("regexp has no named group".into()));
                    }
                    stages.push(Stage::Regexp(regex));
                }
                "line_format" => stages.push(Stage::LineFormat(parse_template(&self.string()?)?)),
                "label_format" => {
                    let mut items = Vec::new();
                    loop {
                        let name = self.ident()?;
                        self.expect_op("=")?;
                        let value = match self.peek().cloned() {
                            Some(Tok::Str(s)) => {
                                self.pos += 1;
                                LabelFormatValue::Template(parse_template(&s)?)
                            }
                            _ => LabelFormatValue::Rename(self.ident()?),
                        };
                        items.push((name, value));
                        if !self.peek_op(",") {
                            break;
                        }
                        self.pos += 1;
                    }
                    stages.push(Stage::LabelFormat(items));
                }
                "drop" | "keep" => {
                    let mut items = Vec::new();
                    loop {
                        let name = self.ident()?;
                        let matcher =
                            if matches!(self.peek(), Some(Tok::Op("=" | "!=" | "=~" | "!~"))) {
                                let op = self.match_op()?;
                                let value = self.string()?;
                                Some(Matcher::new(&name, op, &value).map_err(Error::BadRequest)?)
                            } else {
                                None
                            };
                        // A bare name is a matcher that accepts any value.
                        items.push(match matcher {
                            Some(m) => m,
                            None => {
                                Matcher::new(&name, MatchOp::Re, ".*").map_err(Error::BadRequest)?
                            }
                        });
                        if !self.peek_op(",") {
                            break;
                        }
                        self.pos += 1;
                    }
                    stages.push(if word == "drop" {
                        Stage::Drop(items)
                    } else {
                        Stage::Keep(items)
                    });
                }
                "unwrap" => {
                    let Some(slot) = unwrap.as_deref_mut() else {
                        return Err(Error::BadRequest(
                            "parse error: unwrap is only allowed in a range aggregation".into(),
                        ));
                    };
                    let name = self.ident()?;
                    let parsed = if self.peek_op("(") {
                        self.pos += 1;
                        let label = self.ident()?;
                        self.expect_op(")")?;
                        let kind = match name.as_str() {
                            "duration" | "duration_seconds" => NumKind::Duration,
                            "bytes" => NumKind::Bytes,
                            other => {
                                return Err(Error::BadRequest(format!(
                                    "parse error: unknown unwrap conversion {other}"
                                )));
                            }
                        };
                        Unwrap { label, kind }
                    } else {
                        Unwrap {
                            label: name,
                            kind: NumKind::Number,
                        }
                    };
                    *slot = Some(parsed);
                }
                other => {
                    return Err(Error::BadRequest(format!(
                        "parse error: unsupported pipeline stage {other}"
                    )));
                }
            }
        }
        Ok(stages)
    }

    /// `a, b="path", c` after `json`.
    fn extractions(&mut self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        while let Some(Tok::Ident(name)) = self.peek().cloned() {
            // Stop at a binary keyword following a json stage.
            if matches!(
                name.as_str(),
                "or" | "and" | "unless" | "by" | "without" | "offset"
            ) {
                break;
            }
            self.pos += 1;
            let path = if self.peek_op("=") {
                self.pos += 1;
                self.string()?
            } else {
                name.clone()
            };
            out.push((name, path));
            if !self.peek_op(",") {
                break;
            }
            self.pos += 1;
        }
        Ok(out)
    }

    fn label_filter(&mut self) -> Result<LabelFilter> {
        self.enter()?;
        let mut lhs = self.label_filter_and()?;
        while self.peek_ident("or") {
            self.pos += 1;
            let rhs = self.label_filter_and()?;
            lhs = LabelFilter::Or(Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter> {
        let mut lhs = self.label_filter_primary()?;
        loop {
            if self.peek_ident("and") || self.peek_op(",") {
                self.pos += 1;
            } else if !matches!(self.peek(), Some(Tok::Ident(w)) if w != "or") && !self.peek_op("(")
            {
                break;
            }
            // Stop before something that is not a filter (e.g. `offset`).
            if matches!(self.peek(), Some(Tok::Ident(w)) if matches!(w.as_str(), "offset" | "by" | "without"))
            {
                break;
            }
            let rhs = self.label_filter_primary()?;
            lhs = LabelFilter::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn label_filter_primary(&mut self) -> Result<LabelFilter> {
        if self.peek_op("(") {
            self.pos += 1;
            let inner = self.label_filter()?;
            self.expect_op(")")?;
            return Ok(inner);
        }
        let name = self.ident()?;
        let op_tok = self.peek().cloned();
        self.pos += 1;
        let value_tok = self.peek().cloned();
        self.pos += 1;
        match (op_tok, value_tok) {
            (Some(Tok::Op(op)), Some(Tok::Str(value))) => {
                let op = match op {
                    "=" | "==" => MatchOp::Eq,
                    "!=" => MatchOp::Ne,
                    "=~" => MatchOp::Re,
                    "!~" => MatchOp::Nre,
                    _ => return Err(self.error("string label filters take = != =~ !~")),
                };
                Ok(LabelFilter::Str(
                    Matcher::new(&name, op, &value).map_err(Error::BadRequest)?,
                ))
            }
            (Some(Tok::Op(op)), Some(Tok::Num(text))) => {
                let op = match op {
                    "=" | "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    ">" => CmpOp::Gt,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    _ => return Err(self.error("numeric label filters take == != > >= < <=")),
                };
                let (value, kind) = if let Ok(number) = text.parse::<f64>() {
                    (number, NumKind::Number)
                } else if let Some(seconds) = parse_go_duration(&text) {
                    (seconds, NumKind::Duration)
                } else if let Some(bytes) = parse_bytes(&text) {
                    (bytes, NumKind::Bytes)
                } else {
                    return Err(Error::BadRequest(format!(
                        "parse error: invalid value {text}"
                    )));
                };
                Ok(LabelFilter::Num {
                    name,
                    op,
                    value,
                    kind,
                })
            }
            _ => {
                self.pos -= 1;
                Err(self.error("expected a label filter"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(q: &str) -> LogExpr {
        match parse(q).unwrap() {
            Expr::Log(log) => log,
            other => panic!("not a log query: {other:?}"),
        }
    }

    #[test]
    fn selectors_and_line_filters() {
        let e = log(
            r#"{job="api", level!="debug", pod=~"api-.*", ns!~"kube.*"} |= "timeout" != `raw\d` |~ "err(or)?" !~ "ok" |= "a" or "b""#,
        );
        assert_eq!(e.matchers.len(), 4);
        assert!(e.matchers[2].matches("api-0") && !e.matchers[2].matches("xapi-0"));
        assert_eq!(e.stages.len(), 5);
        match &e.stages[1] {
            Stage::Line { op, values, .. } => {
                assert_eq!(*op, FilterOp::NotContains);
                assert_eq!(values, &vec![r"raw\d".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        match &e.stages[4] {
            Stage::Line { values, .. } => assert_eq!(values.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(parse(r#"{job=~".*"}"#).is_err());
        assert!(parse(r#"{job="a""#).is_err());
        log(r#"{job="api"} |= ``"#);
    }

    #[test]
    fn parsers_filters_formats() {
        let e = log(
            r#"{job="api"} | json | logfmt | pattern "<ip> - <_> <status>" | regexp "(?P<method>\\w+)" | status >= 500 and duration > 1.5s or size < 10KB, level="error" | __error__="" | line_format "{{.method}} {{ .status }}" | label_format code=status, msg="{{.level}}!" | drop __error__, __error_details__ | keep level"#,
        );
        assert_eq!(e.stages.len(), 10);
        match &e.stages[4] {
            Stage::Filter(LabelFilter::Or(_, rhs)) => match rhs.as_ref() {
                LabelFilter::And(lhs, _) => match lhs.as_ref() {
                    LabelFilter::Num { value, kind, .. } => {
                        assert_eq!(*value, 10_000.0);
                        assert_eq!(*kind, NumKind::Bytes);
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        match &e.stages[6] {
            Stage::LineFormat(parts) => assert_eq!(
                parts,
                &vec![
                    TemplatePart::Label("method".into()),
                    TemplatePart::Text(" ".into()),
                    TemplatePart::Label("status".into())
                ]
            ),
            other => panic!("{other:?}"),
        }
        let e = log(r#"{job="api"} | json code="response.status", first="items[0]""#);
        match &e.stages[0] {
            Stage::Json(items) => assert_eq!(items[0].1, "response.status"),
            other => panic!("{other:?}"),
        }
        assert!(parse(r#"{job="api"} | nonsense"#).is_err());
    }

    #[test]
    fn metric_queries() {
        let q = parse(
            r#"sum by (level, detected_level) (count_over_time({job="api"} |= "x" | drop __error__[1m]))"#,
        )
        .unwrap();
        match q {
            Expr::Metric(MetricExpr::Agg {
                op: AggOp::Sum,
                grouping: Some(g),
                inner,
                ..
            }) => {
                assert_eq!(g.labels, vec!["level", "detected_level"]);
                match *inner {
                    MetricExpr::Range { func, range_ms, .. } => {
                        assert_eq!(func, RangeFn::Count);
                        assert_eq!(range_ms, 60_000);
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        parse(r#"sum(rate({job="api"}[5m])) by (pod)"#).unwrap();
        parse(r#"topk(3, sum by (job) (bytes_rate({job="api"}[5m] |= "a")))"#).unwrap();
        parse(r#"quantile_over_time(0.99, {job="api"} | logfmt | unwrap duration(took) | __error__="" [5m]) by (path)"#).unwrap();
        parse(r#"avg_over_time({job="api"} | json | unwrap latency [1m] offset 5m)"#).unwrap();
        parse("vector(1)+vector(1)").unwrap();
        parse(r#"sum(count_over_time({a="b"}[1m])) / 2 > bool 1"#).unwrap();
        assert!(parse(r#"sum_over_time({a="b"}[1m])"#).is_err());
        assert!(parse(r#"count_over_time({a="b"})"#).is_err());
    }

    #[test]
    fn units() {
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("250ms"), Some(0.25));
        assert_eq!(parse_bytes("1KiB"), Some(1024.0));
        assert_eq!(parse_bytes("3MB"), Some(3e6));
        assert_eq!(
            parse_pattern("<ip> - <_> \"<method>\"").unwrap(),
            vec![
                PatternPart::Capture(Some("ip".into())),
                PatternPart::Literal(" - ".into()),
                PatternPart::Capture(None),
                PatternPart::Literal(" \"".into()),
                PatternPart::Capture(Some("method".into())),
                PatternPart::Literal("\"".into()),
            ]
        );
    }
}
