//! Normalisation shared by the receivers: trace context found in log text or
//! attributes, severity names and numbers, timestamps sanity.

use proto::{SpanId, TraceId};
use storage::model::Attributes;

/// Finds the trace (and span) id a log line carries in the Spring Cloud Sleuth /
/// Micrometer Tracing logback pattern `[app,traceId,spanId]` (also `[app,traceId,spanId,export]`).
pub fn trace_context_in_text(body: &str) -> Option<(TraceId, Option<SpanId>)> {
    let mut rest = body;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let inside = &after[..close];
        let parts: Vec<&str> = inside.split(',').map(str::trim).collect();
        if (3..=4).contains(&parts.len())
            && let Ok(trace) = TraceId::parse_lenient(parts[1])
            && !trace.is_zero()
        {
            let span = parts[2].parse::<SpanId>().ok().filter(|s| !s.is_zero());
            return Some((trace, span));
        }
        rest = &after[close + 1..];
    }
    None
}

/// Keys under which log attributes commonly carry a trace id.
pub const TRACE_ID_KEYS: [&str; 5] = ["trace_id", "traceId", "trace.id", "traceid", "TraceId"];
/// Keys under which log attributes commonly carry a span id.
pub const SPAN_ID_KEYS: [&str; 5] = ["span_id", "spanId", "span.id", "spanid", "SpanId"];

/// Finds a trace id (and span id) among attributes.
pub fn trace_context_in_attributes(attributes: &Attributes) -> Option<(TraceId, Option<SpanId>)> {
    trace_context_by_key(|key| attributes.get(key).map(String::as_str))
}

/// Finds a trace id (and span id) among attributes that `get` looks up by key.
pub fn trace_context_by_key<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Option<(TraceId, Option<SpanId>)> {
    let trace = TRACE_ID_KEYS.iter().filter_map(|k| get(k)).find_map(|v| {
        TraceId::parse_lenient(v.trim())
            .ok()
            .filter(|t| !t.is_zero())
    })?;
    let span = SPAN_ID_KEYS
        .iter()
        .filter_map(|k| get(k))
        .find_map(|v| v.trim().parse::<SpanId>().ok().filter(|s| !s.is_zero()));
    Some((trace, span))
}

/// Maps a severity name (any case, common aliases) to the OTLP severity number (1-24).
pub fn severity_number(text: &str) -> i32 {
    match text.trim().to_ascii_lowercase().as_str() {
        "trace" | "finest" => 1,
        "debug" | "fine" | "finer" | "dbug" => 5,
        "info" | "information" | "informational" | "notice" | "config" => 9,
        "warn" | "warning" | "wrn" => 13,
        "error" | "err" | "severe" | "eror" => 17,
        "fatal" | "critical" | "crit" | "emerg" | "emergency" | "alert" | "panic" => 21,
        _ => 0,
    }
}

/// The severity text for an OTLP severity number, as logback prints it (`INFO`, `WARN`…):
/// what a record that gives only the number is stored with.
pub fn level_text(severity_number: i32) -> Option<&'static str> {
    match severity_number {
        1..=4 => Some("TRACE"),
        5..=8 => Some("DEBUG"),
        9..=12 => Some("INFO"),
        13..=16 => Some("WARN"),
        17..=20 => Some("ERROR"),
        21..=24 => Some("FATAL"),
        _ => None,
    }
}

/// Finds a severity word in a log line (`INFO`, `WARN`, `ERROR`… as logback prints it).
pub fn severity_in_text(body: &str) -> Option<&'static str> {
    const LEVELS: [&str; 7] = [
        "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL",
    ];
    body.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| !word.is_empty())
        .take(8)
        .find_map(|word| LEVELS.iter().find(|level| **level == word).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logback_trace_context_is_found() {
        let line = "2026-11-24 10:15:32.123  INFO [funding,4bf92f3577b34da6a3ce929d0e0e4736,a3ce929d0e0e4736] 1 --- [nio-8080-exec-7] c.t.FundingService : ok";
        let (trace, span) = trace_context_in_text(line).unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.unwrap().to_string(), "a3ce929d0e0e4736");
        let sleuth = "ERROR [asset,a3ce929d0e0e4736,a3ce929d0e0e4736,true] boom";
        assert_eq!(
            trace_context_in_text(sleuth).unwrap().0.to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert!(trace_context_in_text("[nio-8080-exec-7] no ids here [a,b]").is_none());
        assert!(trace_context_in_text("INFO [funding,,] not traced").is_none());
    }

    #[test]
    fn severities_map_to_otlp_numbers() {
        assert_eq!(severity_number("WARN"), 13);
        assert_eq!(severity_number("error"), 17);
        assert_eq!(level_text(severity_number("Information")), Some("INFO"));
        assert_eq!(
            severity_in_text("2026-11-24 10:15:32.123 ERROR [x,y,z] failed"),
            Some("ERROR")
        );
    }
}
