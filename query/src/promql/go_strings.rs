//! Go string-literal semantics the parser cannot represent: in PromQL (Go), `"\xc5"` is
//! the single byte 0xC5, so a literal may hold bytes that are not UTF-8, and a label
//! name made of them is invalid (`count_values("a\xc5z", …)` fails). `promql-parser`
//! decodes `\xNN` as the character U+00NN instead.
//!
//! Before parsing, [`encode_byte_escapes`] rewrites each string literal whose Go bytes
//! contain a byte escape of 0x80 or more: the valid UTF-8 parts become the characters
//! they spell (so `"\xc3\xa9"` is `é`, as in Go), and each byte that is not part of valid
//! UTF-8 becomes a private-use character U+10FF80..U+10FFFF standing for it, which
//! [`valid_label_name`] refuses and [`go_quote`] prints back as `\xNN`.

use std::borrow::Cow;

/// First character standing for a raw byte (byte 0x80 → U+10FF80).
const RAW_BYTE_BASE: u32 = 0x10FF00;

fn raw_byte(c: char) -> Option<u8> {
    let code = c as u32;
    (RAW_BYTE_BASE + 0x80..=RAW_BYTE_BASE + 0xFF)
        .contains(&code)
        .then(|| (code - RAW_BYTE_BASE) as u8)
}

/// Whether `name` may be a label name: not empty, and valid UTF-8 in Go terms.
pub(crate) fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| raw_byte(c).is_some())
}

/// Quotes `text` as Go's `%q` does for the characters that matter in error messages:
/// raw bytes as `\xNN`, quotes and backslashes escaped.
pub(crate) fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match (c, raw_byte(c)) {
            (_, Some(b)) => out.push_str(&format!("\\x{b:02x}")),
            ('"', _) => out.push_str("\\\""),
            ('\\', _) => out.push_str("\\\\"),
            (c, _) => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Rewrites the string literals of `query` whose Go decoding has byte escapes of 0x80
/// or more (see the module docs); every other byte of the query is kept.
pub(crate) fn encode_byte_escapes(query: &str) -> Cow<'_, str> {
    if !query.contains("\\x") && !query.contains("\\X") && !has_octal_escape(query) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    let mut changed = false;
    let mut rest = query;
    while let Some(pos) = rest.find(['"', '\'', '`', '#']) {
        out.push_str(&rest[..pos]);
        let delimiter = rest.as_bytes()[pos];
        let tail = &rest[pos..];
        let end = match delimiter {
            b'#' => tail.find('\n').unwrap_or(tail.len()),
            b'`' => tail[1..].find('`').map_or(tail.len(), |i| i + 2),
            quote => literal_end(tail, quote),
        };
        let token = &tail[..end];
        match (delimiter, decode_high_bytes(token)) {
            (b'"' | b'\'', Some(bytes)) => {
                out.push_str(&encode_literal(&bytes));
                changed = true;
            }
            _ => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(query)
    }
}

fn has_octal_escape(query: &str) -> bool {
    let bytes = query.as_bytes();
    bytes
        .windows(2)
        .any(|w| w[0] == b'\\' && (b'0'..=b'3').contains(&w[1]))
}

/// Length of the quoted literal at the start of `text` (through its closing quote, or
/// the whole text when it is not closed).
fn literal_end(text: &str, quote: u8) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Decodes a quoted literal as Go does when it has a byte escape of 0x80 or more and
/// its bytes are then not all valid UTF-8 or differ from what the parser would read;
/// `None` when it has no such escape or does not decode (the parser reports that).
fn decode_high_bytes(literal: &str) -> Option<Vec<u8>> {
    if literal.len() < 2 {
        return None;
    }
    let inner = &literal[1..literal.len() - 1];
    let mut bytes = Vec::with_capacity(inner.len());
    let mut high_byte = false;
    let mut chars = inner.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut buffer = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        let (_, escape) = chars.next()?;
        let digits = |n: usize| inner.get(i + 2..i + 2 + n);
        match escape {
            'a' => bytes.push(0x07),
            'b' => bytes.push(0x08),
            'f' => bytes.push(0x0c),
            'n' => bytes.push(b'\n'),
            'r' => bytes.push(b'\r'),
            't' => bytes.push(b'\t'),
            'v' => bytes.push(0x0b),
            '\\' | '"' | '\'' => bytes.push(escape as u8),
            'x' | 'X' => {
                let b = u8::from_str_radix(digits(2)?, 16).ok()?;
                high_byte |= b >= 0x80;
                bytes.push(b);
                chars.nth(1)?;
            }
            '0'..='7' => {
                let text = inner.get(i + 1..i + 4)?;
                let b = u8::from_str_radix(text, 8).ok()?;
                high_byte |= b >= 0x80;
                bytes.push(b);
                chars.nth(1)?;
            }
            'u' | 'U' => {
                let n = if escape == 'u' { 4 } else { 8 };
                let code = u32::from_str_radix(digits(n)?, 16).ok()?;
                let c = char::from_u32(code)?;
                let mut buffer = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                chars.nth(n - 1)?;
            }
            _ => return None,
        }
    }
    high_byte.then_some(bytes)
}

/// A double-quoted literal the parser decodes to `bytes`, raw bytes as private-use
/// characters.
fn encode_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\U{:08x}", RAW_BYTE_BASE + u32::from(*b)));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_bytes_become_raw_byte_characters() {
        let query = encode_byte_escapes(r#"count_values("a\xc5z", version)"#);
        let expr = promql_parser::parser::parse(&query).unwrap();
        let promql_parser::parser::Expr::Aggregate(aggregate) = expr else {
            panic!("not an aggregation");
        };
        let Some(param) = aggregate.param.as_deref() else {
            panic!("no parameter");
        };
        let promql_parser::parser::Expr::StringLiteral(name) = param else {
            panic!("not a string");
        };
        assert!(!valid_label_name(&name.val));
        assert_eq!(go_quote(&name.val), r#""a\xc5z""#);
    }

    #[test]
    fn valid_utf8_escapes_spell_their_characters() {
        let query = encode_byte_escapes(r#"label_replace(x, "\xc3\xa9", "", "a", "(.*)")"#);
        assert!(query.contains("\"é\""), "{query}");
        assert!(valid_label_name("é"));
    }

    #[test]
    fn other_queries_are_kept() {
        for query in [
            r#"x{a="\x41"}"#,
            r#"x{a=`\xff`}"#,
            "x # \"\\xff\n",
            r#"label_join(x, "d", "\\xff", "a")"#,
        ] {
            assert!(
                matches!(encode_byte_escapes(query), Cow::Borrowed(_)),
                "{query}"
            );
        }
    }
}
