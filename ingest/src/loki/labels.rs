//! The stream label text of Loki's protobuf push: a LogQL stream selector with
//! only `=` matchers, e.g. `{job="api", level="error"}`.

/// Parses `{name="value", …}` into pairs in order. Values use Go string escapes.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = text.trim().chars().peekable();
    let fail = |what: &str| format!("invalid stream labels {}: {what}", shorten(text));
    if chars.next() != Some('{') {
        return Err(fail("expected '{'"));
    }
    let mut out = Vec::new();
    loop {
        skip_spaces(&mut chars);
        match chars.peek() {
            Some('}') => {
                chars.next();
                break;
            }
            None => return Err(fail("missing '}'")),
            _ => {}
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(fail("expected a label name"));
        }
        skip_spaces(&mut chars);
        if chars.next() != Some('=') {
            return Err(fail(&format!("expected '=' after label {name:?}")));
        }
        if chars.peek().is_some_and(|c| matches!(c, '~' | '=')) {
            return Err(fail("only '=' matchers are allowed"));
        }
        skip_spaces(&mut chars);
        if chars.next() != Some('"') {
            return Err(fail(&format!("expected a quoted value for label {name:?}")));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(fail("unterminated quoted value")),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                    _ => return Err(fail("unsupported escape in quoted value")),
                },
                Some(c) => value.push(c),
            }
        }
        out.push((name, value));
        skip_spaces(&mut chars);
        match chars.next() {
            Some(',') => {}
            Some('}') => break,
            _ => return Err(fail("expected ',' or '}'")),
        }
    }
    skip_spaces(&mut chars);
    if chars.next().is_some() {
        return Err(fail("unexpected text after '}'"));
    }
    Ok(out)
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(
            parse_labels(r#"{job="api", level="error"}"#).unwrap(),
            pairs(&[("job", "api"), ("level", "error")])
        );
        assert_eq!(
            parse_labels(r#" { app = "支付" ,msg="a \"q\" \\ b\n" } "#).unwrap(),
            pairs(&[("app", "支付"), ("msg", "a \"q\" \\ b\n")])
        );
        assert_eq!(parse_labels("{}").unwrap(), pairs(&[]));
        assert_eq!(parse_labels(r#"{a="1",}"#).unwrap(), pairs(&[("a", "1")]));
    }

    #[test]
    fn bad_selectors_are_refused() {
        for bad in [
            "",
            "job=\"api\"",
            "{job=\"api\"",
            "{job=~\"a.*\"}",
            "{job!=\"a\"}",
            "{job=api}",
            "{1job=\"a\"}",
            "{job=\"a\"} extra",
            "{job=\"a\\q\"}",
            "{job=\"unterminated}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad:?} accepted");
        }
    }
}
