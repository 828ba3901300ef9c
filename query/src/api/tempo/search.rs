//! `GET /api/search` (PROTOCOLS.md §5.2): TraceQL (`q`) or legacy tag search
//! (`tags`, `minDuration`, `maxDuration`), answered in Tempo's search JSON.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::otlp::typed_value;
use super::params::Params;
use crate::traces::traceql::{self, Query, Spanset, Value};
use crate::traces::{self, TraceMatch};
use crate::{Error, QueryContext, Result};

/// Default number of traces.
const DEFAULT_LIMIT: usize = 20;
/// Default spans per spanset.
const DEFAULT_SPSS: usize = 3;
/// Most spans per spanset.
const MAX_SPSS: usize = 1_000;
/// The root name Tempo shows when the root span is missing.
const NO_ROOT: &str = "<root span not yet received>";

/// Escapes text for a TraceQL string literal.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits logfmt `k=v k2="v 2"` into pairs.
fn logfmt(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        if chars[at].is_whitespace() {
            at += 1;
            continue;
        }
        let key_start = at;
        while at < chars.len() && chars[at] != '=' && !chars[at].is_whitespace() {
            at += 1;
        }
        let key: String = chars[key_start..at].iter().collect();
        if chars.get(at) != Some(&'=') {
            return Err(Error::BadRequest(format!(
                "invalid tags {text:?}: expected key=value"
            )));
        }
        at += 1;
        let mut value = String::new();
        if chars.get(at) == Some(&'"') {
            at += 1;
            while at < chars.len() && chars[at] != '"' {
                if chars[at] == '\\' && at + 1 < chars.len() {
                    at += 1;
                }
                value.push(chars[at]);
                at += 1;
            }
            at += 1;
        } else {
            while at < chars.len() && !chars[at].is_whitespace() {
                value.push(chars[at]);
                at += 1;
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Turns legacy search parameters into the equivalent TraceQL: tags are
/// case-insensitive substring matches on span or resource attributes.
pub(crate) fn legacy_query(params: &Params) -> Result<String> {
    let mut conditions = Vec::new();
    if let Some(tags) = params.get("tags") {
        for (key, value) in logfmt(tags)? {
            let pattern = quote(&format!("(?i).*{}.*", regex::escape(&value)));
            conditions.push(match key.as_str() {
                "name" => format!("name =~ {pattern}"),
                "error" if value == "true" => "status = error".to_string(),
                "status.code" => format!("status = {}", value.to_ascii_lowercase()),
                _ => format!(".{} =~ {pattern}", quote(&key)),
            });
        }
    }
    if let Some(min) = params.go_duration("minDuration")? {
        conditions.push(format!("duration >= {min}ns"));
    }
    if let Some(max) = params.go_duration("maxDuration")? {
        conditions.push(format!("duration <= {max}ns"));
    }
    Ok(format!("{{ {} }}", conditions.join(" && ")))
}

/// A trace id as Tempo's search writes it: leading zeros trimmed.
pub(crate) fn trimmed_id(trace_id: &proto::TraceId) -> String {
    let text = trace_id.to_string();
    let trimmed = text.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A TraceQL value as OTLP/JSON AnyValue.
pub(crate) fn value_json(value: &Value) -> Json {
    match value {
        Value::Str(text) | Value::Raw(text) | Value::Kind(text) => {
            super::otlp::any_value_json(&typed_value(text))
        }
        Value::Int(int) | Value::Duration(int) => json!({"intValue": int.to_string()}),
        Value::Float(float) => json!({"doubleValue": float}),
        Value::Bool(flag) => json!({"boolValue": flag}),
        Value::Status(code) => {
            json!({"stringValue": traceql::status_name(*code)})
        }
        Value::Nil => json!({}),
    }
}

fn spanset_json(set: &Spanset) -> Json {
    let mut out = json!({
        "spans": set.spans.iter().map(|span| json!({
            "spanID": span.span_id.to_string(),
            "name": span.name,
            "startTimeUnixNano": span.start_ns.to_string(),
            "durationNanos": span.duration_ns.to_string(),
            "attributes": span.attributes.iter().map(|(key, value)| json!({"key": key, "value": value_json(value)})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "matched": set.matched,
    });
    if !set.group.is_empty() {
        out["attributes"] = set
            .group
            .iter()
            .map(|(key, value)| json!({"key": key, "value": value_json(value)}))
            .collect();
    }
    out
}

/// One search result in Tempo's shape.
pub(crate) fn trace_json(hit: &TraceMatch<Vec<Spanset>>) -> Json {
    let trace = &hit.trace;
    let root = trace.spans.iter().find(|s| s.parent_span_id.is_none());
    let mut stats: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for span in &trace.spans {
        let entry = stats.entry(span.service.as_str()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(span.status_code == 2);
    }
    let spansets: Vec<Json> = hit.matched.iter().map(spanset_json).collect();
    let mut out = json!({
        "traceID": trimmed_id(&trace.trace_id),
        "rootServiceName": root.map_or(NO_ROOT, |r| r.service.as_str()),
        "startTimeUnixNano": trace.start_ns().to_string(),
        "durationMs": trace.duration_ns() / 1_000_000,
        "spanSets": spansets,
        "serviceStats": stats.into_iter().map(|(service, (spans, errors))| {
            let mut stat = json!({"spanCount": spans});
            if errors > 0 {
                stat["errorCount"] = json!(errors);
            }
            (service.to_string(), stat)
        }).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(root) = root {
        out["rootTraceName"] = json!(root.name);
    }
    if let Some(first) = spansets.first() {
        out["spanSet"] = first.clone();
    }
    out
}

/// Answers `/api/search`.
pub(crate) async fn search(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
) -> Result<Json> {
    let text = match params.get("q") {
        Some(q) => q.to_string(),
        None => legacy_query(params)?,
    };
    let query = Query::parse(&text)?;
    let limit = params.limit("limit", DEFAULT_LIMIT)?;
    let spss = params.limit("spss", DEFAULT_SPSS)?.min(MAX_SPSS);
    let range = params.seconds_range()?;
    let result = traces::search_with(context, tenant, range, limit, |spans| {
        query.evaluate(spans, spss)
    })
    .await?;
    Ok(json!({
        "traces": result.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "metrics": {
            "inspectedTraces": result.inspected_traces,
            "inspectedSpans": result.inspected_spans.to_string(),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_parameters_become_traceql() {
        let params = Params(vec![
            (
                "tags".into(),
                r#"service.name=api http.url="/a b" name=GET"#.into(),
            ),
            ("minDuration".into(), "100ms".into()),
            ("maxDuration".into(), "1s".into()),
        ]);
        let query = legacy_query(&params).unwrap();
        assert_eq!(
            query,
            r#"{ ."service.name" =~ "(?i).*api.*" && ."http.url" =~ "(?i).*/a b.*" && name =~ "(?i).*GET.*" && duration >= 100000000ns && duration <= 1000000000ns }"#
        );
        Query::parse(&query).unwrap();
        assert_eq!(legacy_query(&Params::default()).unwrap(), "{  }");
        assert!(legacy_query(&Params(vec![("tags".into(), "novalue".into())])).is_err());
    }

    #[test]
    fn ids_are_trimmed() {
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(trimmed_id(&proto::TraceId(id)), "ab");
    }
}
