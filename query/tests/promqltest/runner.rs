//! Parser and executor of Prometheus' promqltest DSL: `load`, `clear`, `eval instant`,
//! `eval range`, expected series and `expect` lines.

use std::sync::Arc;

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use proto::{ByteSize, HumanDuration, TenantId};
use query::promql::{Engine, Evaluated, Value};
use query::{Config as QueryConfig, QueryContext};
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::series::Labels;
use storage::{Config as StorageConfig, Storage};

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Pass count of one file.
#[derive(Debug, Default)]
pub struct FileResult {
    pub passed: usize,
    pub total: usize,
    /// Evals that fail and depend on native histograms (they expect histogram samples
    /// or select a series loaded with some): not supported by the engine yet.
    pub native_histogram: usize,
    /// Line and query of every eval that fails for another reason.
    pub failures: Vec<(usize, String)>,
    /// Passing evals with `expect warn|info|no_warn|no_info` lines (or `eval_warn`,
    /// `eval_info`): their annotations matched too.
    pub annotated: usize,
}

/// An `expect warn|info` line (`Some(msg)` with `msg:`) or `expect no_warn|no_info`.
#[derive(Debug, Clone, Default)]
struct AnnotationExpectation {
    /// `Some(None)`: at least one; `Some(Some(msg))`: one equal to msg.
    some: Option<Option<String>>,
    none: bool,
}

/// One expected value: a float, or an omitted / unsupported (native histogram) point.
#[derive(Debug, Clone, Copy)]
enum Point {
    Value(f64),
    Omitted,
    Histogram,
}

/// Expected series: labels (None for a bare scalar) and points.
type Expected = (Option<Vec<(String, String)>>, Vec<Point>);

struct Eval {
    line: usize,
    query: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    fail: bool,
    fail_msg: Option<String>,
    fail_regex: Option<String>,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    warn: AnnotationExpectation,
    info: AnnotationExpectation,
    /// Expected series: labels (None for a bare scalar) and points.
    expected: Vec<Expected>,
}

fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(s) = text.parse::<f64>() {
        return Some((s * 1000.0).round() as i64);
    }
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let mut total = 0i64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    Some(if negative { -total } else { total })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        "stale" => Some(f64::from_bits(STALE_NAN)),
        _ => text.parse().ok(),
    }
}

/// Expands series notation (`1+2x3 _ stale 5x2 _x3`) into points.
fn expand(items: &[&str]) -> Option<Vec<Point>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let item = items[i];
        i += 1;
        if item.starts_with("{{") {
            // A native histogram, possibly spanning several whitespace-separated items.
            let mut joined = item.to_string();
            while !joined.contains("}}") && i < items.len() {
                joined.push(' ');
                joined.push_str(items[i]);
                i += 1;
            }
            let repeat = joined
                .rsplit_once("}}x")
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .map_or(1, |n| n + 1);
            out.extend(std::iter::repeat_n(Point::Histogram, repeat));
            continue;
        }
        if item == "_" {
            out.push(Point::Omitted);
            continue;
        }
        if let Some((body, n)) = item.rsplit_once('x')
            && let Ok(n) = n.parse::<usize>()
            && !body.is_empty()
        {
            if body == "_" {
                out.extend(std::iter::repeat_n(Point::Omitted, n));
                continue;
            }
            // Split `start[+-]increment`; a sign at 0 or after an exponent belongs to a number.
            let bytes = body.as_bytes();
            let split = (1..bytes.len()).find(|&j| {
                (bytes[j] == b'+' || bytes[j] == b'-') && !matches!(bytes[j - 1], b'e' | b'E')
            });
            let (start, inc) = match split {
                Some(j) => (parse_float(&body[..j])?, parse_float(&body[j..])?),
                None => (parse_float(body)?, 0.0),
            };
            let stale = start.to_bits() == STALE_NAN;
            for k in 0..=n {
                out.push(Point::Value(if stale {
                    start
                } else {
                    start + inc * k as f64
                }));
            }
            continue;
        }
        out.push(Point::Value(parse_float(item)?));
    }
    Some(out)
}

/// Parses a series description `name{a="b"}` into labels.
fn parse_metric(text: &str) -> Option<Vec<(String, String)>> {
    let text = text.trim();
    if text == "{}" {
        return Some(Vec::new());
    }
    let Ok(Expr::VectorSelector(vs)) = promql_parser::parser::parse(text) else {
        return None;
    };
    let mut labels = Vec::new();
    if let Some(name) = vs.name {
        labels.push(("__name__".to_string(), name));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, PMatchOp::Equal) {
            return None;
        }
        labels.push((m.name, m.value));
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    Some(labels)
}

/// Splits `metric values…` at the end of the metric (after `}` or the first space).
fn split_series_line(line: &str) -> (&str, &str) {
    let line = line.trim();
    if let Some(end) = find_closing_brace(line) {
        return (&line[..=end], &line[end + 1..]);
    }
    match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    }
}

fn find_closing_brace(line: &str) -> Option<usize> {
    let open = line.find('{')?;
    if line[..open].contains(char::is_whitespace) {
        return None;
    }
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices().skip(open) {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '}' => return Some(i),
            _ => {}
        }
    }
    None
}

async fn open_storage(dir: &tempfile::TempDir) -> Arc<Storage> {
    let config = StorageConfig {
        memtable_flush_size: ByteSize::mib(512),
        memory_limit: ByteSize::mib(1024),
        flush_interval: HumanDuration::secs(24 * 3600),
        compaction_interval: HumanDuration::secs(24 * 3600),
        metrics_retention: HumanDuration::secs(200 * 365 * 86400),
        ..StorageConfig::default()
    };
    Storage::open(config, dir.path())
        .await
        .expect("open storage")
}

fn engine(storage: Arc<Storage>) -> Engine {
    let context = QueryContext::with_storage(QueryConfig::default(), storage, TenantId::default());
    Engine::new(context)
}

/// Loads one `load` block; returns the label sets of the series that had native
/// histogram samples (which are not loaded).
async fn load(storage: &Storage, interval: i64, lines: &[String]) -> Vec<Vec<(String, String)>> {
    let mut write = MetricsWrite::default();
    let mut histogram_series = Vec::new();
    for line in lines {
        let (metric, values) = split_series_line(line);
        let Some(labels) = parse_metric(metric) else {
            continue;
        };
        let items: Vec<&str> = values.split_whitespace().collect();
        let Some(points) = expand(&items) else {
            continue;
        };
        if points.iter().any(|p| matches!(p, Point::Histogram)) {
            histogram_series.push(labels.clone());
        }
        let samples: Vec<Sample> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Point::Value(v) => Some(Sample {
                    ts_ms: i as i64 * interval,
                    value: *v,
                }),
                _ => None,
            })
            .collect();
        let Ok(labels) = Labels::new(labels) else {
            continue;
        };
        if labels.metric_name().is_empty() {
            continue;
        }
        write.series.push(SeriesWrite {
            labels,
            samples,
            exemplars: Vec::new(),
        });
    }
    if !write.series.is_empty() {
        storage
            .append_metrics(&TenantId::default(), &write)
            .await
            .expect("load samples");
    }
    histogram_series
}

/// The native histogram series `load_with_nhcb` derives from a classic bucket series line.
fn nhcb_series(line: &str) -> Option<Vec<(String, String)>> {
    let mut labels = parse_metric(split_series_line(line).0)?;
    if !labels.iter().any(|(n, _)| n == "le") {
        return None;
    }
    labels.retain(|(n, _)| n != "le");
    let name = labels.iter_mut().find(|(n, _)| n == "__name__")?;
    name.1 = name.1.strip_suffix("_bucket")?.to_string();
    Some(labels)
}

/// Whether `expr` selects any of `series` (label sets, sorted, `__name__` included).
fn selects_any(expr: &Expr, series: &[Vec<(String, String)>]) -> bool {
    struct Finder<'a> {
        series: &'a [Vec<(String, String)>],
        found: bool,
    }
    impl ExprVisitor for Finder<'_> {
        type Error = ();
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
            let selector = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            self.found |= self
                .series
                .iter()
                .any(|labels| selector_matches(selector, labels));
            Ok(!self.found)
        }
    }
    let mut finder = Finder {
        series,
        found: false,
    };
    let _ = walk_expr(&mut finder, expr);
    finder.found
}

fn selector_matches(selector: &VectorSelector, labels: &[(String, String)]) -> bool {
    let value = |name: &str| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    if let Some(name) = &selector.name
        && value("__name__") != name
    {
        return false;
    }
    let all = |matchers: &[promql_parser::label::Matcher]| {
        matchers.iter().all(|m| m.is_match(value(&m.name)))
    };
    let matchers = &selector.matchers;
    if matchers.or_matchers.is_empty() {
        all(&matchers.matchers)
    } else {
        matchers.or_matchers.iter().any(|group| all(group))
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < 1e-6
}

fn labels_of(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Whether `got` (a result's warnings or infos) meets `want`.
fn annotations_meet(want: &AnnotationExpectation, got: &[String]) -> bool {
    let some_ok = match &want.some {
        None => true,
        Some(None) => !got.is_empty(),
        Some(Some(message)) => got.iter().any(|g| g == message),
    };
    some_ok && (!want.none || got.is_empty())
}

/// Runs one eval and compares its result and annotations with the expectation; returns
/// why it differs, and on success whether it expected annotations.
async fn check(engine: &Engine, eval: &Eval) -> Result<bool, String> {
    let tenant = TenantId::default();
    let result = match eval.range {
        Some((start, end, step)) => engine.range(&tenant, &eval.query, start, end, step).await,
        None => engine.instant(&tenant, &eval.query, eval.at).await,
    };
    let annotations = result
        .as_ref()
        .ok()
        .map(|r| (r.warnings.clone(), r.infos.clone()));
    compare(eval, result)?;
    let annotated =
        eval.warn.some.is_some() || eval.warn.none || eval.info.some.is_some() || eval.info.none;
    match annotations {
        Some((warnings, infos)) if annotated && !eval.fail => {
            if annotations_meet(&eval.warn, &warnings) && annotations_meet(&eval.info, &infos) {
                Ok(true)
            } else {
                Err(format!(
                    "annotations: got warnings {warnings:?} infos {infos:?}, want warn {:?} info {:?}",
                    eval.warn, eval.info
                ))
            }
        }
        _ => Ok(false),
    }
}

/// Compares one eval's result with its expectation; returns why it differs.
fn compare(eval: &Eval, result: query::Result<Evaluated>) -> Result<(), String> {
    if eval.fail {
        return match result {
            Err(e) => {
                let msg = e.to_string();
                if let Some(want) = &eval.fail_msg
                    && !msg.contains(want.as_str())
                {
                    return Err(format!("error {msg:?}, want {want:?}"));
                }
                if let Some(re) = &eval.fail_regex
                    && !regex::Regex::new(re).is_ok_and(|r| r.is_match(&msg))
                {
                    return Err(format!("error {msg:?}, want /{re}/"));
                }
                Ok(())
            }
            Ok(v) => Err(format!("expected failure, got {:?}", v.value)),
        };
    }
    let value = result.map_err(|e| format!("error: {e}"))?.value;
    if eval
        .expected
        .iter()
        .any(|(_, p)| p.iter().any(|p| matches!(p, Point::Histogram)))
    {
        return Err("expects native histograms".into());
    }
    if let Some(want) = &eval.string {
        return match value {
            Value::String { v, .. } if &v == want => Ok(()),
            other => Err(format!("got {other:?}, want string {want:?}")),
        };
    }
    match value {
        Value::Scalar { v, .. } => {
            if eval.expected.len() != 1 {
                return Err(format!(
                    "got scalar {v}, want {} series",
                    eval.expected.len()
                ));
            }
            let (_, points) = &eval.expected[0];
            match (eval.range, points.as_slice()) {
                (None, [Point::Value(want)]) if close(*want, v) => Ok(()),
                _ => Err(format!("got scalar {v}, want {points:?}")),
            }
        }
        Value::String { v, .. } => Err(format!("got string {v:?}")),
        Value::Vector(samples) => {
            if eval.range.is_some() || eval.range_vector.is_some() {
                return Err("got a vector, want a matrix".into());
            }
            if samples.len() != eval.expected.len() {
                return Err(format!(
                    "got {} samples, want {}: {:?}",
                    samples.len(),
                    eval.expected.len(),
                    samples
                        .iter()
                        .map(|s| (labels_of(&s.labels), s.v))
                        .collect::<Vec<_>>()
                ));
            }
            for (i, (labels, points)) in eval.expected.iter().enumerate() {
                let Some(labels) = labels else {
                    return Err("want a scalar, got a vector".into());
                };
                let pos = samples.iter().position(|s| &labels_of(&s.labels) == labels);
                let Some(pos) = pos else {
                    return Err(format!("missing series {labels:?}"));
                };
                if eval.ordered && pos != i {
                    return Err(format!("series {labels:?} at position {pos}, want {i}"));
                }
                match points.as_slice() {
                    [Point::Value(want)] if close(*want, samples[pos].v) => {}
                    _ => {
                        return Err(format!(
                            "series {labels:?}: got {}, want {points:?}",
                            samples[pos].v
                        ));
                    }
                }
            }
            Ok(())
        }
        Value::Matrix(series) => {
            let (start, step) = match (eval.range, eval.range_vector) {
                (Some((start, _, step)), _) | (None, Some((start, _, step))) => (start, step),
                (None, None) => return Err("got a matrix, want a vector".into()),
            };
            let expected: Vec<_> = eval
                .expected
                .iter()
                .filter(|(_, p)| p.iter().any(|p| matches!(p, Point::Value(_))))
                .collect();
            if series.len() != expected.len() {
                return Err(format!(
                    "got {} series, want {}: {:?}",
                    series.len(),
                    expected.len(),
                    series
                        .iter()
                        .map(|s| (labels_of(&s.labels), s.points.clone()))
                        .collect::<Vec<_>>()
                ));
            }
            for (labels, points) in expected {
                let labels = labels.clone().unwrap_or_default();
                let Some(got) = series.iter().find(|s| labels_of(&s.labels) == labels) else {
                    return Err(format!("missing series {labels:?}"));
                };
                let want: Vec<(i64, f64)> = points
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| match p {
                        Point::Value(v) => Some((start + i as i64 * step, *v)),
                        _ => None,
                    })
                    .collect();
                let same = want.len() == got.points.len()
                    && want
                        .iter()
                        .zip(&got.points)
                        .all(|(w, g)| w.0 == g.0 && close(w.1, g.1));
                if !same {
                    return Err(format!(
                        "series {labels:?}: got {:?}, want {want:?}",
                        got.points
                    ));
                }
            }
            Ok(())
        }
    }
}

fn parse_eval(line_no: usize, command: &str) -> Option<Eval> {
    let (head, rest) = command.split_once(char::is_whitespace)?;
    let mut eval = Eval {
        line: line_no,
        query: String::new(),
        range: None,
        at: 0,
        fail: head == "eval_fail",
        fail_msg: None,
        fail_regex: None,
        ordered: head == "eval_ordered",
        string: None,
        range_vector: None,
        warn: AnnotationExpectation {
            some: (head == "eval_warn").then_some(None),
            none: false,
        },
        info: AnnotationExpectation {
            some: (head == "eval_info").then_some(None),
            none: false,
        },
        expected: Vec::new(),
    };
    let rest = rest.trim_start();
    if let Some(rest) = rest.strip_prefix("instant at ") {
        let (at, query) = rest.trim_start().split_once(char::is_whitespace)?;
        eval.at = parse_duration_ms(at)?;
        eval.query = query.trim().to_string();
    } else if let Some(rest) = rest.strip_prefix("range from ") {
        let words: Vec<&str> = rest.splitn(6, char::is_whitespace).collect();
        if words.len() < 6 || words[1] != "to" || words[3] != "step" {
            return None;
        }
        eval.range = Some((
            parse_duration_ms(words[0])?,
            parse_duration_ms(words[2])?,
            parse_duration_ms(words[4])?,
        ));
        eval.query = words[5].trim().to_string();
    } else {
        return None;
    }
    Some(eval)
}

fn unquote(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 2
        && let (Some(f), Some(l)) = (t.chars().next(), t.chars().last())
        && f == l
        && matches!(f, '"' | '`' | '\'')
    {
        if let Ok(Expr::StringLiteral(s)) = promql_parser::parser::parse(t) {
            return s.val;
        }
        return t[1..t.len() - 1].to_string();
    }
    t.to_string()
}

/// Applies one indented line below an `eval` to it.
fn add_eval_line(eval: &mut Eval, line: &str) -> bool {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("expect ") {
        let rest = rest.trim();
        if let Some(fail) = rest.strip_prefix("fail") {
            eval.fail = true;
            let fail = fail.trim();
            if let Some(msg) = fail.strip_prefix("msg:") {
                eval.fail_msg = Some(msg.trim().to_string());
            } else if let Some(re) = fail.strip_prefix("regex:") {
                eval.fail_regex = Some(re.trim().to_string());
            }
        } else if rest == "ordered" {
            eval.ordered = true;
        } else if let Some(s) = rest.strip_prefix("string") {
            eval.string = Some(unquote(s));
        } else if let Some(r) = rest.strip_prefix("range vector from ") {
            let words: Vec<&str> = r.split_whitespace().collect();
            if words.len() == 5 {
                eval.range_vector = Some((
                    parse_duration_ms(words[0]).unwrap_or(0),
                    parse_duration_ms(words[2]).unwrap_or(0),
                    parse_duration_ms(words[4]).unwrap_or(1),
                ));
            }
        }
        let (kind, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let message = rest
            .trim()
            .strip_prefix("msg:")
            .map(|m| m.trim().to_string());
        match kind {
            "warn" => eval.warn.some = Some(message),
            "info" => eval.info.some = Some(message),
            "no_warn" => eval.warn.none = true,
            "no_info" => eval.info.none = true,
            _ => {}
        }
        return true;
    }
    let first = line.split_whitespace().next().unwrap_or("");
    if parse_float(first).is_some() && !line.contains('{') && eval.range.is_none() {
        // A bare scalar.
        if let Some(points) = expand(&line.split_whitespace().collect::<Vec<_>>()) {
            eval.expected.push((None, points));
            return true;
        }
    }
    let (metric, values) = split_series_line(line);
    let Some(labels) = parse_metric(metric) else {
        return false;
    };
    let items: Vec<&str> = values.split_whitespace().collect();
    let Some(points) = expand(&items) else {
        return false;
    };
    eval.expected.push((Some(labels), points));
    true
}

/// Runs one test file; returns its pass count.
pub async fn run_file(text: &str, verbose: bool) -> FileResult {
    let mut result = FileResult::default();
    let mut dir = tempfile::tempdir().expect("tempdir");
    let mut storage = open_storage(&dir).await;
    let mut engine_ = engine(storage.clone());
    let mut histogram_series: Vec<Vec<(String, String)>> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let line = raw.trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The indented block below a command.
        let block_start = i;
        while i < lines.len() {
            let next = lines[i].trim();
            if next.is_empty() {
                break;
            }
            let is_command = next.starts_with("eval")
                || next.starts_with("load")
                || next == "clear"
                || next.starts_with("ignore")
                || next.starts_with("resume");
            if is_command && !lines[i].starts_with(char::is_whitespace) {
                break;
            }
            if is_command && (next.starts_with("eval ") || next.starts_with("eval_")) {
                break;
            }
            i += 1;
        }
        let block: Vec<String> = lines[block_start..i]
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.starts_with('#'))
            .collect();
        if line == "clear" {
            drop(engine_);
            drop(storage);
            dir = tempfile::tempdir().expect("tempdir");
            storage = open_storage(&dir).await;
            engine_ = engine(storage.clone());
            histogram_series.clear();
            continue;
        }
        if let Some(rest) = line.strip_prefix("load") {
            let interval = rest
                .split_whitespace()
                .last()
                .and_then(parse_duration_ms)
                .unwrap_or(60_000);
            histogram_series.extend(load(&storage, interval, &block).await);
            if rest.starts_with("_with_nhcb") {
                // Prometheus also converts each classic histogram into a native histogram
                // with custom buckets, named without `_bucket`.
                histogram_series.extend(block.iter().filter_map(|l| nhcb_series(l)));
            }
            continue;
        }
        if line.starts_with("eval") {
            result.total += 1;
            let Some(mut eval) = parse_eval(block_start, line) else {
                if verbose {
                    eprintln!("line {block_start}: cannot parse {line:?}");
                }
                result.failures.push((block_start, line.to_string()));
                continue;
            };
            let mut ok = true;
            for l in &block {
                ok &= add_eval_line(&mut eval, l);
            }
            if !ok {
                if verbose {
                    eprintln!("line {}: cannot parse expectations of {line:?}", eval.line);
                }
                result.failures.push((eval.line, line.to_string()));
                continue;
            }
            match check(&engine_, &eval).await {
                Ok(annotated) => {
                    result.passed += 1;
                    result.annotated += usize::from(annotated);
                }
                Err(why) => {
                    let native = eval
                        .expected
                        .iter()
                        .any(|(_, p)| p.iter().any(|p| matches!(p, Point::Histogram)))
                        || promql_parser::parser::parse(&eval.query)
                            .is_ok_and(|e| selects_any(&e, &histogram_series));
                    if native {
                        result.native_histogram += 1;
                    } else {
                        result.failures.push((eval.line, eval.query.clone()));
                    }
                    if verbose {
                        let tag = if native { " [native histogram]" } else { "" };
                        eprintln!("line {}: {} -> {why}{tag}", eval.line, eval.query);
                    }
                }
            }
        }
    }
    result
}
