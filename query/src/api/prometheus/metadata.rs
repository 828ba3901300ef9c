//! Series, label names, label values, metric metadata and exemplars: the lookups
//! behind Grafana's metric browser, query builder and exemplar markers
//! (PROTOCOLS.md §1.6–§1.8). Label-index walks run on the blocking pool.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use proto::{SeriesId, SpanId, TenantId, TraceId};
use storage::Storage;
use storage::series::{Labels, Matcher};

use super::encode;
use super::request::{MAX_TIME_MS, MIN_TIME_MS, Params, collect_selectors, decode_label_name};
use super::{ApiError, TRUNCATED_WARNING, success};
use crate::{Error, QueryContext, Result};

/// Runs label-index work off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("index lookup task failed: {e}")))
}

/// The series matching any of `sets` in `[start, end]`, deduplicated, sorted by labels.
fn matching_series(
    storage: &Storage,
    tenant: &TenantId,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Vec<(SeriesId, Labels)> {
    let mut found: BTreeMap<Labels, SeriesId> = BTreeMap::new();
    for set in sets {
        for (id, labels) in storage.select_series(tenant, set, start, end) {
            found.entry(labels).or_insert(id);
        }
    }
    found.into_iter().map(|(labels, id)| (id, labels)).collect()
}

/// Cuts `items` to `limit` (0: no limit) and returns the warnings to send.
fn truncate<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return vec![TRUNCATED_WARNING.to_string()];
    }
    Vec::new()
}

/// `GET|POST /api/v1/series`: label sets of the series matching `match[]`.
pub async fn series(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = context.tenant(&headers)?;
    let limit = params.limit()?;
    if params.values("match[]").is_empty() {
        return Err(Error::BadRequest("no match[] parameter provided".to_string()).into());
    }
    let (start, end) = params.time_range()?;
    let sets = params.match_sets()?;
    let storage = Arc::clone(context.storage()?);
    let mut found = blocking(move || {
        matching_series(&storage, &tenant, &sets, start, end)
            .into_iter()
            .map(|(_, labels)| labels)
            .collect::<Vec<_>>()
    })
    .await?;
    let warnings = truncate(&mut found, limit);
    let mut data = String::from("[");
    for (index, labels) in found.iter().enumerate() {
        if index > 0 {
            data.push(',');
        }
        encode::push_labels(&mut data, labels);
    }
    data.push(']');
    Ok(success(&data, &warnings, &[]))
}

/// What a label lookup collects from each matching series.
#[derive(Clone)]
enum LabelLookup {
    Names,
    Values(String),
}

impl LabelLookup {
    /// Answers from the whole label index, when neither time nor matchers restrict it.
    fn whole_index(&self, storage: &Storage, tenant: &TenantId) -> Vec<String> {
        match self {
            LabelLookup::Names => storage.label_names(tenant, &[]),
            LabelLookup::Values(name) => storage.label_values(tenant, name, &[]),
        }
    }

    fn collect(&self, labels: &Labels, out: &mut BTreeSet<String>) {
        match self {
            LabelLookup::Names => out.extend(labels.iter().map(|(name, _)| name.to_string())),
            LabelLookup::Values(name) => {
                if let Some(value) = labels.get(name) {
                    out.insert(value.to_string());
                }
            }
        }
    }
}

/// Runs a label lookup restricted by the optional `match[]`, `start` and `end`.
async fn label_lookup(
    context: &QueryContext,
    headers: &HeaderMap,
    params: &Params,
    lookup: LabelLookup,
) -> Result<Response> {
    let tenant = context.tenant(headers)?;
    let limit = params.limit()?;
    let (start, end) = params.time_range()?;
    let mut sets = params.match_sets()?;
    let storage = Arc::clone(context.storage()?);
    let unrestricted = sets.is_empty() && start == MIN_TIME_MS && end == MAX_TIME_MS;
    let mut found = blocking(move || {
        if unrestricted {
            return lookup.whole_index(&storage, &tenant);
        }
        if sets.is_empty() {
            // Every series: an empty matcher list selects all, restricted by time.
            sets.push(Vec::new());
        }
        let mut out = BTreeSet::new();
        for set in &sets {
            for (_, labels) in storage.select_series(&tenant, set, start, end) {
                lookup.collect(&labels, &mut out);
            }
        }
        out.into_iter().collect()
    })
    .await?;
    let warnings = truncate(&mut found, limit);
    let mut data = String::new();
    encode::push_string_list(&mut data, &found);
    Ok(success(&data, &warnings, &[]))
}

/// `GET|POST /api/v1/labels`: label names, sorted.
pub async fn labels(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    Ok(label_lookup(&context, &headers, &params, LabelLookup::Names).await?)
}

/// `GET /api/v1/label/{name}/values`: values of one label (`__name__`: metric names), sorted.
pub async fn label_values(
    State(context): State<QueryContext>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let name = decode_label_name(&segment)?;
    if name.is_empty() {
        return Err(Error::BadRequest(format!("invalid label name: {segment:?}")).into());
    }
    Ok(label_lookup(&context, &headers, &params, LabelLookup::Values(name)).await?)
}

/// Parses a metadata limit: absent or ≤ 0 means no limit.
fn metadata_limit(params: &Params, name: &str) -> Result<usize> {
    let Some(text) = params.value(name) else {
        return Ok(usize::MAX);
    };
    let limit: i64 = text
        .trim()
        .parse()
        .map_err(|_| Error::BadRequest(format!("{name} must be a number")))?;
    Ok(if limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    })
}

/// `GET /api/v1/metadata`: type, help and unit per metric name.
pub async fn metric_metadata(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = context.tenant(&headers)?;
    let limit = metadata_limit(&params, "limit")?;
    // We keep one metadata entry per metric, so any per-metric limit ≥ 1 keeps it.
    let per_metric = metadata_limit(&params, "limit_per_metric")?;
    let metric = params.value("metric");
    let mut all = context.storage()?.metric_metadata(&tenant);
    all.sort_by(|a, b| a.metric.cmp(&b.metric));
    let mut data = String::from("{");
    let selected = all
        .iter()
        .filter(|m| metric.is_none_or(|wanted| m.metric == wanted))
        .take(limit);
    for (index, meta) in selected.enumerate() {
        if index > 0 {
            data.push(',');
        }
        encode::push_str(&mut data, &meta.metric);
        data.push_str(":[");
        if per_metric > 0 {
            data.push_str("{\"type\":");
            encode::push_str(&mut data, meta.kind.as_str());
            data.push_str(",\"help\":");
            encode::push_str(&mut data, &meta.help);
            data.push_str(",\"unit\":");
            encode::push_str(&mut data, &meta.unit);
            data.push('}');
        }
        data.push(']');
    }
    data.push('}');
    Ok(success(&data, &[], &[]))
}

/// One exemplar as the API shows it.
struct ExemplarOut {
    t_ms: i64,
    value: f64,
    labels: BTreeMap<String, String>,
}

/// Reads exemplar rows ([`storage::model::EXEMPLARS_SCHEMA`]) grouped by series id.
fn exemplar_rows(batches: &[RecordBatch], out: &mut BTreeMap<u64, Vec<ExemplarOut>>) -> Result<()> {
    let malformed = || Error::Internal("exemplar batch has unexpected columns".to_string());
    for batch in batches {
        if batch.num_columns() < 6 {
            return Err(malformed());
        }
        let ids = batch
            .column(0)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(malformed)?;
        let ts = batch
            .column(1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(malformed)?;
        let values = batch
            .column(2)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(malformed)?;
        let traces = batch
            .column(3)
            .as_fixed_size_binary_opt()
            .ok_or_else(malformed)?;
        let spans = batch
            .column(4)
            .as_fixed_size_binary_opt()
            .ok_or_else(malformed)?;
        let maps = batch.column(5).as_map_opt().ok_or_else(malformed)?;
        for row in 0..batch.num_rows() {
            let mut labels = BTreeMap::new();
            let entries = maps.value(row);
            let keys = entries
                .column(0)
                .as_string_opt::<i32>()
                .ok_or_else(malformed)?;
            let vals = entries
                .column(1)
                .as_string_opt::<i32>()
                .ok_or_else(malformed)?;
            for i in 0..entries.len() {
                if vals.is_valid(i) {
                    labels.insert(keys.value(i).to_string(), vals.value(i).to_string());
                }
            }
            if traces.is_valid(row)
                && let Some(id) = TraceId::from_slice(traces.value(row))
            {
                labels.insert("trace_id".to_string(), id.to_string());
            }
            if spans.is_valid(row)
                && let Some(id) = SpanId::from_slice(spans.value(row))
            {
                labels.insert("span_id".to_string(), id.to_string());
            }
            out.entry(ids.value(row)).or_default().push(ExemplarOut {
                t_ms: ts.value(row),
                value: values.value(row),
                labels,
            });
        }
    }
    Ok(())
}

/// `GET|POST /api/v1/query_exemplars`: exemplars (with their trace ids) of the series
/// every selector of `query` names, in `[start, end]`.
pub async fn exemplars(
    State(context): State<QueryContext>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = context.tenant(&headers)?;
    let (start, end) = params.time_range()?;
    let query = params.value("query").unwrap_or("");
    let expr = crate::promql::parse_checked(query)
        .map_err(|e| Error::BadRequest(format!("invalid parameter \"query\": {e}")))?;
    let mut selectors = Vec::new();
    collect_selectors(&expr, &mut selectors);
    let mut sets = Vec::new();
    for selector in selectors {
        sets.extend(super::request::selector_matcher_sets(selector)?);
    }
    let storage = Arc::clone(context.storage()?);
    let series = {
        let (storage, tenant) = (Arc::clone(&storage), tenant.clone());
        // Select regardless of sample times; the exemplar scan applies [start, end].
        blocking(move || matching_series(&storage, &tenant, &sets, i64::MIN, i64::MAX)).await?
    };
    let ids: Vec<SeriesId> = series.iter().map(|(id, _)| *id).collect();
    let batches = if ids.is_empty() {
        Vec::new()
    } else {
        storage
            .scan_exemplars(&tenant, &ids, start, end)
            .await
            .map_err(Error::from)?
    };
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let cap = context.config().max_samples;
    if rows as u64 > cap {
        return Err(Error::TooLarge(format!(
            "query would load {rows} exemplars, more than query.max_samples ({cap})"
        ))
        .into());
    }
    let mut by_series = BTreeMap::new();
    exemplar_rows(&batches, &mut by_series)?;
    let mut data = String::from("[");
    let mut first = true;
    for (id, labels) in &series {
        let Some(mut found) = by_series.remove(&id.0) else {
            continue;
        };
        found.sort_by_key(|e| e.t_ms);
        if !first {
            data.push(',');
        }
        first = false;
        data.push_str("{\"seriesLabels\":");
        encode::push_labels(&mut data, labels);
        data.push_str(",\"exemplars\":[");
        for (index, exemplar) in found.iter().enumerate() {
            if index > 0 {
                data.push(',');
            }
            data.push_str("{\"labels\":");
            encode::push_pairs(
                &mut data,
                exemplar
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            data.push_str(",\"value\":");
            encode::push_value(&mut data, exemplar.value);
            data.push_str(",\"timestamp\":");
            encode::push_timestamp(&mut data, exemplar.t_ms);
            data.push('}');
        }
        data.push_str("]}");
    }
    data.push(']');
    Ok(success(&data, &[], &[]))
}
