//! Log corroboration: error counts per service and replica, window against baseline;
//! templates (numbers, ids and quoted values masked) seen in the window and absent
//! from the baseline; ERROR lines joined to spans by trace and span id; and which other
//! services a service's error lines name (a caller's "call to X failed" points at X).

use std::collections::{HashMap, HashSet};

use arrow::array::{
    Array, FixedSizeBinaryArray, Int32Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use proto::{SpanId, TraceId};

use super::spans::{ErrorLogs, Span};
use crate::{Error, Result};

/// One decoded log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Unix nanoseconds.
    pub timestamp_ns: i64,
    /// Emitting service.
    pub service: String,
    /// Emitting replica.
    pub instance: Option<String>,
    /// True for ERROR and worse.
    pub error: bool,
    /// True for WARN.
    pub warn: bool,
    /// The line.
    pub body: String,
    /// Its trace.
    pub trace_id: Option<TraceId>,
    /// Its span.
    pub span_id: Option<SpanId>,
}

fn severity(text: Option<&str>, number: i32, body: &str) -> (bool, bool) {
    if number >= 17 {
        return (true, false);
    }
    if number >= 13 {
        return (false, true);
    }
    if let Some(text) = text {
        let upper = text.to_ascii_uppercase();
        if [
            "ERROR", "FATAL", "CRITICAL", "SEVERE", "PANIC", "ERR", "CRIT", "EMERG", "ALERT",
        ]
        .contains(&upper.as_str())
        {
            return (true, false);
        }
        if upper.starts_with("WARN") {
            return (false, true);
        }
        if number > 0 || !upper.is_empty() {
            return (false, false);
        }
    }
    // No severity at all: look at the text.
    let head: String = body.chars().take(120).collect();
    (
        head.contains("ERROR") || head.contains("Exception") || head.contains("FATAL"),
        head.contains("WARN"),
    )
}

fn col<T: 'static>(batch: &RecordBatch, index: usize) -> Result<&T> {
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Internal(format!("logs batch: unexpected column {index}")))
}

/// Decodes log batches ([`storage::model::LOGS_SCHEMA`]), at most `limit` lines.
pub fn decode(batches: &[RecordBatch], limit: usize) -> Result<Vec<Line>> {
    let mut out = Vec::new();
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let ts = col::<TimestampNanosecondArray>(batch, 0)?;
        let service = col::<StringArray>(batch, 2)?;
        let instance = col::<StringArray>(batch, 3)?;
        let severity_text = col::<StringArray>(batch, 4)?;
        let severity_number = col::<Int32Array>(batch, 5)?;
        let body = col::<StringArray>(batch, 6)?;
        let trace = col::<FixedSizeBinaryArray>(batch, 7)?;
        let span = col::<FixedSizeBinaryArray>(batch, 8)?;
        for row in 0..batch.num_rows() {
            if out.len() >= limit {
                return Ok(out);
            }
            let text = severity_text
                .is_valid(row)
                .then(|| severity_text.value(row));
            let (error, warn) = severity(text, severity_number.value(row), body.value(row));
            out.push(Line {
                timestamp_ns: ts.value(row),
                service: service.value(row).to_string(),
                instance: (instance.is_valid(row) && !instance.value(row).is_empty())
                    .then(|| instance.value(row).to_string()),
                error,
                warn,
                body: body.value(row).chars().take(2_000).collect(),
                trace_id: trace
                    .is_valid(row)
                    .then(|| TraceId::from_slice(trace.value(row)))
                    .flatten()
                    .filter(|t| !t.is_zero()),
                span_id: span
                    .is_valid(row)
                    .then(|| SpanId::from_slice(span.value(row)))
                    .flatten()
                    .filter(|s| !s.is_zero()),
            });
        }
    }
    Ok(out)
}

/// The template of a line: tokens with digits, long hex or quotes become `<*>`.
pub fn template(body: &str) -> String {
    let mut out = Vec::new();
    for token in body.split_whitespace().take(24) {
        let masked = token.chars().any(|c| c.is_ascii_digit())
            || token.starts_with('"')
            || token.starts_with('\'')
            || (token.len() >= 8 && token.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        out.push(if masked { "<*>" } else { token });
    }
    let mut text = out.join(" ");
    text.truncate(300);
    text
}

/// Error and template counts of one service (or replica) in one window.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Every line.
    pub lines: u64,
    /// ERROR and worse.
    pub errors: u64,
    /// WARN.
    pub warns: u64,
    /// Templates of ERROR/WARN lines: count and one example line.
    pub templates: HashMap<String, (u64, String)>,
}

/// Log evidence of one analysis.
#[derive(Debug, Default)]
pub struct LogIndex {
    /// Per service, window.
    pub window: HashMap<String, Counts>,
    /// Per service, baseline.
    pub baseline: HashMap<String, Counts>,
    /// Per (service, instance), window error count and line count.
    pub instances: HashMap<(String, String), (u64, u64)>,
    /// Spans named by an ERROR line (trace, span), with the first such line.
    pub error_spans: HashMap<(TraceId, SpanId), String>,
    /// Traces and services of ERROR lines without a span id, with the first such line.
    pub error_traces: HashMap<(TraceId, String), String>,
    /// Example ERROR lines per (trace): service and body.
    pub error_lines: HashMap<TraceId, Vec<(String, String)>>,
    /// Per service: other services its window ERROR lines name, and how often.
    pub mentions: HashMap<String, HashMap<String, u64>>,
}

impl LogIndex {
    /// Builds the index from window and baseline lines; `services` are the names that
    /// error lines may mention.
    pub fn build(window: &[Line], baseline: &[Line], services: &HashSet<String>) -> Self {
        let mut index = LogIndex::default();
        let count = |map: &mut HashMap<String, Counts>, line: &Line| {
            let counts = map.entry(line.service.clone()).or_default();
            counts.lines += 1;
            counts.errors += line.error as u64;
            counts.warns += line.warn as u64;
            if line.error || line.warn {
                let entry = counts
                    .templates
                    .entry(template(&line.body))
                    .or_insert_with(|| (0, line.body.clone()));
                entry.0 += 1;
            }
        };
        for line in baseline {
            count(&mut index.baseline, line);
        }
        let words: Vec<&String> = services.iter().collect();
        for line in window {
            count(&mut index.window, line);
            if let Some(instance) = &line.instance {
                let entry = index
                    .instances
                    .entry((line.service.clone(), instance.clone()))
                    .or_default();
                entry.0 += line.error as u64;
                entry.1 += 1;
            }
            if !line.error {
                continue;
            }
            if let Some(trace) = line.trace_id {
                match line.span_id {
                    Some(span) => {
                        index
                            .error_spans
                            .entry((trace, span))
                            .or_insert_with(|| line.body.chars().take(500).collect());
                    }
                    None => {
                        index
                            .error_traces
                            .entry((trace, line.service.clone()))
                            .or_insert_with(|| line.body.chars().take(500).collect());
                    }
                }
                let examples = index.error_lines.entry(trace).or_default();
                if examples.len() < 4 {
                    examples.push((line.service.clone(), line.body.clone()));
                }
            }
            for other in &words {
                if **other != line.service && mentions(&line.body, other) {
                    *index
                        .mentions
                        .entry(line.service.clone())
                        .or_default()
                        .entry((*other).clone())
                        .or_default() += 1;
                }
            }
        }
        index
    }

    /// Templates of a service's ERROR/WARN lines in the window that the baseline never had.
    pub fn new_templates(&self, service: &str) -> Vec<(String, u64, String)> {
        let Some(window) = self.window.get(service) else {
            return Vec::new();
        };
        let old = self.baseline.get(service);
        let mut out: Vec<(String, u64, String)> = window
            .templates
            .iter()
            .filter(|(t, _)| old.is_none_or(|o| !o.templates.contains_key(*t)))
            .map(|(t, (n, example))| (t.clone(), *n, example.clone()))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// True when `text` names `word` as a whole word (service names with `-`/`_`/`.` inside).
fn mentions(text: &str, word: &str) -> bool {
    if word.len() < 3 {
        return false;
    }
    let boundary =
        |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let at = from + found;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if boundary(before) && boundary(after) {
            return true;
        }
        from = at + word.len();
    }
    false
}

impl ErrorLogs for LogIndex {
    fn marks(&self, span: &Span) -> bool {
        self.error_spans
            .contains_key(&(span.trace_id, span.span_id))
            || (span.kind.is_entry()
                && self
                    .error_traces
                    .contains_key(&(span.trace_id, span.service.clone())))
    }

    fn text(&self, span: &Span) -> Option<&str> {
        self.error_spans
            .get(&(span.trace_id, span.span_id))
            .or_else(|| {
                span.kind
                    .is_entry()
                    .then(|| {
                        self.error_traces
                            .get(&(span.trace_id, span.service.clone()))
                    })
                    .flatten()
            })
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(service: &str, error: bool, body: &str) -> Line {
        Line {
            timestamp_ns: 0,
            service: service.into(),
            instance: Some(format!("{service}-0")),
            error,
            warn: false,
            body: body.into(),
            trace_id: Some(TraceId([1; 16])),
            span_id: None,
        }
    }

    #[test]
    fn templates_mask_variable_parts() {
        assert_eq!(
            template("Timeout after 3000ms talking to 10.0.0.7 id=ab12"),
            "Timeout after <*> talking to <*> <*>"
        );
        assert_eq!(template("user \"bob\" failed"), "user <*> failed");
    }

    #[test]
    fn new_templates_and_mentions() {
        let services: HashSet<String> = ["orders".into(), "pay".into(), "payments".into()].into();
        let baseline = vec![line("orders", true, "slow request 12ms")];
        let window = vec![
            line("orders", true, "call to payments failed: 500"),
            line("orders", true, "slow request 15ms"),
            line("payments", true, "NullPointerException at Charge.java:42"),
        ];
        let index = LogIndex::build(&window, &baseline, &services);
        let new = index.new_templates("orders");
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].0, "call to payments failed: <*>");
        assert_eq!(index.mentions["orders"]["payments"], 1);
        assert!(!index.mentions["orders"].contains_key("pay"));
        assert_eq!(index.window["payments"].errors, 1);
        assert!(
            index
                .error_traces
                .contains_key(&(TraceId([1; 16]), "payments".into()))
        );
        assert_eq!(severity(Some("warning"), 0, ""), (false, true));
        assert_eq!(severity(None, 0, "ERROR boom"), (true, false));
        assert_eq!(severity(Some("INFO"), 9, "ERROR in text"), (false, false));
    }
}
