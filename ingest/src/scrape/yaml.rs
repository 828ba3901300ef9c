//! The YAML subset Prometheus file-SD target files are written in, read into a JSON
//! value (every scalar as a string, as the file-SD schema has only strings): block
//! sequences and mappings by indentation (a sequence may sit at its key's indent),
//! flow `[…]` / `{…}`, plain, `'single'` and `"double"` quoted scalars, `#` comments,
//! `---`. Anchors, tags, multi-line scalars and multiple documents are refused with a
//! message rather than misread.

use serde_json::{Map, Value};

/// Deepest nesting accepted (flow or block), so hostile input cannot recurse deeply.
const MAX_DEPTH: usize = 32;

/// Parses one document.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut lines = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let content = strip_comment(raw);
        let trimmed = content.trim_end();
        if trimmed.trim().is_empty() {
            continue;
        }
        if trimmed == "---" && lines.is_empty() {
            continue;
        }
        if trimmed == "---" || trimmed == "..." {
            return Err(format!(
                "line {}: only one YAML document is read",
                number + 1
            ));
        }
        if trimmed.contains('\t') && trimmed.trim_start_matches(' ').starts_with('\t') {
            return Err(format!(
                "line {}: tabs are not allowed for indentation",
                number + 1
            ));
        }
        let indent = trimmed.len() - trimmed.trim_start().len();
        let body = trimmed.trim_start();
        if body.starts_with(['&', '*', '!', '|', '>', '%', '?']) {
            return Err(format!(
                "line {}: anchors, tags, block scalars and directives are not supported",
                number + 1
            ));
        }
        lines.push(Line {
            number: number + 1,
            indent,
            text: body.to_string(),
        });
    }
    if lines.is_empty() {
        return Ok(Value::Null);
    }
    let mut parser = Block { lines, next: 0 };
    let indent = parser.lines[0].indent;
    let value = parser.node(indent, 0)?;
    if let Some(line) = parser.lines.get(parser.next) {
        return Err(format!("line {}: unexpected indentation", line.number));
    }
    Ok(value)
}

struct Line {
    number: usize,
    indent: usize,
    text: String,
}

struct Block {
    lines: Vec<Line>,
    next: usize,
}

impl Block {
    fn node(&mut self, indent: usize, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("nesting is too deep".to_string());
        }
        let line = &self.lines[self.next];
        if is_sequence_item(&line.text) {
            self.sequence(indent, depth)
        } else if split_key(&line.text).is_some() {
            self.mapping(indent, depth)
        } else {
            let line = &self.lines[self.next];
            let value = flow_value(&line.text, line.number)?;
            self.next += 1;
            Ok(value)
        }
    }

    fn sequence(&mut self, indent: usize, depth: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.next) {
            if line.indent != indent || !is_sequence_item(&line.text) {
                break;
            }
            let rest = line.text[1..].trim_start().to_string();
            if rest.is_empty() {
                self.next += 1;
                match self.lines.get(self.next) {
                    Some(child) if child.indent > indent => {
                        let child_indent = child.indent;
                        items.push(self.node(child_indent, depth + 1)?);
                    }
                    _ => items.push(Value::Null),
                }
            } else {
                // "- key: value" opens a mapping at the column of "key".
                let offset = line.text.len() - rest.len();
                let line = &mut self.lines[self.next];
                line.indent = indent + offset;
                line.text = rest;
                let child_indent = line.indent;
                items.push(self.node(child_indent, depth + 1)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize, depth: usize) -> Result<Value, String> {
        let mut map = Map::new();
        while let Some(line) = self.lines.get(self.next) {
            if line.indent != indent {
                if line.indent > indent {
                    return Err(format!("line {}: unexpected indentation", line.number));
                }
                break;
            }
            let number = line.number;
            let Some((key, value)) = split_key(&line.text) else {
                return Err(format!("line {number}: expected \"key: value\""));
            };
            let key = scalar(key.trim(), number)?;
            let value = value.trim().to_string();
            self.next += 1;
            let value = if !value.is_empty() {
                flow_value(&value, number)?
            } else {
                match self.lines.get(self.next) {
                    Some(child) if child.indent > indent => {
                        let child_indent = child.indent;
                        self.node(child_indent, depth + 1)?
                    }
                    Some(child) if child.indent == indent && is_sequence_item(&child.text) => {
                        self.sequence(indent, depth + 1)?
                    }
                    _ => Value::Null,
                }
            };
            if map.insert(key.clone(), value).is_some() {
                return Err(format!("line {number}: key {key:?} is repeated"));
            }
        }
        Ok(Value::Object(map))
    }
}

fn is_sequence_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Splits `key: value` (or `key:` at the end), outside quotes and brackets.
fn split_key(text: &str) -> Option<(&str, &str)> {
    if text.starts_with(['[', '{']) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut quote = None;
    for (i, &byte) in bytes.iter().enumerate() {
        match quote {
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            None if byte == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') => {
                return Some((&text[..i], &text[i + 1..]));
            }
            None => {}
        }
    }
    None
}

/// Drops a `#` comment that starts the line or follows a space, outside quotes.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut quote = None;
    for (i, &byte) in bytes.iter().enumerate() {
        match quote {
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            None if byte == b'#' && (i == 0 || bytes[i - 1] == b' ') => return &line[..i],
            None => {}
        }
    }
    line
}

/// A value written on one line: flow collection or scalar.
fn flow_value(text: &str, number: usize) -> Result<Value, String> {
    if text.trim_start().starts_with(['&', '*', '!', '|', '>']) {
        return Err(format!(
            "line {number}: anchors, aliases, tags and block scalars are not supported"
        ));
    }
    let mut flow = Flow {
        chars: text.char_indices().collect(),
        text,
        at: 0,
        number,
    };
    let value = flow.value(0)?;
    flow.skip_spaces();
    if flow.at != flow.chars.len() {
        return Err(format!("line {number}: unexpected text after the value"));
    }
    Ok(value)
}

/// A one-line scalar (plain or quoted) as a string.
fn scalar(text: &str, number: usize) -> Result<String, String> {
    match flow_value(text, number)? {
        Value::String(s) => Ok(s),
        _ => Err(format!("line {number}: expected a scalar")),
    }
}

struct Flow<'a> {
    chars: Vec<(usize, char)>,
    text: &'a str,
    at: usize,
    number: usize,
}

impl Flow<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("line {}: {what}", self.number)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting is too deep"));
        }
        self.skip_spaces();
        match self.peek() {
            Some('[') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some(']') => {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        None => return Err(self.error("unclosed [")),
                        _ => {}
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_spaces();
                    match self.peek() {
                        Some(',') => self.at += 1,
                        Some(']') => {}
                        _ => return Err(self.error("expected , or ]")),
                    }
                }
            }
            Some('{') => {
                self.at += 1;
                let mut map = Map::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some('}') => {
                            self.at += 1;
                            return Ok(Value::Object(map));
                        }
                        None => return Err(self.error("unclosed {")),
                        _ => {}
                    }
                    let Value::String(key) = self.scalar(true)? else {
                        return Err(self.error("expected a key"));
                    };
                    self.skip_spaces();
                    if self.peek() != Some(':') {
                        return Err(self.error("expected : after a key"));
                    }
                    self.at += 1;
                    let value = self.value(depth + 1)?;
                    map.insert(key, value);
                    self.skip_spaces();
                    match self.peek() {
                        Some(',') => self.at += 1,
                        Some('}') => {}
                        _ => return Err(self.error("expected , or }")),
                    }
                }
            }
            _ => self.scalar(depth > 0),
        }
    }

    /// A quoted or plain scalar; inside flow collections plain ones end at `,:]}`.
    fn scalar(&mut self, in_flow: bool) -> Result<Value, String> {
        self.skip_spaces();
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.at += 1;
                let mut out = String::new();
                loop {
                    let Some(c) = self.peek() else {
                        return Err(self.error("unclosed quote"));
                    };
                    self.at += 1;
                    if c == quote {
                        if quote == '\'' && self.peek() == Some('\'') {
                            self.at += 1;
                            out.push('\'');
                            continue;
                        }
                        return Ok(Value::String(out));
                    }
                    if c == '\\' && quote == '"' {
                        let Some(escaped) = self.peek() else {
                            return Err(self.error("unclosed quote"));
                        };
                        self.at += 1;
                        out.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            '0' => '\0',
                            other => other,
                        });
                        continue;
                    }
                    out.push(c);
                }
            }
            _ => {
                let start = self.chars.get(self.at).map_or(self.text.len(), |(i, _)| *i);
                while let Some(c) = self.peek() {
                    if in_flow && matches!(c, ',' | ']' | '}') {
                        break;
                    }
                    if in_flow
                        && c == ':'
                        && matches!(self.chars.get(self.at + 1), None | Some((_, ' ')))
                    {
                        break;
                    }
                    self.at += 1;
                }
                let end = self.chars.get(self.at).map_or(self.text.len(), |(i, _)| *i);
                let plain = self.text[start..end].trim();
                if plain == "~" || plain == "null" {
                    return Ok(Value::Null);
                }
                Ok(Value::String(plain.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_sd_shapes_parse() {
        let text = r#"
# targets of the web tier
- targets:
  - web-1:8080   # first
  - "web-2:8080"
  labels:
    env: prod
    team: 'a''s'
- targets: [db-1:9104, 'db-2:9104']
  labels: {env: prod, role: db}
-   targets:
      - cache:9121
"#;
        assert_eq!(
            parse(text).unwrap(),
            json!([
                {"targets": ["web-1:8080", "web-2:8080"], "labels": {"env": "prod", "team": "a's"}},
                {"targets": ["db-1:9104", "db-2:9104"], "labels": {"env": "prod", "role": "db"}},
                {"targets": ["cache:9121"]}
            ])
        );
        assert_eq!(parse("---\n[]\n").unwrap(), json!([]));
        assert_eq!(parse("").unwrap(), Value::Null);
    }

    #[test]
    fn unsupported_or_broken_yaml_is_an_error() {
        for text in [
            "- &a x\n",
            "- [a, b\n",
            "a: 1\na: 2\n",
            "- a\n---\n- b\n",
            "a:\n    b: 1\n  c: 2\n",
            "key: |\n  text\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
