//! Runs a LogQL pipeline over one line: line filters, parsers (`json`, `logfmt`,
//! `pattern`, `regexp`, `unpack`), label filters, `line_format`, `label_format`,
//! `drop`, `keep`. Parse failures set `__error__` instead of dropping the line.

use serde_json::Value;

use super::ast::*;
use super::parser::{parse_bytes, parse_go_duration};
use super::rows::{Labels, label_name};

/// A line moving through a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Time, Unix nanoseconds.
    pub ts_ns: i64,
    /// The (possibly reformatted) line.
    pub line: String,
    /// Stream labels plus extracted labels.
    pub labels: Labels,
    /// Structured metadata (filterable, not part of the stream).
    pub metadata: Labels,
}

impl Entry {
    fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .get(name)
            .or_else(|| self.metadata.get(name))
            .map(String::as_str)
    }

    fn set_error(&mut self, error: &str, details: String) {
        if !self.labels.contains_key("__error__") {
            self.labels.insert("__error__".into(), error.into());
            self.labels.insert("__error_details__".into(), details);
        }
    }

    fn extract(&mut self, name: &str, value: String) {
        let mut name = label_name(name);
        if name.is_empty() {
            return;
        }
        // Extracted labels never overwrite a stream label (Loki's rule).
        if self.labels.contains_key(&name) && !self.metadata.contains_key(&name) {
            name.push_str("_extracted");
        }
        self.labels.insert(name, value);
    }
}

/// Reads a label value as a number of the given kind.
pub fn read_number(value: &str, kind: NumKind) -> Option<f64> {
    let value = value.trim();
    match kind {
        NumKind::Number => value.parse::<f64>().ok(),
        NumKind::Duration => parse_go_duration(value).or_else(|| value.parse::<f64>().ok()),
        NumKind::Bytes => parse_bytes(value),
    }
}

fn render(parts: &[TemplatePart], entry: &Entry) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            TemplatePart::Text(text) => out.push_str(text),
            TemplatePart::Label(name) => out.push_str(entry.get(name).unwrap_or("")),
            TemplatePart::Line => out.push_str(&entry.line),
            TemplatePart::Timestamp => out.push_str(
                &chrono::DateTime::from_timestamp_nanos(entry.ts_ns)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
        }
    }
    out
}

fn filter_holds(filter: &LabelFilter, entry: &mut Entry) -> bool {
    match filter {
        LabelFilter::Str(matcher) => {
            let value = entry.get(&matcher.name).unwrap_or("");
            matcher.matches(value)
        }
        LabelFilter::Num {
            name,
            op,
            value,
            kind,
        } => {
            let Some(actual) = entry.get(name).map(str::to_string) else {
                return *op == CmpOp::Ne;
            };
            match read_number(&actual, *kind) {
                Some(actual) => op.apply(actual, *value),
                None => {
                    entry.set_error("LabelFilterErr", format!("cannot convert {actual:?}"));
                    true
                }
            }
        }
        LabelFilter::And(a, b) => filter_holds(a, entry) && filter_holds(b, entry),
        LabelFilter::Or(a, b) => filter_holds(a, entry) || filter_holds(b, entry),
    }
}

fn flatten_json(prefix: &str, value: &Value, entry: &mut Entry) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}_{key}")
                };
                flatten_json(&name, inner, entry);
            }
        }
        Value::Array(_) => {}
        other => entry.extract(prefix, json_scalar(other)),
    }
}

fn json_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Follows `a.b[0]["c"]` into a JSON value.
fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let key = after[..end].trim();
            current = match key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                Some(name) => current.get(name)?,
                None => current.get(key.parse::<usize>().ok()?)?,
            };
            rest = &after[end + 1..];
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            current = current.get(&rest_trimmed[..end])?;
            rest = &rest_trimmed[end..];
        }
    }
    Some(current)
}

/// Parses logfmt pairs; `None` on malformed input.
pub fn logfmt_pairs(line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            if c == '"' {
                return None;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => return None,
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(c) => value.push(c),
                            None => return None,
                        },
                        Some(c) => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        if !key.is_empty() {
            out.push((key, value));
        }
    }
}

fn pattern_captures(parts: &[PatternPart], line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = line;
    let mut i = 0;
    while i < parts.len() {
        match &parts[i] {
            PatternPart::Literal(text) => {
                rest = rest.strip_prefix(text.as_str())?;
                i += 1;
            }
            PatternPart::Capture(name) => {
                let (value, after) = match parts.get(i + 1) {
                    Some(PatternPart::Literal(text)) => {
                        let at = rest.find(text.as_str())?;
                        (&rest[..at], &rest[at..])
                    }
                    _ => (rest, ""),
                };
                if let Some(name) = name {
                    out.push((name.clone(), value.to_string()));
                }
                rest = after;
                i += 1;
            }
        }
    }
    Some(out)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs `stages` over `entry`; returns false when a filter drops the line.
pub fn run(stages: &[Stage], entry: &mut Entry) -> bool {
    for stage in stages {
        match stage {
            Stage::Line {
                op,
                values,
                regexes,
            } => {
                let keep = match op {
                    FilterOp::Contains => values.iter().any(|v| entry.line.contains(v.as_str())),
                    FilterOp::NotContains => {
                        !values.iter().any(|v| entry.line.contains(v.as_str()))
                    }
                    FilterOp::Regex => regexes.iter().any(|r| r.is_match(&entry.line)),
                    FilterOp::NotRegex => !regexes.iter().any(|r| r.is_match(&entry.line)),
                };
                if !keep {
                    return false;
                }
            }
            Stage::Json(extractions) => match serde_json::from_str::<Value>(&entry.line) {
                Ok(value @ Value::Object(_)) => {
                    if extractions.is_empty() {
                        flatten_json("", &value, entry);
                    } else {
                        for (name, path) in extractions {
                            if let Some(found) = json_path(&value, path) {
                                let text = match found {
                                    Value::Object(_) | Value::Array(_) => found.to_string(),
                                    other => json_scalar(other),
                                };
                                entry.extract(name, text);
                            }
                        }
                    }
                }
                Ok(_) => entry.set_error("JSONParserErr", "not a JSON object".into()),
                Err(e) => entry.set_error("JSONParserErr", e.to_string()),
            },
            Stage::Unpack => match serde_json::from_str::<Value>(&entry.line) {
                Ok(Value::Object(map)) => {
                    for (key, value) in &map {
                        if let Value::String(text) = value {
                            if key == "_entry" {
                                entry.line = text.clone();
                            } else {
                                entry.extract(key, text.clone());
                            }
                        }
                    }
                }
                Ok(_) => entry.set_error("JSONParserErr", "not a JSON object".into()),
                Err(e) => entry.set_error("JSONParserErr", e.to_string()),
            },
            Stage::Logfmt => match logfmt_pairs(&entry.line) {
                Some(pairs) => {
                    for (key, value) in pairs {
                        entry.extract(&key, value);
                    }
                }
                None => entry.set_error("LogfmtParserErr", "malformed logfmt".into()),
            },
            Stage::Pattern(parts) => {
                if let Some(captures) = pattern_captures(parts, &entry.line) {
                    for (name, value) in captures {
                        entry.extract(&name, value);
                    }
                }
            }
            Stage::Regexp(regex) => {
                if let Some(captures) = regex.captures(&entry.line) {
                    let found: Vec<(String, String)> = regex
                        .capture_names()
                        .flatten()
                        .filter_map(|name| {
                            captures
                                .name(name)
                                .map(|m| (name.to_string(), m.as_str().to_string()))
                        })
                        .collect();
                    for (name, value) in found {
                        entry.extract(&name, value);
                    }
                }
            }
            Stage::Filter(filter) => {
                if !filter_holds(filter, entry) {
                    return false;
                }
            }
            Stage::LineFormat(parts) => entry.line = render(parts, entry),
            Stage::LabelFormat(items) => {
                for (name, value) in items {
                    match value {
                        LabelFormatValue::Rename(from) => {
                            let old = entry.get(from).unwrap_or("").to_string();
                            entry.labels.remove(from);
                            entry.labels.insert(name.clone(), old);
                        }
                        LabelFormatValue::Template(parts) => {
                            let text = render(parts, entry);
                            entry.labels.insert(name.clone(), text);
                        }
                    }
                }
            }
            Stage::Drop(matchers) => {
                for map in [&mut entry.labels, &mut entry.metadata] {
                    map.retain(|name, value| {
                        !matchers.iter().any(|m| &m.name == name && m.matches(value))
                    });
                }
            }
            Stage::Keep(matchers) => {
                for map in [&mut entry.labels, &mut entry.metadata] {
                    map.retain(|name, value| {
                        matchers.iter().any(|m| &m.name == name && m.matches(value))
                    });
                }
            }
            Stage::Decolorize => entry.line = strip_ansi(&entry.line),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;
    use crate::logql::ast::Expr;

    fn apply(query: &str, line: &str) -> Option<Entry> {
        let Expr::Log(log) = parse(query).unwrap() else {
            panic!("not a log query")
        };
        let mut entry = Entry {
            ts_ns: 0,
            line: line.into(),
            labels: [("job".to_string(), "api".to_string())].into(),
            metadata: [("trace_id".to_string(), "abc".to_string())].into(),
        };
        run(&log.stages, &mut entry).then_some(entry)
    }

    #[test]
    fn line_filters() {
        let q = r#"{job="api"} |= "time" != "debug" |~ "(?i)OUT" !~ "^x""#;
        assert!(apply(q, "timeout").is_some());
        assert!(apply(q, "timeout debug").is_none());
        assert!(apply(q, "xtimeout").is_none());
        assert!(apply(r#"{job="api"} |= "a" or "b""#, "b").is_some());
        assert!(apply(r#"{job="api"} |= ``"#, "anything").is_some());
    }

    #[test]
    fn json_and_filters() {
        let q = r#"{job="api"} | json | status >= 500 and user_name="bo" | line_format "{{.job}} {{.status}} {{.user_name}}""#;
        let e = apply(q, r#"{"status":503,"user":{"name":"bo"},"job":"x"}"#).unwrap();
        assert_eq!(e.line, "api 503 bo");
        assert_eq!(e.labels["job_extracted"], "x");
        assert!(apply(q, r#"{"status":200,"user":{"name":"bo"}}"#).is_none());
        let bad = apply(r#"{job="api"} | json"#, "not json").unwrap();
        assert_eq!(bad.labels["__error__"], "JSONParserErr");
        let dropped = apply(
            r#"{job="api"} | json | drop __error__, __error_details__"#,
            "x",
        )
        .unwrap();
        assert!(!dropped.labels.contains_key("__error__"));
        let e = apply(
            r#"{job="api"} | json code="a.b[1]""#,
            r#"{"a":{"b":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(e.labels["code"], "2");
    }

    #[test]
    fn logfmt_pattern_regexp_formats() {
        let e = apply(
            r#"{job="api"} | logfmt | duration > 1s | label_format took=duration, svc="{{.job}}-x" | keep took, svc, job"#,
            r#"level=info msg="slow call" duration=1.5s"#,
        )
        .unwrap();
        assert_eq!(e.labels.len(), 3, "{:?}", e.labels);
        assert_eq!(e.labels["took"], "1.5s");
        assert_eq!(e.labels["svc"], "api-x");
        assert!(apply(r#"{job="api"} | logfmt | duration > 2s"#, "duration=1.5s").is_none());
        assert_eq!(
            apply(r#"{job="api"} | logfmt"#, r#"a="open"#)
                .unwrap()
                .labels["__error__"],
            "LogfmtParserErr"
        );
        let e = apply(
            r#"{job="api"} | pattern "<ip> - - <_> \"<method> <path> <_>\" <status>""#,
            r#"10.0.0.1 - - [24/Nov] "GET /a HTTP/1.1" 404"#,
        )
        .unwrap();
        assert_eq!(e.labels["ip"], "10.0.0.1");
        assert_eq!(e.labels["path"], "/a");
        assert_eq!(e.labels["status"], "404");
        let e = apply(
            r#"{job="api"} | regexp "took (?P<ms>\\d+)ms" | ms > 100"#,
            "took 250ms",
        )
        .unwrap();
        assert_eq!(e.labels["ms"], "250");
        assert!(apply(r#"{job="api"} | trace_id="abc""#, "x").is_some());
        assert!(apply(r#"{job="api"} | size > 1KB"#, "x").is_none());
        assert_eq!(
            apply(r#"{job="api"} | decolorize"#, "\u{1b}[31mred\u{1b}[0m")
                .unwrap()
                .line,
            "red"
        );
    }
}
