//! OTLP log records → [`LogRecord`]s.

use proto::TenantId;
use proto::otlp::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse, any_value,
};
use storage::model::{Attributes, LogRecord};

use super::convert::{
    Origin, Rejections, insert_attributes, insert_scope, nanos, now_ns, origin, span_id,
    too_far_in_future, trace_id, value_text,
};
use crate::normalize::{
    level_name, severity_number, trace_context_in_attributes, trace_context_in_text,
};
use crate::{Error, IngestService, Protocol, Result};

/// Converts, stores and answers one logs export.
pub(crate) async fn export(
    service: &IngestService,
    protocol: Protocol,
    tenant: &TenantId,
    request: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse> {
    let (records, rejections) = convert(request, now_ns());
    if records.is_empty() && rejections.count > 0 {
        return Err(Error::BadRequest(format!(
            "every log record was rejected: {}",
            rejections.message()
        )));
    }
    service.write_logs(protocol, tenant, &records).await?;
    Ok(ExportLogsServiceResponse {
        partial_success: (rejections.count > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(rejections.count).unwrap_or(i64::MAX),
            error_message: rejections.message(),
        }),
    })
}

/// Maps every log record of the request; invalid records are counted, not kept. Bodies
/// and other strings move out of the request rather than being copied.
pub(crate) fn convert(
    mut request: ExportLogsServiceRequest,
    now_ns: i64,
) -> (Vec<LogRecord>, Rejections) {
    let mut records = Vec::new();
    let mut rejections = Rejections::default();
    for resource_logs in &mut request.resource_logs {
        let origin = origin(resource_logs.resource.as_ref());
        for scope_logs in &mut resource_logs.scope_logs {
            for record in &mut scope_logs.log_records {
                match convert_record(record, &origin, now_ns) {
                    Ok(mut converted) => {
                        insert_scope(&mut converted.attributes, scope_logs.scope.as_ref());
                        records.push(converted);
                    }
                    Err(reason) => rejections.reject(1, || reason),
                }
            }
        }
    }
    (records, rejections)
}

/// The severity text for a number when the record has none (`INFO`, `WARN`…).
fn severity_text_of(number: i32) -> Option<String> {
    level_name(number).map(str::to_ascii_uppercase)
}

fn convert_record(
    record: &mut proto::otlp::LogRecord,
    origin: &Origin,
    now_ns: i64,
) -> Result<LogRecord, String> {
    let observed_ns = nanos(record.observed_time_unix_nano);
    let timestamp_ns = match nanos(record.time_unix_nano) {
        0 => observed_ns,
        time => time,
    };
    if too_far_in_future(timestamp_ns, now_ns) {
        return Err(format!(
            "log record is stamped more than 1h in the future ({timestamp_ns} ns)"
        ));
    }
    let trace = trace_id(&record.trace_id).map_err(|e| format!("log record: {e}"))?;
    let span = span_id(&record.span_id).map_err(|e| format!("log record: {e}"))?;

    let mut attributes = Attributes::new();
    insert_attributes(&mut attributes, &record.attributes);
    if !record.event_name.is_empty() {
        attributes.insert(
            "event.name".to_string(),
            std::mem::take(&mut record.event_name),
        );
    }
    let body = match record.body.as_mut().and_then(|body| body.value.as_mut()) {
        None => String::new(),
        Some(any_value::Value::StringValue(text)) => std::mem::take(text),
        Some(_) => record.body.as_ref().map(value_text).unwrap_or_default(),
    };

    let (trace_id, span_id) = match trace {
        Some(trace) => (Some(trace), span),
        None => match trace_context_in_attributes(&attributes)
            .or_else(|| trace_context_in_text(&body))
        {
            Some((trace, found_span)) => (Some(trace), span.or(found_span)),
            None => (None, span),
        },
    };

    let severity_text = Some(std::mem::take(&mut record.severity_text))
        .filter(|text| !text.is_empty())
        .or_else(|| severity_text_of(record.severity_number));
    let severity_number = match record.severity_number {
        0 => severity_text.as_deref().map(severity_number).unwrap_or(0),
        number => number,
    };
    Ok(LogRecord {
        timestamp_ns,
        observed_ns: if observed_ns == 0 {
            timestamp_ns
        } else {
            observed_ns
        },
        service: origin.service.clone(),
        instance: origin.instance.clone(),
        severity_text,
        severity_number,
        body,
        trace_id,
        span_id,
        attributes,
        resource: origin.resource.clone(),
    })
}

#[cfg(test)]
mod tests {
    use proto::otlp::{AnyValue, KeyValueList, ResourceLogs, ScopeLogs};
    use proto::{SpanId, TraceId};

    use super::super::convert::tests::{kv, string};
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn request(records: Vec<proto::otlp::LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn record(body: AnyValue) -> proto::otlp::LogRecord {
        proto::otlp::LogRecord {
            observed_time_unix_nano: 5_000,
            body: Some(body),
            ..proto::otlp::LogRecord::default()
        }
    }

    #[test]
    fn time_falls_back_to_observed_and_severity_text_to_the_number() {
        let mut log = record(string("hello"));
        log.severity_number = 17;
        let (records, _) = convert(request(vec![log]), NOW);
        let converted = &records[0];
        assert_eq!(
            (converted.timestamp_ns, converted.observed_ns),
            (5_000, 5_000)
        );
        assert_eq!(converted.severity_text.as_deref(), Some("ERROR"));
        assert_eq!(converted.severity_number, 17);
        assert_eq!(converted.service, "unknown_service");
        let mut named = record(string("x"));
        named.severity_text = "warning".to_string();
        let (records, _) = convert(request(vec![named]), NOW);
        assert_eq!(
            (
                records[0].severity_text.as_deref(),
                records[0].severity_number
            ),
            (Some("warning"), 13)
        );
    }

    #[test]
    fn structured_bodies_become_json() {
        let body = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("url", string("https://x")),
                    kv(
                        "type",
                        AnyValue {
                            value: Some(any_value::Value::IntValue(0)),
                        },
                    ),
                ],
            })),
        };
        let mut event = record(body);
        event.event_name = "browser.page_view".to_string();
        let (records, _) = convert(request(vec![event]), NOW);
        let parsed: serde_json::Value = serde_json::from_str(&records[0].body).unwrap_or_default();
        assert_eq!(parsed, serde_json::json!({"url": "https://x", "type": 0}));
        assert_eq!(records[0].attributes["event.name"], "browser.page_view");
    }

    #[test]
    fn trace_context_from_field_then_attributes_then_text() {
        let mut field = record(string(
            "[app,0af7651916cd43dd8448eb211c80319c,b7ad6b7169203331] x",
        ));
        field.trace_id = vec![0x11; 16];
        field.span_id = vec![0x22; 8];
        let mut attribute = record(string("no context here"));
        attribute.attributes = vec![kv("trace_id", string("0af7651916cd43dd8448eb211c80319c"))];
        let text = record(string(
            "INFO [app,0af7651916cd43dd8448eb211c80319c,b7ad6b7169203331] paid",
        ));
        let (records, _) = convert(request(vec![field, attribute, text]), NOW);
        assert_eq!(records[0].trace_id, Some(TraceId([0x11; 16])));
        assert_eq!(records[0].span_id, Some(SpanId([0x22; 8])));
        let expected: TraceId = "0af7651916cd43dd8448eb211c80319c"
            .parse()
            .unwrap_or_default();
        assert_eq!(records[1].trace_id, Some(expected));
        assert_eq!(records[2].trace_id, Some(expected));
        assert_eq!(records[2].span_id, "b7ad6b7169203331".parse().ok());
    }

    #[test]
    fn future_records_are_rejected() {
        let mut future = record(string("late"));
        future.time_unix_nano = u64::MAX;
        let (records, rejections) = convert(request(vec![future, record(string("ok"))]), NOW);
        assert_eq!((records.len(), rejections.count), (1, 1));
    }
}
