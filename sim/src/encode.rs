//! Wire encodings of the generated telemetry: Zipkin v2 JSON and OTLP/HTTP protobuf
//! spans, Elasticsearch `_bulk` (Filebeat-like ECS documents) and OTLP logs, and
//! Prometheus remote_write 1.0 (snappy protobuf).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prost::Message as _;
use proto::otlp::{
    AnyValue, ExportLogsServiceRequest, ExportTraceServiceRequest, InstrumentationScope, KeyValue,
    LogRecord, Resource, ResourceLogs, ResourceSpans, ScopeLogs, ScopeSpans, Span, Status,
    any_value, span, status,
};
use proto::prometheus::v1::{Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest};
use serde_json::{Value, json};

use crate::engine::{Level, SimLog, SimSpan, SpanKind};
use crate::fleet::SERVICES;
use crate::metrics::SeriesSamples;

/// Kubernetes namespace of the fleet.
pub(crate) const NAMESPACE: &str = "trust-prod";

/// One request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Payload {
    /// Path on the main port.
    pub path: &'static str,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    pub extra_headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
    /// What it carries (for the report).
    pub signal: Signal,
    /// Number of records it carries.
    pub records: u64,
}

/// What a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Spans,
    Logs,
    Samples,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn iso_time(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The logback line (`%d %5p [service,traceId,spanId] pid --- [thread] logger : msg`).
pub(crate) fn logback_line(log: &SimLog, pod: &str) -> String {
    let time = DateTime::<Utc>::from_timestamp_micros(log.time_us)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.3f");
    let trace = log.trace_id.map(|id| hex(&id)).unwrap_or_default();
    let span = log.span_id.map(|id| hex(&id)).unwrap_or_default();
    let service = SERVICES[log.service];
    let mut line = format!(
        "{time} {:>5} [{service},{trace},{span}] 1 --- [{:>15}] {:<40} : {}",
        log.level.as_str(),
        log.thread,
        log.logger,
        log.message
    );
    if let Some(exception) = &log.exception {
        line.push_str(&format!(
            "\n{}: {}\n\tat com.trust.{}.service.{}Service.handle({}Service.java:{})",
            exception.class,
            exception.message,
            service.replace('-', ""),
            crate::fleet::camel(service),
            crate::fleet::camel(service),
            87 + pod.len()
        ));
    }
    line
}

/// Zipkin v2 JSON (`POST /api/v2/spans`), like Spring Cloud Sleuth's reporter. The
/// pod name travels as the `k8s.pod.name` tag (the local endpoint carries no address,
/// so the instance is the pod name, as in metrics and logs).
pub(crate) fn zipkin_json(spans: &[SimSpan], pods: &[Vec<String>], span_status: bool) -> Payload {
    let list: Vec<Value> = spans
        .iter()
        .map(|sim| {
            let mut tags = serde_json::Map::new();
            for (key, value) in &sim.attributes {
                tags.insert((*key).to_string(), Value::String(value.clone()));
            }
            tags.insert("k8s.pod.name".to_string(), Value::String(pods[sim.service][sim.replica].clone()));
            tags.insert("k8s.namespace.name".to_string(), Value::String(NAMESPACE.to_string()));
            let mut annotations = Vec::new();
            if let (Some(error), true) = (&sim.error, span_status) {
                tags.insert("error".to_string(), Value::String(format!("{}: {}", error.class, error.message)));
                tags.insert("exception.type".to_string(), Value::String(error.class.clone()));
                annotations.push(json!({"timestamp": sim.start_us + sim.duration_us, "value": format!("exception: {}", error.class)}));
            }
            let mut span = json!({
                "traceId": hex(&sim.trace_id),
                "id": hex(&sim.span_id),
                "name": sim.name,
                "timestamp": sim.start_us,
                "duration": sim.duration_us,
                "localEndpoint": {"serviceName": SERVICES[sim.service]},
                "tags": tags,
            });
            if let Some(parent) = sim.parent_id {
                span["parentId"] = Value::String(hex(&parent));
            }
            let kind = match sim.kind {
                SpanKind::Server => Some("SERVER"),
                SpanKind::Client => Some("CLIENT"),
                SpanKind::Producer => Some("PRODUCER"),
                SpanKind::Consumer => Some("CONSUMER"),
                SpanKind::Internal => None,
            };
            if let Some(kind) = kind {
                span["kind"] = Value::String(kind.to_string());
            }
            if let Some(peer) = &sim.peer {
                span["remoteEndpoint"] = json!({"serviceName": peer});
            }
            if !annotations.is_empty() {
                span["annotations"] = Value::Array(annotations);
            }
            span
        })
        .collect();
    Payload {
        path: "/api/v2/spans",
        content_type: "application/json",
        content_encoding: None,
        extra_headers: Vec::new(),
        body: serde_json::to_vec(&list).unwrap_or_default(),
        signal: Signal::Spans,
        records: spans.len() as u64,
    }
}

fn string_kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn resource(service: usize, pod: &str) -> Resource {
    Resource {
        attributes: vec![
            string_kv("service.name", SERVICES[service]),
            string_kv("service.namespace", NAMESPACE),
            string_kv("service.instance.id", pod),
            string_kv("k8s.pod.name", pod),
            string_kv("k8s.namespace.name", NAMESPACE),
            string_kv("telemetry.sdk.language", "java"),
            string_kv("process.runtime.name", "OpenJDK Runtime Environment"),
        ],
        ..Resource::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "io.opentelemetry.spring-webmvc-5.3".to_string(),
        version: "1.32.0".to_string(),
        ..InstrumentationScope::default()
    }
}

/// OTLP/HTTP protobuf spans (`POST /v1/traces`), grouped by replica.
pub(crate) fn otlp_traces(spans: &[SimSpan], pods: &[Vec<String>], span_status: bool) -> Payload {
    let mut by_replica: BTreeMap<(usize, usize), Vec<Span>> = BTreeMap::new();
    for sim in spans {
        let kind = match sim.kind {
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
            SpanKind::Producer => span::SpanKind::Producer,
            SpanKind::Consumer => span::SpanKind::Consumer,
            SpanKind::Internal => span::SpanKind::Internal,
        };
        let mut attributes: Vec<KeyValue> = sim
            .attributes
            .iter()
            .map(|(k, v)| string_kv(k, v.clone()))
            .collect();
        let mut events = Vec::new();
        let mut span_status_value = None;
        if let (Some(error), true) = (&sim.error, span_status) {
            span_status_value = Some(Status {
                code: status::StatusCode::Error as i32,
                message: format!("{}: {}", error.class, error.message),
            });
            events.push(span::Event {
                time_unix_nano: nanos(sim.start_us + sim.duration_us),
                name: "exception".to_string(),
                attributes: vec![
                    string_kv("exception.type", error.class.clone()),
                    string_kv("exception.message", error.message.clone()),
                ],
                dropped_attributes_count: 0,
            });
        }
        if sim.kind == SpanKind::Server
            && let Some((_, code)) = sim
                .attributes
                .iter()
                .find(|(k, _)| *k == "http.status_code")
        {
            attributes.push(string_kv("http.response.status_code", code.clone()));
        }
        by_replica
            .entry((sim.service, sim.replica))
            .or_default()
            .push(Span {
                trace_id: sim.trace_id.to_vec(),
                span_id: sim.span_id.to_vec(),
                parent_span_id: sim.parent_id.map(|id| id.to_vec()).unwrap_or_default(),
                name: sim.name.clone(),
                kind: kind as i32,
                start_time_unix_nano: nanos(sim.start_us),
                end_time_unix_nano: nanos(sim.start_us + sim.duration_us),
                attributes,
                events,
                status: span_status_value,
                ..Span::default()
            });
    }
    let request = ExportTraceServiceRequest {
        resource_spans: by_replica
            .into_iter()
            .map(|((service, replica), spans)| ResourceSpans {
                resource: Some(resource(service, &pods[service][replica])),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            })
            .collect(),
    };
    Payload {
        path: "/v1/traces",
        content_type: "application/x-protobuf",
        content_encoding: None,
        extra_headers: Vec::new(),
        body: request.encode_to_vec(),
        signal: Signal::Spans,
        records: spans.len() as u64,
    }
}

fn nanos(micros: i64) -> u64 {
    u64::try_from(micros).unwrap_or(0).saturating_mul(1_000)
}

/// Elasticsearch `_bulk` of ECS documents (`POST /es/_bulk`), as Filebeat ships them.
pub(crate) fn es_bulk(logs: &[SimLog], pods: &[Vec<String>]) -> Payload {
    let mut body = Vec::with_capacity(logs.len() * 600);
    for log in logs {
        let pod = &pods[log.service][log.replica];
        let service = SERVICES[log.service];
        body.extend_from_slice(br#"{"create":{"_index":"filebeat-8.17.0"}}"#);
        body.push(b'\n');
        let mut doc = json!({
            "@timestamp": iso_time(log.time_us),
            "message": logback_line(log, pod),
            "log": {"level": log.level.as_str(), "logger": log.logger},
            "service": {"name": service},
            "host": {"name": pod},
            "kubernetes": {"pod": {"name": pod}, "namespace": NAMESPACE, "container": {"name": service}},
            "process": {"thread": {"name": log.thread}},
            "ecs": {"version": "8.11.0"},
            "agent": {"type": "filebeat", "version": "8.17.0"},
        });
        if let Some(trace_id) = log.trace_id {
            doc["trace"] = json!({"id": hex(&trace_id)});
        }
        if let Some(span_id) = log.span_id {
            doc["span"] = json!({"id": hex(&span_id)});
        }
        if let Some(exception) = &log.exception {
            doc["error"] = json!({"type": exception.class, "message": exception.message});
        }
        if serde_json::to_writer(&mut body, &doc).is_ok() {
            body.push(b'\n');
        }
    }
    Payload {
        path: "/es/_bulk",
        content_type: "application/x-ndjson",
        content_encoding: None,
        extra_headers: Vec::new(),
        body,
        signal: Signal::Logs,
        records: logs.len() as u64,
    }
}

/// OTLP/HTTP protobuf logs (`POST /v1/logs`), as the OpenTelemetry Java agent's
/// logback appender sends them.
pub(crate) fn otlp_logs(logs: &[SimLog], pods: &[Vec<String>]) -> Payload {
    let mut by_replica: BTreeMap<(usize, usize), Vec<LogRecord>> = BTreeMap::new();
    for log in logs {
        let pod = &pods[log.service][log.replica];
        let severity = match log.level {
            Level::Info => 9,
            Level::Warn => 13,
            Level::Error => 17,
        };
        let mut attributes = vec![
            string_kv("code.namespace", log.logger.clone()),
            string_kv("thread.name", log.thread.clone()),
        ];
        let mut body = log.message.clone();
        if let Some(exception) = &log.exception {
            attributes.push(string_kv("exception.type", exception.class.clone()));
            attributes.push(string_kv("exception.message", exception.message.clone()));
            let full = logback_line(log, pod);
            if let Some((_, stack)) = full.split_once('\n') {
                attributes.push(string_kv("exception.stacktrace", stack.to_string()));
            }
            body = log.message.clone();
        }
        by_replica
            .entry((log.service, log.replica))
            .or_default()
            .push(LogRecord {
                time_unix_nano: nanos(log.time_us),
                observed_time_unix_nano: nanos(log.time_us),
                severity_number: severity,
                severity_text: log.level.as_str().to_string(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                attributes,
                trace_id: log.trace_id.map(|id| id.to_vec()).unwrap_or_default(),
                span_id: log.span_id.map(|id| id.to_vec()).unwrap_or_default(),
                ..LogRecord::default()
            });
    }
    let request = ExportLogsServiceRequest {
        resource_logs: by_replica
            .into_iter()
            .map(|((service, replica), log_records)| ResourceLogs {
                resource: Some(resource(service, &pods[service][replica])),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.logback-appender-1.0".to_string(),
                        ..InstrumentationScope::default()
                    }),
                    log_records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            })
            .collect(),
    };
    Payload {
        path: "/v1/logs",
        content_type: "application/x-protobuf",
        content_encoding: None,
        extra_headers: Vec::new(),
        body: request.encode_to_vec(),
        signal: Signal::Logs,
        records: logs.len() as u64,
    }
}

fn metric_type(name: &str) -> (&'static str, MetricType) {
    if name.ends_with("_bucket") {
        return ("http_server_requests_seconds", MetricType::Histogram);
    }
    match name {
        "http_server_requests_seconds_count" | "http_server_requests_seconds_sum" => {
            ("http_server_requests_seconds", MetricType::Histogram)
        }
        "jvm_gc_pause_seconds_count" | "jvm_gc_pause_seconds_sum" => {
            ("jvm_gc_pause_seconds", MetricType::Summary)
        }
        "hikaricp_connections_timeout_total" => {
            ("hikaricp_connections_timeout_total", MetricType::Counter)
        }
        _ => ("", MetricType::Gauge),
    }
}

/// Prometheus remote_write 1.0 (`POST /api/v1/write`, snappy protobuf).
pub(crate) fn remote_write(series: SeriesSamples) -> Payload {
    let mut records = 0;
    let mut families: BTreeMap<String, MetricType> = BTreeMap::new();
    let timeseries = series
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by_key(|(at, _)| *at);
            records += samples.len() as u64;
            if let Some((_, name)) = labels.iter().find(|(key, _)| key == "__name__") {
                let (family, kind) = metric_type(name);
                let family = if family.is_empty() {
                    name.as_str()
                } else {
                    family
                };
                families.insert(family.to_string(), kind);
            }
            TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect(),
                samples: samples
                    .into_iter()
                    .map(|(timestamp, value)| Sample { value, timestamp })
                    .collect(),
                ..TimeSeries::default()
            }
        })
        .collect();
    let metadata = families
        .into_iter()
        .map(|(family, kind)| MetricMetadata {
            r#type: kind as i32,
            metric_family_name: family,
            ..MetricMetadata::default()
        })
        .collect();
    let request = WriteRequest {
        timeseries,
        metadata,
    };
    let raw = request.encode_to_vec();
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default();
    Payload {
        path: "/api/v1/write",
        content_type: "application/x-protobuf",
        content_encoding: Some("snappy"),
        extra_headers: vec![("X-Prometheus-Remote-Write-Version", "0.1.0")],
        body,
        signal: Signal::Samples,
        records,
    }
}
