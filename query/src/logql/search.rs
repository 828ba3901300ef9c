//! Native full-text log search (the web UI and the failing-hop analysis): a small query
//! language, paging newest first with an opaque cursor, and hit counts per time bucket.
//!
//! Query syntax: words (`timeout`, whole token, case-insensitive), `"phrases"`,
//! `prefix*`, `fuzzy~1` (Levenshtein distance 0–2, `~` alone is 2), `AND`, `OR`, `NOT`
//! (or `-word`), parentheses, implicit AND between adjacent clauses, and field filters
//! `service:x`, `severity:error` (alias `level:`), `trace_id:…`, `span_id:…`,
//! `instance:…`, `attr.key:value`, `resource.key:value` (values may be quoted; a
//! trailing `*` makes them prefixes).
//!
//! The text part is translated to a [`TextQuery`] that storage answers through its
//! full-text index (a superset where the query cannot be expressed exactly), then every
//! line is confirmed against the whole expression.

use std::sync::Arc;

use proto::{TenantId, TraceId};
use serde::Serialize;
use storage::{LogScan, Storage, TextQuery};

use super::fetch::{self, Direction};
use super::rows::LogLine;
use crate::{Error, Result};

/// Most lines one search page may return.
pub const MAX_LIMIT: usize = 5_000;
/// Most buckets a histogram may have.
pub const MAX_BUCKETS: i64 = 11_000;

/// A parsed search expression.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchExpr {
    /// A text predicate on the body.
    Text(TextQuery),
    /// A field predicate.
    Field {
        /// `service`, `severity`, `trace_id`, `span_id`, `instance`, `attr.<k>`, `resource.<k>`.
        field: String,
        /// The wanted value (lowercase compare for severity).
        value: String,
        /// The value is a prefix.
        prefix: bool,
    },
    /// Every part matches.
    And(Vec<SearchExpr>),
    /// One part matches.
    Or(Vec<SearchExpr>),
    /// The part does not match.
    Not(Box<SearchExpr>),
    /// Matches everything (empty query).
    All,
}

/// One search request.
#[derive(Debug, Clone, Default)]
pub struct LogSearch {
    /// The query text (see the module docs); empty matches every line.
    pub query: String,
    /// Inclusive start, Unix nanoseconds.
    pub start_ns: i64,
    /// Inclusive end, Unix nanoseconds.
    pub end_ns: i64,
    /// Lines per page.
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only these services (in addition to the query).
    pub services: Vec<String>,
    /// Only this severity (in addition to the query).
    pub severity: Option<String>,
    /// Only this trace (in addition to the query).
    pub trace_id: Option<TraceId>,
}

/// One page of search results.
#[derive(Debug, Clone, Serialize)]
pub struct LogPage {
    /// Matching lines, newest first.
    pub lines: Vec<LogLine>,
    /// Cursor of the next page, absent on the last page.
    pub next_cursor: Option<String>,
}

/// Hit counts per time bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    /// Bucket width, nanoseconds.
    pub step_ns: i64,
    /// `(bucket start ns, hits)`, ascending, every bucket of the range.
    pub buckets: Vec<(i64, u64)>,
    /// Sum of all buckets.
    pub total: u64,
}

impl SearchExpr {
    /// Returns true when `line` satisfies the expression.
    pub fn matches(&self, line: &LogLine) -> bool {
        match self {
            SearchExpr::All => true,
            SearchExpr::Text(text) => text.matches(&line.body),
            SearchExpr::And(parts) => parts.iter().all(|p| p.matches(line)),
            SearchExpr::Or(parts) => parts.iter().any(|p| p.matches(line)),
            SearchExpr::Not(part) => !part.matches(line),
            SearchExpr::Field {
                field,
                value,
                prefix,
            } => {
                let hit = |actual: &str| {
                    if *prefix {
                        actual.starts_with(value.as_str())
                    } else {
                        actual == value
                    }
                };
                match field.as_str() {
                    "service" => hit(&line.service),
                    "instance" => line.instance.as_deref().is_some_and(hit),
                    "severity" => {
                        let value_level = super::rows::level_of(0, Some(value));
                        line.severity
                            .as_deref()
                            .is_some_and(|s| hit(&s.to_lowercase()))
                            || (value_level.is_some() && line.level() == value_level)
                    }
                    "trace_id" => line.trace_id.as_deref().is_some_and(hit),
                    "span_id" => line.span_id.as_deref().is_some_and(hit),
                    other => {
                        if let Some(key) = other.strip_prefix("attr.") {
                            line.attributes.get(key).is_some_and(|v| hit(v))
                        } else if let Some(key) = other.strip_prefix("resource.") {
                            line.resource.get(key).is_some_and(|v| hit(v))
                        } else {
                            false
                        }
                    }
                }
            }
        }
    }

    /// A text predicate every matching line satisfies (a superset), for the index.
    pub fn text_superset(&self) -> Option<TextQuery> {
        match self {
            SearchExpr::Text(text) => Some(text.clone()),
            SearchExpr::And(parts) => {
                let mut texts: Vec<TextQuery> =
                    parts.iter().filter_map(SearchExpr::text_superset).collect();
                match texts.len() {
                    0 => None,
                    1 => texts.pop(),
                    _ => Some(TextQuery::And(texts)),
                }
            }
            SearchExpr::Or(parts) => parts
                .iter()
                .map(SearchExpr::text_superset)
                .collect::<Option<Vec<_>>>()
                .map(TextQuery::Or),
            SearchExpr::Not(part) => match part.as_ref() {
                SearchExpr::Text(text) => Some(TextQuery::Not(Box::new(text.clone()))),
                _ => None,
            },
            SearchExpr::Field { .. } | SearchExpr::All => None,
        }
    }

    /// The text predicate equivalent to this expression, when there is one.
    fn exact_text(&self) -> Option<TextQuery> {
        match self {
            SearchExpr::Text(text) => Some(text.clone()),
            SearchExpr::And(parts) => parts
                .iter()
                .map(SearchExpr::exact_text)
                .collect::<Option<Vec<_>>>()
                .map(|mut texts| match texts.len() {
                    1 => texts.remove(0),
                    _ => TextQuery::And(texts),
                }),
            SearchExpr::Or(parts) => parts
                .iter()
                .map(SearchExpr::exact_text)
                .collect::<Option<Vec<_>>>()
                .map(TextQuery::Or),
            SearchExpr::Not(part) => part.exact_text().map(|t| TextQuery::Not(Box::new(t))),
            SearchExpr::Field { .. } | SearchExpr::All => None,
        }
    }

    /// True when the expression only looks at the body (storage confirms it exactly).
    fn body_only(&self) -> bool {
        match self {
            SearchExpr::Text(_) => true,
            SearchExpr::And(parts) | SearchExpr::Or(parts) => parts.iter().all(Self::body_only),
            SearchExpr::Not(part) => part.body_only(),
            SearchExpr::Field { .. } | SearchExpr::All => false,
        }
    }

    /// [`SearchExpr::matches`] for a body-only expression.
    fn matches_body(&self, body: &str) -> bool {
        match self {
            SearchExpr::Text(text) => text.matches(body),
            SearchExpr::And(parts) => parts.iter().all(|p| p.matches_body(body)),
            SearchExpr::Or(parts) => parts.iter().any(|p| p.matches_body(body)),
            SearchExpr::Not(part) => !part.matches_body(body),
            SearchExpr::All => true,
            SearchExpr::Field { .. } => false,
        }
    }

    /// The exact values a top-level AND requires for `field` (no prefix).
    fn required(&self, field: &str) -> Option<String> {
        match self {
            SearchExpr::Field {
                field: f,
                value,
                prefix: false,
            } if f == field => Some(value.clone()),
            SearchExpr::And(parts) => parts.iter().find_map(|p| p.required(field)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                out.push(Token::Quoted(quoted(&mut chars)?));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    chars.next();
                    if c == '"' {
                        // field:"quoted value"
                        word.push('"');
                        word.push_str(&quoted(&mut chars)?);
                        word.push('"');
                    } else {
                        word.push(c);
                    }
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String> {
    let mut out = String::new();
    loop {
        match chars.next() {
            None => return Err(Error::BadRequest("unterminated quote in query".into())),
            Some('"') => return Ok(out),
            Some('\\') => out.extend(chars.next()),
            Some(c) => out.push(c),
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

/// Parses a search query.
pub fn parse(query: &str) -> Result<SearchExpr> {
    let tokens = tokenize(query)?;
    if tokens.is_empty() {
        return Ok(SearchExpr::All);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(Error::BadRequest(format!(
            "unexpected {:?} in query",
            parser.tokens[parser.pos]
        )));
    }
    Ok(expr)
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w == word)
    }

    fn or(&mut self) -> Result<SearchExpr> {
        let mut parts = vec![self.and()?];
        while self.peek_word("OR") || self.peek_word("||") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            SearchExpr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<SearchExpr> {
        let mut parts = vec![self.unary()?];
        loop {
            if self.peek_word("AND") || self.peek_word("&&") {
                self.pos += 1;
            } else if self.pos >= self.tokens.len()
                || self.peek_word("OR")
                || self.peek_word("||")
                || self.tokens[self.pos] == Token::Close
            {
                break;
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            SearchExpr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<SearchExpr> {
        if self.peek_word("NOT") {
            self.pos += 1;
            return Ok(SearchExpr::Not(Box::new(self.unary()?)));
        }
        let token = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| Error::BadRequest("query ends where a term was expected".into()))?;
        self.pos += 1;
        match token {
            Token::Open => {
                self.depth += 1;
                if self.depth > 64 {
                    return Err(Error::BadRequest("query nests too deeply".into()));
                }
                let inner = self.or()?;
                self.depth -= 1;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err(Error::BadRequest("missing ) in query".into()));
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Close => Err(Error::BadRequest("unexpected ) in query".into())),
            Token::Quoted(text) => Ok(phrase(&text)),
            Token::Word(word) => {
                if let Some(rest) = word.strip_prefix('-')
                    && !rest.is_empty()
                {
                    return Ok(SearchExpr::Not(Box::new(word_expr(rest)?)));
                }
                word_expr(&word)
            }
        }
    }
}

const FIELDS: [&str; 7] = [
    "service", "severity", "level", "trace_id", "span_id", "instance", "host",
];

fn word_expr(word: &str) -> Result<SearchExpr> {
    if let Some((field, value)) = word.split_once(':')
        && (FIELDS.contains(&field) || field.starts_with("attr.") || field.starts_with("resource."))
        && !value.is_empty()
    {
        let (value, prefix) = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => (inner.to_string(), false),
            None => match value.strip_suffix('*') {
                Some(stem) => (stem.to_string(), true),
                None => (value.to_string(), false),
            },
        };
        let field = match field {
            "level" => "severity",
            "host" => "instance",
            other => other,
        };
        let value = match field {
            "severity" => value.to_lowercase(),
            "trace_id" | "span_id" => value.to_ascii_lowercase(),
            _ => value,
        };
        return Ok(SearchExpr::Field {
            field: field.to_string(),
            value,
            prefix,
        });
    }
    if let Some((stem, distance)) = word.rsplit_once('~')
        && !stem.is_empty()
        && stem.chars().all(char::is_alphanumeric)
    {
        let distance: u8 = match distance {
            "" => 2,
            d => d.parse().ok().filter(|d| *d <= 2).ok_or_else(|| {
                Error::BadRequest(format!("fuzzy distance must be 0 to 2: {word}"))
            })?,
        };
        return Ok(SearchExpr::Text(TextQuery::Fuzzy {
            word: stem.to_string(),
            distance,
        }));
    }
    if let Some(stem) = word.strip_suffix('*')
        && !stem.is_empty()
        && stem.chars().all(char::is_alphanumeric)
    {
        return Ok(SearchExpr::Text(TextQuery::Prefix(stem.to_string())));
    }
    Ok(phrase(word))
}

/// A quoted phrase or a word with punctuation: its alphanumeric runs, consecutive.
fn phrase(text: &str) -> SearchExpr {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    match words.len() {
        0 => SearchExpr::All,
        1 => SearchExpr::Text(TextQuery::Term(words[0].clone())),
        _ => SearchExpr::Text(TextQuery::Phrase(words)),
    }
}

struct Prepared {
    expr: SearchExpr,
    scan: LogScan,
}

fn prepare(search: &LogSearch) -> Result<Prepared> {
    if search.start_ns > search.end_ns {
        return Err(Error::BadRequest("start must not be after end".into()));
    }
    let mut parts = vec![parse(&search.query)?];
    if let Some(severity) = &search.severity {
        parts.push(SearchExpr::Field {
            field: "severity".into(),
            value: severity.to_lowercase(),
            prefix: false,
        });
    }
    let expr = if parts.len() == 1 {
        parts.remove(0)
    } else {
        SearchExpr::And(parts)
    };
    let mut services = search.services.clone();
    if let Some(service) = expr.required("service") {
        if !services.is_empty() && !services.contains(&service) {
            services = vec![String::new()];
        } else {
            services = vec![service];
        }
    }
    let mut trace_id = search.trace_id;
    if trace_id.is_none()
        && let Some(hex) = expr.required("trace_id")
    {
        trace_id = Some(
            hex.parse()
                .map_err(|_| Error::BadRequest(format!("invalid trace id {hex:?}")))?,
        );
    }
    Ok(Prepared {
        scan: LogScan {
            start_ns: search.start_ns,
            end_ns: search.end_ns,
            services,
            trace_id,
            text: expr.text_superset(),
        },
        expr,
    })
}

fn encode_cursor(key: (i64, u64)) -> String {
    format!("{:016x}{:016x}", key.0 as u64, key.1)
}

fn decode_cursor(cursor: &str) -> Result<(i64, u64)> {
    let bad = || Error::BadRequest("invalid cursor".into());
    if cursor.len() != 32 || !cursor.is_ascii() {
        return Err(bad());
    }
    let ts = u64::from_str_radix(&cursor[..16], 16).map_err(|_| bad())? as i64;
    let tie = u64::from_str_radix(&cursor[16..], 16).map_err(|_| bad())?;
    Ok((ts, tie))
}

/// Returns one page of the lines matching `search`, newest first.
pub async fn search(
    storage: &Arc<Storage>,
    tenant: &TenantId,
    search: &LogSearch,
) -> Result<LogPage> {
    let limit = search.limit.clamp(1, MAX_LIMIT);
    let mut prepared = prepare(search)?;
    let after = search.cursor.as_deref().map(decode_cursor).transpose()?;
    if let Some((ts, _)) = after {
        prepared.scan.end_ns = prepared.scan.end_ns.min(ts);
    }
    let expr = &prepared.expr;
    let keep = |line: &LogLine| {
        expr.matches(line) && after.is_none_or(|cursor| fetch::order_key(line) < cursor)
    };
    let mut lines = fetch::lines(
        storage,
        tenant,
        &prepared.scan,
        &keep,
        Some(limit + 1),
        Direction::Backward,
    )
    .await?;
    let next_cursor = if lines.len() > limit {
        lines.truncate(limit);
        lines.last().map(|l| encode_cursor(fetch::order_key(l)))
    } else {
        None
    };
    Ok(LogPage { lines, next_cursor })
}

/// Counts the lines matching `search` (its limit and cursor are ignored) per bucket of
/// `step_ns`, buckets aligned to multiples of the step.
pub async fn count_by_bucket(
    storage: &Arc<Storage>,
    tenant: &TenantId,
    search: &LogSearch,
    step_ns: i64,
) -> Result<Histogram> {
    if step_ns <= 0 {
        return Err(Error::BadRequest("step must be positive".into()));
    }
    let first = search.start_ns.div_euclid(step_ns);
    let last = search.end_ns.div_euclid(step_ns);
    if last - first + 1 > MAX_BUCKETS {
        return Err(Error::BadRequest(format!(
            "more than {MAX_BUCKETS} buckets; raise the step"
        )));
    }
    let prepared = prepare(search)?;
    let expr = &prepared.expr;
    let mut counts = vec![0u64; (last - first + 1) as usize];
    let mut count = |ts: i64| {
        let bucket = ts.div_euclid(step_ns) - first;
        if let Some(count) = counts.get_mut(bucket as usize) {
            *count += 1;
        }
    };
    let exact = match expr {
        SearchExpr::All => prepared.scan.text.is_none(),
        other => other.body_only() && other.exact_text() == prepared.scan.text,
    };
    if exact {
        // The scan says it all: count from the times of the matching rows alone.
        for ts in fetch::times(storage, tenant, &prepared.scan).await? {
            count(ts);
        }
    } else if expr.body_only() {
        // Only the body matters: count without building lines.
        fetch::visit(storage, tenant, &prepared.scan, |ts, body| {
            if expr.matches_body(body) {
                count(ts);
            }
        })
        .await?;
    } else {
        let keep = |line: &LogLine| expr.matches(line);
        let lines = fetch::lines(
            storage,
            tenant,
            &prepared.scan,
            &keep,
            None,
            Direction::Backward,
        )
        .await?;
        for line in &lines {
            count(line.ts_ns);
        }
    }
    let total = counts.iter().sum();
    Ok(Histogram {
        step_ns,
        buckets: counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| ((first + i as i64) * step_ns, count))
            .collect(),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(service: &str, severity: &str, body: &str) -> LogLine {
        LogLine {
            ts_ns: 1,
            service: service.into(),
            instance: None,
            severity: Some(severity.into()),
            severity_number: 0,
            body: body.into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: None,
            attributes: [("user".to_string(), "u1".to_string())].into(),
            resource: Default::default(),
        }
    }

    fn hits(query: &str, lines: &[LogLine]) -> Vec<usize> {
        let expr = parse(query).unwrap();
        (0..lines.len())
            .filter(|i| expr.matches(&lines[*i]))
            .collect()
    }

    #[test]
    fn language() {
        let lines = [
            line("funding", "ERROR", "connection timeout to mysql"),
            line("asset", "INFO", "request ok in 12ms"),
            line("funding", "WARN", "timeout connection retry"),
            line("asset", "ERROR", "payment declined for user-42"),
        ];
        assert_eq!(hits("timeout", &lines), vec![0, 2]);
        assert_eq!(hits("TIMEOUT mysql", &lines), vec![0]);
        assert_eq!(hits("\"connection timeout\"", &lines), vec![0]);
        assert_eq!(hits("timeout AND NOT mysql", &lines), vec![2]);
        assert_eq!(hits("timeout -mysql", &lines), vec![2]);
        assert_eq!(hits("mysql OR ok", &lines), vec![0, 1]);
        assert_eq!(hits("(mysql OR ok) service:asset", &lines), vec![1]);
        assert_eq!(hits("pay*", &lines), vec![3]);
        assert_eq!(hits("paymnet~1", &lines), Vec::<usize>::new());
        assert_eq!(hits("paymnet~2", &lines), vec![3]);
        assert_eq!(hits("timeuot~", &lines), vec![0, 2]);
        assert_eq!(hits("severity:error", &lines), vec![0, 3]);
        assert_eq!(hits("level:warning", &lines), vec![2]);
        assert_eq!(hits("user-42", &lines), vec![3]);
        assert_eq!(hits("attr.user:u1 service:fund*", &lines), vec![0, 2]);
        assert_eq!(
            hits("trace_id:4BF92F3577B34DA6A3CE929D0E0E4736 ok", &lines),
            vec![1]
        );
        assert_eq!(hits("", &lines), vec![0, 1, 2, 3]);
        assert!(parse("(a").is_err());
        assert!(parse("\"a").is_err());
        assert!(parse("a~7").is_err());
    }

    #[test]
    fn pushdown() {
        let expr = parse("service:api timeout NOT ok").unwrap();
        assert_eq!(expr.required("service").as_deref(), Some("api"));
        assert_eq!(
            expr.text_superset(),
            Some(TextQuery::And(vec![
                TextQuery::Term("timeout".into()),
                TextQuery::Not(Box::new(TextQuery::Term("ok".into())))
            ]))
        );
        assert_eq!(parse("a OR service:x").unwrap().text_superset(), None);
        let key = (1_700_000_000_000_000_000, 42);
        assert_eq!(decode_cursor(&encode_cursor(key)).unwrap(), key);
        assert!(decode_cursor("zz").is_err());
    }
}
