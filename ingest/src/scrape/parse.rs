//! Prometheus text exposition 0.0.4 and OpenMetrics 1.0 text parser.
//!
//! Line based, no allocation beyond the samples it returns. Every error names the
//! 1-based line. Samples keep their own timestamps (text: integer ms; OpenMetrics:
//! float seconds) for the caller to use or ignore. `<family>_created` samples of
//! counters, histograms and summaries are dropped, as Prometheus does.

use std::collections::HashMap;

use storage::metrics::{MetricMetadata, MetricType};

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// Picks the format from a response `Content-Type` (absent or unknown: text).
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(value)
                if value
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// A parse failure: the line it happened on and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// An OpenMetrics exemplar attached to a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExemplar {
    /// Exemplar labels (`trace_id`, `span_id`…).
    pub labels: Vec<(String, String)>,
    /// Exemplar value.
    pub value: f64,
    /// Its timestamp in ms, when given.
    pub ts_ms: Option<i64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// Metric name (the series name, e.g. `foo_bucket`).
    pub name: String,
    /// Labels in line order, `__name__` not included.
    pub labels: Vec<(String, String)>,
    /// The value (NaN and ±Inf included).
    pub value: f64,
    /// Its own timestamp in ms, when given.
    pub ts_ms: Option<i64>,
    /// Its exemplar (OpenMetrics only).
    pub exemplar: Option<ParsedExemplar>,
}

/// Everything a scrape body held.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Sample lines, in order.
    pub samples: Vec<ParsedSample>,
    /// One entry per family with `# HELP`, `# TYPE` or `# UNIT`.
    pub metadata: Vec<MetricMetadata>,
}

/// Why parsing stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body is malformed.
    #[error(transparent)]
    Syntax(#[from] ParseError),
    /// More samples than the limit.
    #[error("sample limit of {0} exceeded")]
    SampleLimit(usize),
}

struct Families {
    metadata: Vec<MetricMetadata>,
    by_name: HashMap<String, usize>,
}

impl Families {
    fn entry(&mut self, name: &str) -> &mut MetricMetadata {
        let index = *self.by_name.entry(name.to_string()).or_insert_with(|| {
            self.metadata.push(MetricMetadata {
                metric: name.to_string(),
                ..MetricMetadata::default()
            });
            self.metadata.len() - 1
        });
        &mut self.metadata[index]
    }

    /// True when `name` is the `_created` series of a family that has one.
    fn is_created_series(&self, name: &str) -> bool {
        let Some(family) = name.strip_suffix("_created") else {
            return false;
        };
        self.by_name
            .get(family)
            .and_then(|index| self.metadata.get(*index))
            .is_some_and(|meta| {
                matches!(
                    meta.kind,
                    MetricType::Counter
                        | MetricType::Histogram
                        | MetricType::Summary
                        | MetricType::GaugeHistogram
                )
            })
    }
}

/// Parses a whole body. `sample_limit` 0 means no limit.
pub fn parse(body: &[u8], format: Format, sample_limit: usize) -> Result<Parsed, Error> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        ParseError {
            line,
            message: "invalid utf-8".to_string(),
        }
    })?;
    let mut families = Families {
        metadata: Vec::new(),
        by_name: HashMap::new(),
    };
    let mut samples = Vec::new();
    let mut saw_eof = false;
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, raw_line)) = lines.next() {
        let number = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let error = |message: String| ParseError {
            line: number,
            message,
        };
        if saw_eof {
            // Only the newline after `# EOF` may follow it.
            if line.is_empty() && lines.peek().is_none() {
                break;
            }
            return Err(error("content after # EOF".to_string()).into());
        }
        if line.trim().is_empty() {
            if format == Format::OpenMetrics && lines.peek().is_some() {
                return Err(error("empty line".to_string()).into());
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if format == Format::OpenMetrics && comment == " EOF" {
                saw_eof = true;
                continue;
            }
            parse_comment(comment, format, &mut families).map_err(error)?;
            continue;
        }
        let sample = parse_sample(line, format).map_err(error)?;
        if families.is_created_series(&sample.name) {
            continue;
        }
        if sample_limit > 0 && samples.len() >= sample_limit {
            return Err(Error::SampleLimit(sample_limit));
        }
        samples.push(sample);
    }
    if format == Format::OpenMetrics && !saw_eof {
        return Err(ParseError {
            line: text.split('\n').count(),
            message: "missing # EOF at the end".to_string(),
        }
        .into());
    }
    Ok(Parsed {
        samples,
        metadata: families.metadata,
    })
}

/// Handles the text after `#`: HELP, TYPE, UNIT; other comments are ignored.
fn parse_comment(comment: &str, format: Format, families: &mut Families) -> Result<(), String> {
    let comment = comment.trim_start_matches([' ', '\t']);
    let (keyword, rest) = comment.split_once([' ', '\t']).unwrap_or((comment, ""));
    let keyword_known =
        matches!(keyword, "HELP" | "TYPE") || (keyword == "UNIT" && format == Format::OpenMetrics);
    if !keyword_known {
        return Ok(());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (name, value) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?} in # {keyword}"));
    }
    match keyword {
        "HELP" => {
            let help = if format == Format::Text {
                value.trim_start_matches([' ', '\t'])
            } else {
                value
            };
            families.entry(name).help = unescape(help, format == Format::OpenMetrics)?;
        }
        "TYPE" => {
            let kind = match (value.trim(), format) {
                ("counter", _) => MetricType::Counter,
                ("gauge", _) => MetricType::Gauge,
                ("histogram", _) => MetricType::Histogram,
                ("summary", _) => MetricType::Summary,
                ("untyped", Format::Text) | ("unknown", Format::OpenMetrics) => MetricType::Unknown,
                ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
                ("info", Format::OpenMetrics) => MetricType::Info,
                ("stateset", Format::OpenMetrics) => MetricType::StateSet,
                (other, _) => return Err(format!("unknown metric type {other:?}")),
            };
            families.entry(name).kind = kind;
        }
        _ => families.entry(name).unit = value.trim().to_string(),
    }
    Ok(())
}

/// Returns true for `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Resolves `\\`, `\n` and (for label values and OpenMetrics help) `\"`.
fn unescape(text: &str, quotes: bool) -> Result<String, String> {
    if !text.contains('\\') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            // The text format keeps unknown escapes as written.
            Some(other) if !quotes => {
                out.push('\\');
                out.push(other);
            }
            Some(other) => return Err(format!("invalid escape \\{other}")),
            None => out.push('\\'),
        }
    }
    Ok(out)
}

/// A cursor over one line.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn skip_blanks(&mut self) -> bool {
        let before = self.position;
        let rest = self.rest();
        self.position += rest.len() - rest.trim_start_matches([' ', '\t']).len();
        self.position > before
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    /// Takes bytes while `keep` holds.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.position;
        while self.peek().is_some_and(&keep) {
            self.position += 1;
        }
        &self.text[start..self.position]
    }

    /// Takes a token up to the next blank.
    fn token(&mut self) -> &'a str {
        self.take_while(|b| b != b' ' && b != b'\t')
    }

    /// Reads `{name="value",…}` after the `{`.
    fn labels(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut labels = Vec::new();
        loop {
            self.skip_blanks();
            if self.eat(b'}') {
                return Ok(labels);
            }
            let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !super::config::is_label_name(name) {
                return Err(format!(
                    "invalid label name at {:?}",
                    truncate(self.rest(), 32)
                ));
            }
            self.skip_blanks();
            if !self.eat(b'=') {
                return Err(format!("expected '=' after label name {name:?}"));
            }
            self.skip_blanks();
            if !self.eat(b'"') {
                return Err(format!("expected '\"' to open the value of label {name:?}"));
            }
            let value = self
                .quoted()
                .ok_or_else(|| format!("the value of label {name:?} is not closed with '\"'"))?;
            let value = unescape(value, true)?;
            if labels.iter().any(|(existing, _)| existing == name) {
                return Err(format!("duplicate label name {name:?}"));
            }
            labels.push((name.to_string(), value));
            self.skip_blanks();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(labels);
            }
            return Err(format!("expected ',' or '}}' after label {name:?}"));
        }
    }

    /// Returns the raw text up to the closing unescaped `"` and moves past it.
    fn quoted(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut index = start;
        while let Some(byte) = bytes.get(index) {
            match byte {
                b'\\' => index += 2,
                b'"' => {
                    self.position = index + 1;
                    return Some(&self.text[start..index]);
                }
                _ => index += 1,
            }
        }
        None
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// Parses a float as the exposition formats write it (`NaN`, `+Inf`, `-Inf` included).
fn parse_value(token: &str) -> Result<f64, String> {
    match token {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "" => Err("missing value".to_string()),
        _ if token
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            Err(format!("invalid value {token:?}"))
        }
        _ => token
            .parse::<f64>()
            .map_err(|_| format!("invalid value {token:?}")),
    }
}

/// Parses a timestamp: integer ms (text) or float seconds (OpenMetrics).
fn parse_timestamp(token: &str, format: Format) -> Result<i64, String> {
    match format {
        Format::Text => token
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {token:?} (integer milliseconds expected)")),
        Format::OpenMetrics => {
            let seconds = parse_value(token).map_err(|_| format!("invalid timestamp {token:?}"))?;
            let ms = (seconds * 1000.0).round();
            if !ms.is_finite() || ms.abs() > 9.0e15 {
                return Err(format!("invalid timestamp {token:?}"));
            }
            Ok(ms as i64)
        }
    }
}

fn parse_sample(line: &str, format: Format) -> Result<ParsedSample, String> {
    let mut cursor = Cursor {
        text: line,
        position: 0,
    };
    let name = cursor.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    if !is_metric_name(name) {
        return Err(format!(
            "invalid metric name at {:?}",
            truncate(cursor.rest(), 32)
        ));
    }
    let blank_after_name = format == Format::Text && cursor.skip_blanks();
    let labels = if cursor.eat(b'{') {
        cursor.labels()?
    } else {
        Vec::new()
    };
    let blank_before_value = cursor.skip_blanks() || (blank_after_name && labels.is_empty());
    if !blank_before_value {
        return Err(format!("expected a blank and a value after {name:?}"));
    }
    let value = parse_value(cursor.token())?;
    cursor.skip_blanks();
    let mut ts_ms = None;
    if cursor.peek().is_some_and(|b| b != b'#') {
        ts_ms = Some(parse_timestamp(cursor.token(), format)?);
        cursor.skip_blanks();
    }
    let mut exemplar = None;
    if cursor.eat(b'#') {
        if format == Format::Text {
            return Err("exemplars are only allowed in OpenMetrics".to_string());
        }
        cursor.skip_blanks();
        if !cursor.eat(b'{') {
            return Err("expected '{' to open the exemplar labels".to_string());
        }
        let labels = cursor.labels()?;
        if !cursor.skip_blanks() {
            return Err("expected a value after the exemplar labels".to_string());
        }
        let exemplar_value = parse_value(cursor.token())?;
        cursor.skip_blanks();
        let exemplar_ts = match cursor.token() {
            "" => None,
            token => Some(parse_timestamp(token, format)?),
        };
        exemplar = Some(ParsedExemplar {
            labels,
            value: exemplar_value,
            ts_ms: exemplar_ts,
        });
        cursor.skip_blanks();
    }
    if !cursor.rest().is_empty() {
        return Err(format!(
            "unexpected text {:?} at the end of the sample",
            truncate(cursor.rest(), 32)
        ));
    }
    Ok(ParsedSample {
        name: name.to_string(),
        labels,
        value,
        ts_ms,
        exemplar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Parsed {
        parse(body.as_bytes(), Format::Text, 0).unwrap()
    }

    fn open_metrics(body: &str) -> Parsed {
        parse(body.as_bytes(), Format::OpenMetrics, 0).unwrap()
    }

    fn error(body: &str, format: Format) -> String {
        parse(body.as_bytes(), format, 0).unwrap_err().to_string()
    }

    #[test]
    fn text_format_with_metadata_and_timestamps() {
        let parsed = text(
            "# HELP http_requests_total Total requests.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
             http_requests_total{method=\"post\",code=\"400\",}    3 1395066363000\n\
             \n\
             # a comment\n\
             # TYPE rpc_duration_seconds histogram\n\
             rpc_duration_seconds_bucket{le=\"0.05\"} 24054\n\
             rpc_duration_seconds_bucket{le=\"+Inf\"} 144320\n\
             rpc_duration_seconds_sum 5.3423e4\n\
             rpc_duration_seconds_count 144320\n\
             metric_without_timestamp_and_labels 12.47\n",
        );
        assert_eq!(parsed.samples.len(), 7);
        let first = &parsed.samples[0];
        assert_eq!(first.name, "http_requests_total");
        assert_eq!(
            first.labels,
            vec![
                ("method".to_string(), "post".to_string()),
                ("code".to_string(), "200".to_string())
            ]
        );
        assert_eq!(first.value, 1027.0);
        assert_eq!(first.ts_ms, Some(1_395_066_363_000));
        assert_eq!(parsed.samples[1].labels.len(), 2);
        assert_eq!(parsed.samples[4].value, 53423.0);
        assert_eq!(parsed.samples[6].ts_ms, None);
        assert_eq!(parsed.metadata.len(), 2);
        assert_eq!(parsed.metadata[0].help, "Total requests.");
        assert_eq!(parsed.metadata[0].kind, MetricType::Counter);
        assert_eq!(parsed.metadata[1].metric, "rpc_duration_seconds");
        assert_eq!(parsed.metadata[1].kind, MetricType::Histogram);
    }

    #[test]
    fn escapes_special_values_and_summaries() {
        let parsed = text(
            "# HELP msdos_file_access_time_seconds Path with \\\\ and \\n newline.\n\
             msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
             # TYPE rpc summary\n\
             rpc{quantile=\"0.5\"} NaN\n\
             rpc_sum +Inf\n\
             rpc_count -Inf\n",
        );
        assert_eq!(parsed.metadata[0].help, "Path with \\ and \n newline.");
        let labels = &parsed.samples[0].labels;
        assert_eq!(labels[0].1, "C:\\DIR\\FILE.TXT");
        assert_eq!(labels[1].1, "Cannot find file:\n\"FILE.TXT\"");
        assert!(parsed.samples[1].value.is_nan());
        assert_eq!(parsed.samples[2].value, f64::INFINITY);
        assert_eq!(parsed.samples[3].value, f64::NEG_INFINITY);
        assert_eq!(parsed.metadata[1].kind, MetricType::Summary);
    }

    #[test]
    fn open_metrics_with_exemplars_units_and_created() {
        let parsed = open_metrics(
            "# TYPE acme_http_router_request_seconds summary\n\
             # UNIT acme_http_router_request_seconds seconds\n\
             # HELP acme_http_router_request_seconds Latency \\\"quoted\\\".\n\
             acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n\
             acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0\n\
             acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0\n\
             # TYPE foo counter\n\
             foo_total 17.0 1520879607.789 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 1 1520879607.5\n\
             foo_created 1520430000.123\n\
             # TYPE h histogram\n\
             h_bucket{le=\"0.1\"} 8 # {trace_id=\"abc\"} 0.054\n\
             h_bucket{le=\"+Inf\"} 17\n\
             h_count 17\n\
             h_sum 324789.3\n\
             # EOF\n",
        );
        let names: Vec<&str> = parsed.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "acme_http_router_request_seconds_sum",
                "acme_http_router_request_seconds_count",
                "foo_total",
                "h_bucket",
                "h_bucket",
                "h_count",
                "h_sum"
            ]
        );
        let foo = &parsed.samples[2];
        assert_eq!(foo.ts_ms, Some(1_520_879_607_789));
        let exemplar = foo.exemplar.as_ref().unwrap();
        assert_eq!(exemplar.labels[0].1, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(exemplar.labels[1].0, "span_id");
        assert_eq!(exemplar.value, 1.0);
        assert_eq!(exemplar.ts_ms, Some(1_520_879_607_500));
        let bucket = parsed.samples[3].exemplar.as_ref().unwrap();
        assert_eq!(bucket.ts_ms, None);
        assert_eq!(bucket.value, 0.054);
        let summary = &parsed.metadata[0];
        assert_eq!(summary.unit, "seconds");
        assert_eq!(summary.help, "Latency \"quoted\".");
        assert_eq!(summary.kind, MetricType::Summary);
        assert_eq!(parsed.metadata[1].metric, "foo");
    }

    #[test]
    fn open_metrics_needs_eof_and_nothing_after_it() {
        assert!(error("a 1\n", Format::OpenMetrics).contains("missing # EOF"));
        assert!(error("a 1\n# EOF\nb 2\n", Format::OpenMetrics).contains("line 3"));
        assert!(error("a 1\n\n# EOF\n", Format::OpenMetrics).contains("line 2: empty line"));
        assert_eq!(open_metrics("# EOF").samples.len(), 0);
        assert_eq!(text("").samples.len(), 0);
    }

    #[test]
    fn malformed_lines_are_named() {
        for (body, wanted) in [
            ("ok 1\nbad{a=\"x} 1\n", "line 2"),
            ("ok 1\n\nbad{a=\"x\" 1\n", "line 3: expected ','"),
            ("1bad 1\n", "line 1: invalid metric name"),
            ("a{1=\"x\"} 1\n", "invalid label name"),
            ("a{b=x} 1\n", "expected '\"'"),
            ("a{b=\"x\",b=\"y\"} 1\n", "duplicate label name"),
            ("a one\n", "invalid value"),
            ("a\n", "expected a blank"),
            ("a 1 12.5\n", "integer milliseconds"),
            ("a 1 2 3\n", "unexpected text"),
            ("# TYPE a bogus\n", "unknown metric type"),
            ("# TYPE 9a counter\n", "invalid metric name"),
            ("a 1 # {trace_id=\"x\"} 1\n", "only allowed in OpenMetrics"),
        ] {
            let message = error(body, Format::Text);
            assert!(message.contains(wanted), "{body:?}: {message}");
        }
        assert!(
            error("ok 1\na{b=\"\\q\"} 1\n# EOF\n", Format::OpenMetrics)
                .contains("line 2: invalid escape")
        );
        let invalid_utf8 = parse(b"a 1\nb{x=\"\xff\"} 1\n", Format::Text, 0).unwrap_err();
        assert_eq!(invalid_utf8.to_string(), "line 2: invalid utf-8");
    }

    #[test]
    fn sample_limit_stops_the_parse() {
        let body = "a 1\nb 2\nc 3\n";
        assert_eq!(
            parse(body.as_bytes(), Format::Text, 2).unwrap_err(),
            Error::SampleLimit(2)
        );
        assert_eq!(
            parse(body.as_bytes(), Format::Text, 3)
                .unwrap()
                .samples
                .len(),
            3
        );
    }

    #[test]
    fn content_type_picks_the_format() {
        assert_eq!(
            Format::from_content_type(Some(
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain; version=0.0.4")),
            Format::Text
        );
        assert_eq!(Format::from_content_type(None), Format::Text);
    }
}
