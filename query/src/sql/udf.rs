//! `match(body, 'words')`: full-text search on log bodies.
//!
//! Meaning: every word of the query (a run of letters and digits) occurs in the body as
//! a whole word, ignoring case; a word followed by `*` matches any word it starts.
//! It is the storage [`TextQuery`] of the log index, so on the `logs` table the
//! predicate is pushed into the tantivy index (candidates confirmed on the body); the
//! function itself evaluates the same meaning on any string, after joins included.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use storage::TextQuery;

/// The SQL name of the text-search function.
pub const MATCH_NAME: &str = "match";

/// Parses a `match` query into the storage text query.
pub fn parse_text_query(query: &str) -> std::result::Result<TextQuery, String> {
    let mut parts = Vec::new();
    let mut chars = query.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_alphanumeric() {
            continue;
        }
        let mut end = query.len();
        while let Some((i, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                end = *i;
                break;
            }
            chars.next();
        }
        let word = query[start..end].to_string();
        if chars.peek().is_some_and(|(_, c)| *c == '*') {
            parts.push(TextQuery::Prefix(word));
        } else {
            parts.push(TextQuery::Term(word));
        }
    }
    match parts.len() {
        0 => Err(format!(
            "match(): query {query:?} has no word to search for"
        )),
        1 => Ok(parts.remove(0)),
        _ => Ok(TextQuery::And(parts)),
    }
}

/// The `match(text, query)` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MatchFunction {
    signature: Signature,
}

impl MatchFunction {
    /// Creates the function.
    pub fn new() -> Self {
        MatchFunction {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl Default for MatchFunction {
    fn default() -> Self {
        Self::new()
    }
}

fn as_strings(array: &Arc<dyn Array>) -> Result<StringArray> {
    let utf8 = cast(array, &DataType::Utf8)?;
    utf8.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("cast to Utf8 gave another type".into()))
}

impl ScalarUDFImpl for MatchFunction {
    fn name(&self) -> &str {
        MATCH_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [bodies, queries] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(
                "match() takes two arguments: match(body, 'words')".into(),
            ));
        };
        let bodies = as_strings(bodies)?;
        let queries = as_strings(queries)?;
        let mut parsed: Option<(String, TextQuery)> = None;
        let mut out = Vec::with_capacity(bodies.len());
        for row in 0..bodies.len() {
            if bodies.is_null(row) || queries.is_null(row) {
                out.push(None);
                continue;
            }
            let text = queries.value(row);
            if parsed.as_ref().is_none_or(|(last, _)| last != text) {
                let query = parse_text_query(text).map_err(DataFusionError::Plan)?;
                parsed = Some((text.to_string(), query));
            }
            let (_, query) = parsed.as_ref().expect("parsed just above");
            out.push(Some(query.matches(bodies.value(row))));
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_into_words_and_prefixes() {
        assert_eq!(
            parse_text_query("Timeout").unwrap(),
            TextQuery::Term("Timeout".into())
        );
        assert_eq!(
            parse_text_query("connection refus*").unwrap(),
            TextQuery::And(vec![
                TextQuery::Term("connection".into()),
                TextQuery::Prefix("refus".into())
            ])
        );
        assert!(parse_text_query(" -- ").is_err());
        let query = parse_text_query("timed-out").unwrap();
        assert!(query.matches("request TIMED OUT after 2s"));
        assert!(!query.matches("request timed after 2s"));
    }
}
