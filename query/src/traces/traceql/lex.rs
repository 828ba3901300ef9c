//! TraceQL tokens.

use crate::{Error, Result};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// `{`
    OpenBrace,
    /// `}`
    CloseBrace,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// `,`
    Comma,
    /// `|`
    Pipe,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `!`
    Not,
    /// A comparison or structural operator: `= != > >= < <= =~ !~ >> << ~`.
    Op(&'static str),
    /// A name: intrinsic, attribute path, keyword or function.
    Ident(String),
    /// A quoted string.
    Str(String),
    /// A number, kept as written.
    Number(String),
    /// A duration, in nanoseconds.
    Duration(i64),
}

fn bad(message: String) -> Error {
    Error::BadRequest(format!("invalid TraceQL query: {message}"))
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '/')
}

fn read_string(chars: &[char], mut at: usize) -> Result<(String, usize)> {
    let quote = chars[at];
    at += 1;
    let mut out = String::new();
    while at < chars.len() {
        match chars[at] {
            '\\' if at + 1 < chars.len() => {
                out.push(match chars[at + 1] {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
                at += 2;
            }
            c if c == quote => return Ok((out, at + 1)),
            c => {
                out.push(c);
                at += 1;
            }
        }
    }
    Err(bad("unterminated string".to_string()))
}

fn duration_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Splits a query into tokens.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        if c.is_whitespace() {
            at += 1;
            continue;
        }
        let two: String = chars[at..(at + 2).min(chars.len())].iter().collect();
        let (token, width) = match (c, two.as_str()) {
            (_, "&&") => (Token::And, 2),
            (_, "||") => (Token::Or, 2),
            (_, "!=") => (Token::Op("!="), 2),
            (_, "=~") => (Token::Op("=~"), 2),
            (_, "!~") => (Token::Op("!~"), 2),
            (_, ">=") => (Token::Op(">="), 2),
            (_, "<=") => (Token::Op("<="), 2),
            (_, ">>") => (Token::Op(">>"), 2),
            (_, "<<") => (Token::Op("<<"), 2),
            ('{', _) => (Token::OpenBrace, 1),
            ('}', _) => (Token::CloseBrace, 1),
            ('(', _) => (Token::OpenParen, 1),
            (')', _) => (Token::CloseParen, 1),
            (',', _) => (Token::Comma, 1),
            ('|', _) => (Token::Pipe, 1),
            ('!', _) => (Token::Not, 1),
            ('=', _) => (Token::Op("="), 1),
            ('>', _) => (Token::Op(">"), 1),
            ('<', _) => (Token::Op("<"), 1),
            ('~', _) => (Token::Op("~"), 1),
            ('"' | '`', _) => {
                let (text, end) = read_string(&chars, at)?;
                tokens.push(Token::Str(text));
                at = end;
                continue;
            }
            _ if c.is_ascii_digit()
                || (matches!(c, '-' | '.') && next.is_some_and(|n| n.is_ascii_digit())) =>
            {
                let start = at;
                at += 1;
                while at < chars.len() && (chars[at].is_ascii_digit() || chars[at] == '.') {
                    at += 1;
                }
                let number: String = chars[start..at].iter().collect();
                let unit_start = at;
                while at < chars.len() && (chars[at].is_alphabetic()) {
                    at += 1;
                }
                let unit: String = chars[unit_start..at].iter().collect();
                if unit.is_empty() {
                    tokens.push(Token::Number(number));
                } else {
                    let scale = duration_unit(&unit)
                        .ok_or_else(|| bad(format!("unknown duration unit {unit:?}")))?;
                    let value: f64 = number
                        .parse()
                        .map_err(|_| bad(format!("bad duration {number}{unit}")))?;
                    tokens.push(Token::Duration((value * scale).round() as i64));
                }
                continue;
            }
            _ if c.is_alphabetic() || c == '.' || c == '_' => {
                let mut ident = String::new();
                loop {
                    while at < chars.len() && is_ident_char(chars[at]) {
                        ident.push(chars[at]);
                        at += 1;
                    }
                    // `span."http.url"`: a quoted segment after a dot.
                    if ident.ends_with('.') && chars.get(at) == Some(&'"') {
                        let (segment, end) = read_string(&chars, at)?;
                        ident.push_str(&segment);
                        at = end;
                        continue;
                    }
                    break;
                }
                tokens.push(Token::Ident(ident));
                continue;
            }
            _ => return Err(bad(format!("unexpected character {c:?} at {at}"))),
        };
        tokens.push(token);
        at += width;
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let tokens =
            tokenize(r#"{ span."http.url" =~ "a\"b" && duration >= 1.5s } >> {}"#).unwrap();
        assert_eq!(
            tokens,
            [
                Token::OpenBrace,
                Token::Ident("span.http.url".into()),
                Token::Op("=~"),
                Token::Str("a\"b".into()),
                Token::And,
                Token::Ident("duration".into()),
                Token::Op(">="),
                Token::Duration(1_500_000_000),
                Token::CloseBrace,
                Token::Op(">>"),
                Token::OpenBrace,
                Token::CloseBrace,
            ]
        );
        assert_eq!(
            tokenize("-3 250us 2m").unwrap(),
            [
                Token::Number("-3".into()),
                Token::Duration(250_000),
                Token::Duration(120_000_000_000)
            ]
        );
        assert!(tokenize("{ a = 3x }").is_err());
        assert!(tokenize("{ a = \"open }").is_err());
    }
}
