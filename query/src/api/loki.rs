//! The Loki HTTP API as Grafana's Loki datasource and the Logs Drilldown app call it
//! (PROTOCOLS.md §6): queries, label metadata, index stats and volume, detected
//! fields and labels, patterns, live tail, build info. Push is served by `ingest`.
//!
//! Metadata endpoints (labels, series, volume, detected fields/labels, patterns) read
//! at most [`METADATA_LINES`] newest lines of the range: they describe streams, and a
//! bound keeps the label browser fast on large ranges.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as Json_, json};

use crate::api::logs::{Params, now_ns, parse_time_ns, time_range};
use crate::api::params::parse_duration;
use crate::logql::ast::{Expr, LogExpr, MetricExpr};
use crate::logql::eval::{Evaluator, Steps, Value};
use crate::logql::fetch::{self, Direction};
use crate::logql::{LogLine, parser, pipeline};
use crate::{Error, QueryContext, Result, patterns};

/// Most lines a metadata endpoint reads.
pub const METADATA_LINES: usize = 200_000;
/// Most lines a log query returns.
pub const MAX_ENTRIES: usize = 5_000;
const HOUR_NS: i64 = 3_600_000_000_000;

/// Returns this API's routes.
pub fn routes() -> Router<QueryContext> {
    Router::new()
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route("/loki/api/v1/detected_fields", get(detected_fields))
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(detected_field_values),
        )
        .route("/loki/api/v1/detected_labels", get(detected_labels))
        .route("/loki/api/v1/patterns", get(patterns_route))
        .route("/loki/api/v1/tail", get(tail))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route(
            "/loki/api/v1/format_query",
            get(format_query).post(format_query),
        )
}

fn error_response(error: &Error) -> Response {
    let status = StatusCode::from_u16(error.code().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, error.to_string()).into_response()
}

fn params_of(query: Option<String>, body: &Bytes) -> Params {
    let mut params = Params::parse(query.as_deref().unwrap_or(""));
    if !body.is_empty() {
        params.extend(Params::parse(&String::from_utf8_lossy(body)));
    }
    params
}

/// Runs a handler body with the tenant, storage and timeout; errors as plain text.
async fn answer<F, Fut>(context: QueryContext, headers: HeaderMap, f: F) -> Response
where
    F: FnOnce(QueryContext, proto::TenantId) -> Fut,
    Fut: Future<Output = Result<Response>>,
{
    let limit = context.config().timeout.get();
    let tenant = match context.tenant(&headers) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = context.storage() {
        return error_response(&e);
    }
    match tokio::time::timeout(limit, f(context, tenant)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => error_response(&e),
        Err(_) => error_response(&Error::Timeout(limit)),
    }
}

fn seconds(ms: i64) -> Json_ {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn stats(entries: usize, bytes: usize, started: Instant) -> Json_ {
    let exec = started.elapsed().as_secs_f64();
    json!({"summary": {
        "bytesProcessedPerSecond": 0, "linesProcessedPerSecond": 0,
        "totalBytesProcessed": bytes, "totalLinesProcessed": entries,
        "execTime": exec, "queueTime": 0, "subqueries": 0,
        "totalEntriesReturned": entries, "splits": 0, "shards": 0
    }})
}

fn limit_of(params: &Params) -> Result<usize> {
    match params.get("limit") {
        Some(v) => {
            let n: usize = v
                .parse()
                .map_err(|_| Error::BadRequest(format!("invalid limit {v:?}")))?;
            Ok(n.clamp(1, MAX_ENTRIES))
        }
        None => Ok(100),
    }
}

fn direction_of(params: &Params) -> Result<Direction> {
    match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backward") => Ok(Direction::Backward),
        Some("forward") => Ok(Direction::Forward),
        Some(other) => Err(Error::BadRequest(format!("invalid direction {other:?}"))),
    }
}

fn matrix_json(value: Value, steps: &Steps) -> Json_ {
    match value {
        Value::Scalar(points) => json!([{"metric": {}, "values": points.iter().zip(&steps.times_ms)
            .map(|(v, t)| json!([seconds(*t), format_value(*v)])).collect::<Vec<_>>()}]),
        Value::Vector(series) => Json_::Array(
            series
                .into_iter()
                .map(|s| {
                    let values: Vec<Json_> = s
                        .points
                        .iter()
                        .zip(&steps.times_ms)
                        .filter_map(|(v, t)| v.map(|v| json!([seconds(*t), format_value(v)])))
                        .collect();
                    json!({"metric": s.labels, "values": values})
                })
                .collect(),
        ),
    }
}

/// The value of `X-Loki-Response-Encoding-Flags` that asks for per-entry label categories.
const CATEGORIZE_LABELS: &str = "categorize-labels";

/// True when the request asks for Loki's `categorize-labels` response encoding (header
/// `X-Loki-Response-Encoding-Flags`, a comma-separated list of flags).
fn wants_categorized_labels(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-loki-response-encoding-flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|flag| flag.trim() == CATEGORIZE_LABELS)
}

/// Adds `encodingFlags` to a response's `data` object when the request asked for them.
fn with_encoding_flags(mut data: Json_, categorize: bool) -> Json_ {
    if categorize && let Some(object) = data.as_object_mut() {
        object.insert("encodingFlags".into(), json!([CATEGORIZE_LABELS]));
    }
    data
}

#[allow(clippy::too_many_arguments)]
async fn run_log_query(
    context: &QueryContext,
    tenant: &proto::TenantId,
    log: &LogExpr,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    direction: Direction,
    categorize: bool,
) -> Result<Response> {
    let started = Instant::now();
    let evaluator = Evaluator {
        storage: context.storage()?,
        tenant,
    };
    let (result, entries, bytes) = if categorize {
        // Each value is [ts, line, {"structuredMetadata": {...}, "parsed": {...}}], the
        // object always present, its members only when non-empty.
        let streams = evaluator
            .categorized_streams(log, start_ns, end_ns, limit, direction)
            .await?;
        let mut entries = 0;
        let mut bytes = 0;
        let result: Vec<Json_> = streams
            .into_iter()
            .map(|s| {
                let values: Vec<Json_> = s
                    .entries
                    .into_iter()
                    .map(|e| {
                        entries += 1;
                        bytes += e.line.len();
                        let mut categories = serde_json::Map::new();
                        if !e.structured_metadata.is_empty() {
                            categories
                                .insert("structuredMetadata".into(), json!(e.structured_metadata));
                        }
                        if !e.parsed.is_empty() {
                            categories.insert("parsed".into(), json!(e.parsed));
                        }
                        json!([e.ts_ns.to_string(), e.line, categories])
                    })
                    .collect();
                json!({"stream": s.labels, "values": values})
            })
            .collect();
        (result, entries, bytes)
    } else {
        let streams = evaluator
            .streams(log, start_ns, end_ns, limit, direction)
            .await?;
        let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
        let bytes: usize = streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.1.len()))
            .sum();
        let result: Vec<Json_> = streams
            .into_iter()
            .map(|s| {
                let values: Vec<Json_> = s
                    .entries
                    .into_iter()
                    .map(|(ts, line)| json!([ts.to_string(), line]))
                    .collect();
                json!({"stream": s.labels, "values": values})
            })
            .collect();
        (result, entries, bytes)
    };
    let data =
        json!({"resultType":"streams","result":result,"stats":stats(entries, bytes, started)});
    Ok(
        Json(json!({"status":"success","data":with_encoding_flags(data, categorize)}))
            .into_response(),
    )
}

async fn query_range(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    let categorize = wants_categorized_labels(&headers);
    answer(context, headers, |context, tenant| async move {
        let text = params
            .get("query")
            .ok_or_else(|| Error::BadRequest("missing parameter \"query\"".into()))?;
        let expr = parser::parse(text)?;
        let (start, end) = time_range(&params, HOUR_NS)?;
        match expr {
            Expr::Log(log) => {
                run_log_query(
                    &context,
                    &tenant,
                    &log,
                    start,
                    // Loki's end is exclusive.
                    (end - 1).max(start),
                    limit_of(&params)?,
                    direction_of(&params)?,
                    categorize,
                )
                .await
            }
            Expr::Metric(metric) => {
                let started = Instant::now();
                let step_ms = match params.get("step").or(params.get("interval")) {
                    Some(step) => parse_duration("step", step)?,
                    None => (end.saturating_sub(start) / 1_000_000 / 250).max(1000),
                };
                let steps = Steps::range(start / 1_000_000, end / 1_000_000, step_ms)?;
                let evaluator = Evaluator {
                    storage: context.storage()?,
                    tenant: &tenant,
                };
                let value = evaluator.metric(&metric, &steps).await?;
                let result = matrix_json(value, &steps);
                let data =
                    json!({"resultType":"matrix","result":result,"stats":stats(0, 0, started)});
                Ok(
                    Json(json!({"status":"success","data":with_encoding_flags(data, categorize)}))
                        .into_response(),
                )
            }
        }
    })
    .await
}

async fn query(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    let categorize = wants_categorized_labels(&headers);
    answer(context, headers, |context, tenant| async move {
        let started = Instant::now();
        let text = params
            .get("query")
            .ok_or_else(|| Error::BadRequest("missing parameter \"query\"".into()))?;
        let time_ns = match params.get("time") {
            Some(t) => parse_time_ns("time", t)?,
            None => now_ns(),
        };
        let metric: MetricExpr = match parser::parse(text)? {
            Expr::Log(_) => {
                return Err(Error::BadRequest(
                    "log queries are not supported as an instant query type, please change your query to a range query type".into(),
                ));
            }
            Expr::Metric(m) => m,
        };
        let t_ms = time_ns.div_euclid(1_000_000);
        let steps = Steps {
            times_ms: vec![t_ms],
        };
        let evaluator = Evaluator {
            storage: context.storage()?,
            tenant: &tenant,
        };
        let value = evaluator.metric(&metric, &steps).await?;
        let t = seconds(t_ms);
        let data = match value {
            Value::Scalar(points) => json!({"resultType":"scalar",
                "result":[t, format_value(points[0])], "stats": stats(0, 0, started)}),
            Value::Vector(series) => {
                let result: Vec<Json_> = series
                    .into_iter()
                    .filter_map(|s| {
                        s.points[0].map(|v| json!({"metric": s.labels, "value": [t, format_value(v)]}))
                    })
                    .collect();
                json!({"resultType":"vector","result":result,"stats":stats(0, 0, started)})
            }
        };
        Ok(
            Json(json!({"status":"success","data":with_encoding_flags(data, categorize)}))
                .into_response(),
        )
    })
    .await
}

/// A stream seen in a range: labels, entries, bytes.
struct StreamInfo {
    entries: u64,
    bytes: u64,
}

/// Lines of `[start, end]` matching an optional selector (newest [`METADATA_LINES`]).
async fn metadata_lines(
    context: &QueryContext,
    tenant: &proto::TenantId,
    selector: Option<&LogExpr>,
    start: i64,
    end: i64,
) -> Result<Vec<LogLine>> {
    let storage = context.storage()?;
    let scan = match selector {
        Some(log) => crate::logql::eval::scan_for(log, start, end),
        None => storage::LogScan {
            start_ns: start,
            end_ns: end,
            ..Default::default()
        },
    };
    let keep = |line: &LogLine| match selector {
        Some(log) => {
            let labels = line.stream_labels();
            log.matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
                && {
                    let mut entry = pipeline::Entry {
                        ts_ns: line.ts_ns,
                        line: line.body.clone(),
                        labels,
                        metadata: line.metadata(),
                    };
                    pipeline::run(&log.stages, &mut entry)
                }
        }
        None => true,
    };
    fetch::lines(
        storage,
        tenant,
        &scan,
        &keep,
        Some(METADATA_LINES),
        Direction::Backward,
    )
    .await
}

fn selector_of(text: Option<&str>) -> Result<Option<LogExpr>> {
    match text {
        None => Ok(None),
        Some(text) => match parser::parse(text)? {
            Expr::Log(log) => Ok(Some(log)),
            Expr::Metric(MetricExpr::Range { log, .. }) => Ok(Some(log)),
            Expr::Metric(_) => Err(Error::BadRequest(
                "expected a stream selector or a log query".into(),
            )),
        },
    }
}

async fn streams_in(
    context: &QueryContext,
    tenant: &proto::TenantId,
    selector: Option<&LogExpr>,
    start: i64,
    end: i64,
) -> Result<BTreeMap<BTreeMap<String, String>, StreamInfo>> {
    let lines = metadata_lines(context, tenant, selector, start, end).await?;
    let mut out: BTreeMap<BTreeMap<String, String>, StreamInfo> = BTreeMap::new();
    for line in &lines {
        let info = out.entry(line.stream_labels()).or_insert(StreamInfo {
            entries: 0,
            bytes: 0,
        });
        info.entries += 1;
        info.bytes += line.body.len() as u64;
    }
    Ok(out)
}

fn success(data: Json_) -> Response {
    Json(json!({"status":"success","data":data})).into_response()
}

const SIX_HOURS_NS: i64 = 6 * HOUR_NS;

async fn labels(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, SIX_HOURS_NS)?;
        let selector = selector_of(params.get("query"))?;
        let streams = streams_in(&context, &tenant, selector.as_ref(), start, end).await?;
        let names: BTreeSet<&String> = streams.keys().flat_map(|l| l.keys()).collect();
        Ok(success(json!(names)))
    })
    .await
}

async fn label_values(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw, &Bytes::new());
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, SIX_HOURS_NS)?;
        let selector = selector_of(params.get("query"))?;
        let streams = streams_in(&context, &tenant, selector.as_ref(), start, end).await?;
        let values: BTreeSet<&String> = streams.keys().filter_map(|l| l.get(&name)).collect();
        Ok(success(json!(values)))
    })
    .await
}

async fn series(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, SIX_HOURS_NS)?;
        let mut matches = params.all("match[]");
        matches.extend(params.all("match"));
        matches.retain(|m| !m.is_empty());
        if matches.is_empty() {
            return Err(Error::BadRequest("missing parameter \"match[]\"".into()));
        }
        let mut all = BTreeSet::new();
        for text in matches {
            let selector = selector_of(Some(text))?;
            all.extend(
                streams_in(&context, &tenant, selector.as_ref(), start, end)
                    .await?
                    .into_keys(),
            );
        }
        Ok(success(json!(all)))
    })
    .await
}

async fn index_stats(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, HOUR_NS)?;
        let selector = selector_of(params.get("query"))?;
        let streams = streams_in(&context, &tenant, selector.as_ref(), start, end).await?;
        let entries: u64 = streams.values().map(|s| s.entries).sum();
        let bytes: u64 = streams.values().map(|s| s.bytes).sum();
        Ok(
            Json(json!({"streams": streams.len(), "chunks": streams.len(),
            "entries": entries, "bytes": bytes}))
            .into_response(),
        )
    })
    .await
}

/// The labels a volume is grouped by: `targetLabels`, else the selector's label names;
/// `aggregateBy=series` groups by whole streams.
fn volume_key(
    labels: &BTreeMap<String, String>,
    params: &Params,
    selector: Option<&LogExpr>,
) -> BTreeMap<String, String> {
    if params.get("aggregateBy") == Some("series") && params.get("targetLabels").is_none() {
        return labels.clone();
    }
    let targets: Vec<String> = match params.get("targetLabels") {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => selector
            .map(|s| s.matchers.iter().map(|m| m.name.clone()).collect())
            .unwrap_or_default(),
    };
    labels
        .iter()
        .filter(|(k, _)| targets.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn volume(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, HOUR_NS)?;
        let selector = selector_of(params.get("query"))?;
        let limit = limit_of(&params)?;
        let lines = metadata_lines(&context, &tenant, selector.as_ref(), start, end).await?;
        let mut volumes: HashMap<BTreeMap<String, String>, u64> = HashMap::new();
        for line in &lines {
            let key = volume_key(&line.stream_labels(), &params, selector.as_ref());
            *volumes.entry(key).or_default() += line.body.len() as u64;
        }
        let mut sorted: Vec<_> = volumes.into_iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted.truncate(limit);
        let t = seconds(end / 1_000_000);
        let result: Vec<Json_> = sorted
            .into_iter()
            .map(|(labels, bytes)| json!({"metric": labels, "value": [t, bytes.to_string()]}))
            .collect();
        Ok(success(json!({"resultType":"vector","result":result})))
    })
    .await
}

async fn volume_range(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = params_of(raw, &body);
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, HOUR_NS)?;
        let selector = selector_of(params.get("query"))?;
        let limit = limit_of(&params)?;
        let step_ms = match params.get("step") {
            Some(step) => parse_duration("step", step)?,
            None => (end.saturating_sub(start) / 1_000_000 / 250).max(1000),
        };
        let steps = Steps::range(start / 1_000_000, end / 1_000_000, step_ms)?;
        let lines = metadata_lines(&context, &tenant, selector.as_ref(), start, end).await?;
        let mut volumes: HashMap<BTreeMap<String, String>, BTreeMap<i64, u64>> = HashMap::new();
        let first = steps.times_ms[0];
        for line in &lines {
            let key = volume_key(&line.stream_labels(), &params, selector.as_ref());
            // A line counts at the first step at or after it (window (t-step, t]).
            let ms = line.ts_ns.div_euclid(1_000_000);
            let index = (ms - first + step_ms - 1).div_euclid(step_ms).max(0);
            let t = first + index * step_ms;
            *volumes.entry(key).or_default().entry(t).or_default() += line.body.len() as u64;
        }
        let mut sorted: Vec<_> = volumes.into_iter().collect();
        sorted.sort_by(|a, b| {
            let total = |m: &BTreeMap<i64, u64>| m.values().sum::<u64>();
            total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0))
        });
        sorted.truncate(limit);
        let result: Vec<Json_> = sorted
            .into_iter()
            .map(|(labels, points)| {
                let values: Vec<Json_> = points
                    .into_iter()
                    .map(|(t, v)| json!([seconds(t), v.to_string()]))
                    .collect();
                json!({"metric": labels, "values": values})
            })
            .collect();
        Ok(success(json!({"resultType":"matrix","result":result})))
    })
    .await
}

fn field_type(values: &BTreeSet<String>) -> &'static str {
    let all = |f: &dyn Fn(&str) -> bool| values.iter().all(|v| f(v));
    if all(&|v| v.parse::<i64>().is_ok()) {
        "int"
    } else if all(&|v| v.parse::<f64>().is_ok()) {
        "float"
    } else if all(&|v| v == "true" || v == "false") {
        "boolean"
    } else if all(&|v| parser::parse_go_duration(v).is_some()) {
        "duration"
    } else if all(&|v| parser::parse_bytes(v).is_some()) {
        "bytes"
    } else {
        "string"
    }
}

/// Fields of the lines: structured metadata plus what `json`/`logfmt` extract.
async fn fields_of(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
) -> Result<BTreeMap<String, (BTreeSet<String>, BTreeSet<&'static str>)>> {
    let (start, end) = time_range(params, HOUR_NS)?;
    let selector = selector_of(params.get("query"))?;
    let line_limit: usize = params
        .get("line_limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .clamp(1, MAX_ENTRIES);
    let mut lines = metadata_lines(context, tenant, selector.as_ref(), start, end).await?;
    lines.truncate(line_limit);
    let mut fields: BTreeMap<String, (BTreeSet<String>, BTreeSet<&'static str>)> = BTreeMap::new();
    for line in &lines {
        for (key, value) in line.metadata() {
            let slot = fields.entry(key).or_default();
            if slot.0.len() < 1000 {
                slot.0.insert(value);
            }
        }
        let body = line.body.trim_start();
        let (stage, parser_name) = if body.starts_with('{') {
            (crate::logql::ast::Stage::Json(Vec::new()), "json")
        } else if pipeline::logfmt_pairs(body).is_some_and(|p| p.iter().any(|(_, v)| !v.is_empty()))
        {
            (crate::logql::ast::Stage::Logfmt, "logfmt")
        } else {
            continue;
        };
        let mut entry = pipeline::Entry {
            ts_ns: line.ts_ns,
            line: line.body.clone(),
            labels: Default::default(),
            metadata: Default::default(),
        };
        pipeline::run(std::slice::from_ref(&stage), &mut entry);
        if entry.labels.contains_key("__error__") {
            continue;
        }
        for (key, value) in entry.labels {
            let slot = fields.entry(key).or_default();
            slot.1.insert(parser_name);
            if slot.0.len() < 1000 {
                slot.0.insert(value);
            }
        }
    }
    Ok(fields)
}

async fn detected_fields(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw, &Bytes::new());
    answer(context, headers, |context, tenant| async move {
        let limit = params
            .get("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1000);
        let fields = fields_of(&context, &tenant, &params).await?;
        let list: Vec<Json_> = fields
            .iter()
            .take(limit)
            .map(|(name, (values, parsers))| {
                json!({"label": name, "type": field_type(values),
                    "cardinality": values.len(),
                    "parsers": if parsers.is_empty() { Json_::Null } else { json!(parsers) }})
            })
            .collect();
        Ok(Json(json!({"fields": list, "limit": limit})).into_response())
    })
    .await
}

async fn detected_field_values(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw, &Bytes::new());
    answer(context, headers, |context, tenant| async move {
        let fields = fields_of(&context, &tenant, &params).await?;
        let values: Vec<&String> = fields
            .get(&name)
            .map(|(values, _)| values.iter().collect())
            .unwrap_or_default();
        Ok(Json(json!({"values": values})).into_response())
    })
    .await
}

async fn detected_labels(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw, &Bytes::new());
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, HOUR_NS)?;
        let selector = selector_of(params.get("query"))?;
        let streams = streams_in(&context, &tenant, selector.as_ref(), start, end).await?;
        let mut values: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
        for labels in streams.keys() {
            for (k, v) in labels {
                values.entry(k).or_default().insert(v);
            }
        }
        let list: Vec<Json_> = values
            .into_iter()
            .map(|(label, v)| json!({"label": label, "cardinality": v.len()}))
            .collect();
        Ok(Json(json!({"detectedLabels": list})).into_response())
    })
    .await
}

async fn patterns_route(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = params_of(raw, &Bytes::new());
    answer(context, headers, |context, tenant| async move {
        let (start, end) = time_range(&params, HOUR_NS)?;
        let selector = selector_of(params.get("query"))?;
        let step_ns = match params.get("step") {
            Some(step) => parse_duration("step", step)?
                .saturating_mul(1_000_000)
                .max(1_000_000_000),
            None => (end.saturating_sub(start) / 100).max(10_000_000_000),
        };
        let lines = metadata_lines(&context, &tenant, selector.as_ref(), start, end).await?;
        let mined = patterns::mine_blocking(Arc::new(lines), step_ns).await?;
        let data: Vec<Json_> = mined
            .iter()
            .map(|p| {
                let samples: Vec<Json_> = p
                    .buckets
                    .iter()
                    .map(|(t, n)| json!([t.div_euclid(1_000_000_000), n]))
                    .collect();
                json!({"pattern": p.template, "samples": samples})
            })
            .collect();
        Ok(success(json!(data)))
    })
    .await
}

async fn buildinfo() -> Response {
    Json(
        json!({"version":"3.5.0","revision":"sightline","branch":"main",
        "buildUser":"sightline","buildDate":"","goVersion":""}),
    )
    .into_response()
}

async fn format_query(RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let params = params_of(raw, &body);
    let text = params.get("query").unwrap_or("");
    match parser::parse(text) {
        Ok(_) => success(json!(text.trim())),
        Err(e) => error_response(&e),
    }
}

async fn tail(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    let params = params_of(raw, &Bytes::new());
    let setup = (|| {
        let tenant = context.tenant(&headers)?;
        context.storage()?;
        let text = params
            .get("query")
            .ok_or_else(|| Error::BadRequest("missing parameter \"query\"".into()))?;
        let log = match parser::parse(text)? {
            Expr::Log(log) => log,
            Expr::Metric(_) => {
                return Err(Error::BadRequest("tail needs a log query".into()));
            }
        };
        let start = match params.get("start") {
            Some(v) => parse_time_ns("start", v)?,
            None => now_ns() - HOUR_NS,
        };
        let limit = limit_of(&params)?;
        Ok::<_, Error>((tenant, log, start, limit))
    })();
    match setup {
        Ok((tenant, log, start, limit)) => {
            upgrade.on_upgrade(move |socket| run_tail(socket, context, tenant, log, start, limit))
        }
        Err(e) => error_response(&e),
    }
}

async fn run_tail(
    mut socket: WebSocket,
    context: QueryContext,
    tenant: proto::TenantId,
    log: LogExpr,
    start: i64,
    limit: usize,
) {
    let Ok(storage) = context.storage().cloned() else {
        return;
    };
    let evaluator = Evaluator {
        storage: &storage,
        tenant: &tenant,
    };
    let mut from = start;
    let mut seen_at_from: BTreeSet<(BTreeMap<String, String>, String)> = BTreeSet::new();
    let mut first = true;
    loop {
        let now = now_ns();
        let streams = match evaluator
            .streams(
                &log,
                from,
                now,
                if first { limit } else { MAX_ENTRIES },
                Direction::Forward,
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "loki tail query failed");
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        };
        first = false;
        let mut newest = from;
        let mut out = Vec::new();
        let mut next_seen = BTreeSet::new();
        for stream in streams {
            let values: Vec<Json_> = stream
                .entries
                .iter()
                .filter(|(ts, line)| {
                    *ts > from || !seen_at_from.contains(&(stream.labels.clone(), line.clone()))
                })
                .map(|(ts, line)| json!([ts.to_string(), line]))
                .collect();
            for (ts, _) in &stream.entries {
                newest = newest.max(*ts);
            }
            if !values.is_empty() {
                out.push(json!({"stream": stream.labels, "values": values}));
            }
            for (ts, line) in &stream.entries {
                next_seen.insert((*ts, stream.labels.clone(), line.clone()));
            }
        }
        seen_at_from = next_seen
            .into_iter()
            .filter(|(ts, _, _)| *ts == newest)
            .map(|(_, l, line)| (l, line))
            .collect();
        from = newest;
        if !out.is_empty() {
            let message = json!({"streams": out, "dropped_entries": null}).to_string();
            if socket.send(Message::Text(message.into())).await.is_err() {
                return;
            }
        }
        tokio::select! {
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
