//! OTLP log records → rows of the logs table.
//!
//! A record's fields are borrowed from the decoded request up to the batch they are
//! copied into: no string is cloned per record, and the resource's attributes, shared by
//! all the records under it, are converted once.

use std::borrow::Cow;
use std::ops::Range;

use proto::otlp::{
    AnyValue, ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    InstrumentationScope, KeyValue, any_value,
};
use proto::{SpanId, TenantId, TraceId};
use storage::model::{LogRecord, LogRow};

use super::convert::{
    Origin, Rejections, nanos, now_ns, origin, span_id, too_far_in_future, trace_id, value_text,
};
use crate::normalize::{level_text, severity_number, trace_context_by_key, trace_context_in_text};
use crate::{Error, IngestService, Protocol, Result};

/// Converts, stores and answers one logs export.
pub(crate) async fn export(
    service: &IngestService,
    protocol: Protocol,
    tenant: &TenantId,
    request: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse> {
    let origins = origins(&request);
    let (rows, rejections) = convert(&request, &origins, now_ns());
    if rows.rows.is_empty() && rejections.count > 0 {
        return Err(Error::BadRequest(format!(
            "every log record was rejected: {}",
            rejections.message()
        )));
    }
    service.write_logs(protocol, tenant, &rows.views()).await?;
    Ok(ExportLogsServiceResponse {
        partial_success: (rejections.count > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(rejections.count).unwrap_or(i64::MAX),
            error_message: rejections.message(),
        }),
    })
}

/// The origin (service, instance, resource attributes) of each `resource_logs`.
pub(crate) fn origins(request: &ExportLogsServiceRequest) -> Vec<Origin> {
    request
        .resource_logs
        .iter()
        .map(|resource_logs| origin(resource_logs.resource.as_ref()))
        .collect()
}

/// An attribute: its key, and its value as text (borrowed when the value is a string).
type Entry<'a> = (&'a str, Cow<'a, str>);

/// The records of one request, borrowed from it and from its [`origins`].
pub(crate) struct Rows<'a> {
    rows: Vec<Row<'a>>,
    /// Every row's attributes, each row's a range, sorted by key.
    entries: Vec<Entry<'a>>,
}

/// One log record.
struct Row<'a> {
    timestamp_ns: i64,
    observed_ns: i64,
    origin: &'a Origin,
    severity_text: Option<&'a str>,
    severity_number: i32,
    body: Cow<'a, str>,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    attributes: Range<usize>,
}

/// A row with its attributes, as [`storage::model::logs_batch`] reads it.
pub(crate) struct RowView<'r, 'a> {
    row: &'r Row<'a>,
    attributes: &'r [Entry<'a>],
}

impl<'a> Rows<'a> {
    /// The rows, each with its attributes.
    pub(crate) fn views(&self) -> Vec<RowView<'_, 'a>> {
        self.rows
            .iter()
            .map(|row| RowView {
                row,
                attributes: &self.entries[row.attributes.clone()],
            })
            .collect()
    }
}

impl RowView<'_, '_> {
    /// The row as an owned record.
    pub(crate) fn to_record(&self) -> LogRecord {
        let text = |(k, v): (&str, &str)| (k.to_string(), v.to_string());
        LogRecord {
            timestamp_ns: self.timestamp_ns(),
            observed_ns: self.observed_ns(),
            service: self.service().to_string(),
            instance: self.instance().map(str::to_string),
            severity_text: self.severity_text().map(str::to_string),
            severity_number: self.severity_number(),
            body: self.body().to_string(),
            trace_id: self.trace_id(),
            span_id: self.span_id(),
            attributes: self.attributes().map(text).collect(),
            resource: self.resource().map(text).collect(),
        }
    }
}

impl LogRow for RowView<'_, '_> {
    fn timestamp_ns(&self) -> i64 {
        self.row.timestamp_ns
    }
    fn observed_ns(&self) -> i64 {
        self.row.observed_ns
    }
    fn service(&self) -> &str {
        &self.row.origin.service
    }
    fn instance(&self) -> Option<&str> {
        self.row.origin.instance.as_deref()
    }
    fn severity_text(&self) -> Option<&str> {
        self.row.severity_text
    }
    fn severity_number(&self) -> i32 {
        self.row.severity_number
    }
    fn body(&self) -> &str {
        &self.row.body
    }
    fn trace_id(&self) -> Option<TraceId> {
        self.row.trace_id
    }
    fn span_id(&self) -> Option<SpanId> {
        self.row.span_id
    }
    fn attributes(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.attributes.iter().map(|(k, v)| (*k, v.as_ref()))
    }
    fn resource(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.row
            .origin
            .resource
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Maps every log record of the request (`origins` are its [`origins`]); invalid records
/// are counted, not kept.
pub(crate) fn convert<'a>(
    request: &'a ExportLogsServiceRequest,
    origins: &'a [Origin],
    now_ns: i64,
) -> (Rows<'a>, Rejections) {
    let mut rows = Rows {
        rows: Vec::new(),
        entries: Vec::new(),
    };
    let mut rejections = Rejections::default();
    for (resource_logs, origin) in request.resource_logs.iter().zip(origins) {
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs.scope.as_ref();
            for record in &scope_logs.log_records {
                let start = rows.entries.len();
                match convert_record(record, scope, origin, now_ns, &mut rows.entries) {
                    Ok(row) => rows.rows.push(row),
                    Err(reason) => {
                        rows.entries.truncate(start);
                        rejections.reject(1, || reason);
                    }
                }
            }
        }
    }
    (rows, rejections)
}

/// An attribute value as text, borrowed when it is a string ([`value_text`]).
fn value_cow(value: Option<&AnyValue>) -> Cow<'_, str> {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => Cow::Borrowed(text),
        Some(_) => Cow::Owned(value.map(value_text).unwrap_or_default()),
        None => Cow::Borrowed(""),
    }
}

/// Appends a record's attributes to `entries` as a map holds them: sorted by key, and
/// for a key given twice, the later value (the record's own, then `event.name`, then the
/// scope's name and version).
fn push_attributes<'a>(
    entries: &mut Vec<Entry<'a>>,
    attributes: &'a [KeyValue],
    event_name: &'a str,
    scope: Option<&'a InstrumentationScope>,
) -> Range<usize> {
    let start = entries.len();
    entries.extend(
        attributes
            .iter()
            .map(|attribute| (attribute.key.as_str(), value_cow(attribute.value.as_ref()))),
    );
    if !event_name.is_empty() {
        entries.push(("event.name", Cow::Borrowed(event_name)));
    }
    if let Some(scope) = scope {
        if !scope.name.is_empty() {
            entries.push(("otel.scope.name", Cow::Borrowed(&scope.name)));
        }
        if !scope.version.is_empty() {
            entries.push(("otel.scope.version", Cow::Borrowed(&scope.version)));
        }
    }
    let row = &mut entries[start..];
    row.sort_by(|a, b| a.0.cmp(b.0));
    let mut kept = 0;
    for at in 0..row.len() {
        if row.get(at + 1).is_some_and(|next| next.0 == row[at].0) {
            continue;
        }
        row.swap(kept, at);
        kept += 1;
    }
    entries.truncate(start + kept);
    start..entries.len()
}

fn convert_record<'a>(
    record: &'a proto::otlp::LogRecord,
    scope: Option<&'a InstrumentationScope>,
    origin: &'a Origin,
    now_ns: i64,
    entries: &mut Vec<Entry<'a>>,
) -> Result<Row<'a>, String> {
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

    let attributes = push_attributes(entries, &record.attributes, &record.event_name, scope);
    let body = match record.body.as_ref().and_then(|body| body.value.as_ref()) {
        None => Cow::Borrowed(""),
        Some(any_value::Value::StringValue(text)) => Cow::Borrowed(text.as_str()),
        Some(_) => Cow::Owned(record.body.as_ref().map(value_text).unwrap_or_default()),
    };

    let (trace_id, span_id) = match trace {
        Some(trace) => (Some(trace), span),
        None => {
            let row_entries = &entries[attributes.clone()];
            let found = trace_context_by_key(|key| {
                row_entries
                    .binary_search_by(|(k, _)| (*k).cmp(key))
                    .ok()
                    .map(|at| row_entries[at].1.as_ref())
            })
            .or_else(|| trace_context_in_text(&body));
            match found {
                Some((trace, found_span)) => (Some(trace), span.or(found_span)),
                None => (None, span),
            }
        }
    };

    let severity_text = Some(record.severity_text.as_str())
        .filter(|text| !text.is_empty())
        .or_else(|| level_text(record.severity_number));
    let severity_number = match record.severity_number {
        0 => severity_text.map(severity_number).unwrap_or(0),
        number => number,
    };
    Ok(Row {
        timestamp_ns,
        observed_ns: if observed_ns == 0 {
            timestamp_ns
        } else {
            observed_ns
        },
        origin,
        severity_text,
        severity_number,
        body,
        trace_id,
        span_id,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use proto::otlp::{AnyValue, KeyValueList, ResourceLogs, ScopeLogs};
    use proto::{SpanId, TraceId};

    use super::super::convert::tests::{kv, string};
    use super::*;
    use storage::model::logs_batch;

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

    /// The request's rows, as records.
    fn converted(request: ExportLogsServiceRequest) -> (Vec<LogRecord>, Rejections) {
        let origins = origins(&request);
        let (rows, rejections) = convert(&request, &origins, NOW);
        let records = rows.views().iter().map(RowView::to_record).collect();
        (records, rejections)
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
        let (records, _) = converted(request(vec![log]));
        let first = &records[0];
        assert_eq!((first.timestamp_ns, first.observed_ns), (5_000, 5_000));
        assert_eq!(first.severity_text.as_deref(), Some("ERROR"));
        assert_eq!(first.severity_number, 17);
        assert_eq!(first.service, "unknown_service");
        let mut named = record(string("x"));
        named.severity_text = "warning".to_string();
        let (records, _) = converted(request(vec![named]));
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
        let (records, _) = converted(request(vec![event]));
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
        let (records, _) = converted(request(vec![field, attribute, text]));
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
        let (records, rejections) = converted(request(vec![future, record(string("ok"))]));
        assert_eq!((records.len(), rejections.count), (1, 1));
    }

    /// Attributes are kept as a map keeps them: sorted, and the last value of a key
    /// given twice (the record's, then `event.name`, then the scope's); and the batch
    /// built from borrowed rows is the one built from records.
    #[test]
    fn attributes_sorted_last_value_wins_and_batches_agree() {
        let mut first = record(string("paid"));
        first.attributes = vec![
            kv("b", string("1")),
            kv(
                "a",
                AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                },
            ),
            kv("b", string("2")),
            kv("otel.scope.name", string("mine")),
        ];
        first.event_name = "checkout".to_string();
        let mut second = record(string("refunded"));
        second.attributes = vec![kv("event.name", string("x"))];
        let mut request = request(vec![first, second]);
        request.resource_logs[0].scope_logs[0].scope = Some(InstrumentationScope {
            name: "shop".to_string(),
            version: "1.2".to_string(),
            ..InstrumentationScope::default()
        });
        request.resource_logs[0].resource = Some(proto::otlp::Resource {
            attributes: vec![
                kv("service.name", string("payments")),
                kv("host.name", string("node-1")),
            ],
            ..proto::otlp::Resource::default()
        });
        let origins = origins(&request);
        let (rows, _) = convert(&request, &origins, NOW);
        let views = rows.views();
        let records: Vec<LogRecord> = views.iter().map(RowView::to_record).collect();
        let pairs =
            |r: &LogRecord| -> Vec<(String, String)> { r.attributes.clone().into_iter().collect() };
        let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            pairs(&records[0]),
            owned(&[
                ("a", "7"),
                ("b", "2"),
                ("event.name", "checkout"),
                ("otel.scope.name", "shop"),
                ("otel.scope.version", "1.2"),
            ])
        );
        assert_eq!(
            pairs(&records[1]),
            owned(&[
                ("event.name", "x"),
                ("otel.scope.name", "shop"),
                ("otel.scope.version", "1.2"),
            ])
        );
        assert_eq!(records[1].resource["service.name"], "payments");
        assert_eq!(records[1].instance.as_deref(), Some("node-1"));
        assert_eq!(logs_batch(&views).unwrap(), logs_batch(&records).unwrap());
    }
}
