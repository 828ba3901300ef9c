//! Elasticsearch-compatible log ingest: the start-up endpoints collectors and
//! clients probe (`GET /`, `_license`, `_xpack`, `_cluster/health`, templates, ILM,
//! index existence) and `_bulk` (PROTOCOLS.md §7). Mounted under `/es`.
//!
//! Every response carries `X-Elastic-Product: Elasticsearch`; errors use ES's
//! `{"error":{"root_cause":[…],"type":…,"reason":…},"status":…}` shape.

pub mod bulk;
pub mod ecs;
pub mod templates;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use tracing::{debug, instrument};

use self::templates::{Kind, StoreError, get_response, is_explicit};
use crate::{Error, IngestService, Protocol, body};

/// The version we report; 8.x satisfies Beats, Logstash and the 8.x clients.
pub const VERSION: &str = "8.17.0";
const NAME: &str = "sightline";

/// The HTTP routes of this receiver (relative to the `/es` prefix).
pub(crate) fn routes() -> Router<IngestService> {
    Router::new()
        .route("/", get(info))
        .route("/_bulk", post(bulk_default).put(bulk_default))
        .route("/{index}/_bulk", post(bulk_into).put(bulk_into))
        .route("/_license", get(license))
        .route("/_xpack", get(xpack))
        .route("/_cluster/health", get(cluster_health))
        .route("/_cluster/health/{index}", get(cluster_health))
        .route("/{index}/_doc", post(index_one_generated))
        .route("/{index}/_doc/{id}", post(index_one).put(index_one))
        .route("/{index}/_create/{id}", post(index_one).put(index_one))
        .route("/{index}", any(index_admin))
        .route("/{index}/{*rest}", any(other_admin))
        .layer(axum::middleware::map_response(add_product_header))
}

/// The same API unprefixed (`/`, `/_bulk`, …), for a dedicated listener such as
/// `--es-listen` (conventionally port 9200).
pub fn router(service: IngestService) -> Router {
    routes().with_state(service)
}

/// `GET|HEAD /es/`: clients join their `…/es` URL with `/`, which the nested `/` route
/// (matching `/es` only) does not catch. Merged beside the nest in [`crate::router`].
pub(crate) fn prefix_root_routes() -> Router<IngestService> {
    Router::new()
        .route("/es/", get(info))
        .layer(axum::middleware::map_response(add_product_header))
}

async fn add_product_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An ES error response.
fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    (status, Json(error_body(status, kind, reason))).into_response()
}

fn error_body(status: StatusCode, kind: &str, reason: &str) -> Value {
    json!({
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status.as_u16(),
    })
}

/// An ingest error in ES's shape, with the ingest status and `Retry-After`.
fn ingest_error(error: &Error) -> Response {
    let status = StatusCode::from_u16(error.code().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        400 => "illegal_argument_exception",
        401 | 403 => "security_exception",
        413 => "content_too_long_exception",
        429 => "es_rejected_execution_exception",
        503 => "unavailable_shards_exception",
        _ => "exception",
    };
    error.respond_with(Json(error_body(status, kind, &error.client_message())))
}

async fn info() -> Json<Value> {
    Json(json!({
        "name": NAME,
        "cluster_name": NAME,
        "cluster_uuid": "c2lnaHRsaW5lLWNsdXN0ZQ",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000",
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }))
}

async fn license() -> Json<Value> {
    Json(json!({"license": {
        "status": "active",
        "uid": "00000000-0000-0000-0000-000000000000",
        "type": "basic",
        "issue_date_in_millis": 0,
        "max_nodes": 1000,
        "issued_to": NAME,
        "issuer": "elasticsearch",
        "start_date_in_millis": -1,
    }}))
}

async fn xpack() -> Json<Value> {
    Json(json!({
        "build": {"hash": "0000000000000000000000000000000000000000", "date": "2026-01-01T00:00:00.000Z"},
        "license": {"uid": "00000000-0000-0000-0000-000000000000", "type": "basic", "mode": "basic", "status": "active"},
        "features": {"ilm": {"available": true, "enabled": true}},
    }))
}

async fn cluster_health() -> Json<Value> {
    Json(json!({
        "cluster_name": NAME,
        "status": "green",
        "timed_out": false,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 0,
        "active_shards": 0,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
    }))
}

/// Unknown admin endpoints: writes are acknowledged, reads find nothing.
fn unknown_admin(method: &Method, path: &str) -> Response {
    if method == Method::PUT || method == Method::POST || method == Method::DELETE {
        return Json(json!({"acknowledged": true})).into_response();
    }
    es_error(
        StatusCode::NOT_FOUND,
        "resource_not_found_exception",
        &format!("[{path}] is not stored by this server"),
    )
}

/// `/{index}`: `HEAD`/`GET` say every index exists (any name can be written to),
/// `PUT` creates; `/_…` names are admin endpoints (`/_index_template` lists templates).
async fn index_admin(
    State(service): State<IngestService>,
    method: Method,
    Path(index): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some((kind, pattern)) = Kind::from_path(&index, "") {
        let request = TemplateRequest {
            method,
            headers,
            query,
            body,
        };
        return template_admin(service, request, kind, pattern.to_string()).await;
    }
    if index.starts_with('_') {
        return unknown_admin(&method, &index);
    }
    match method {
        Method::GET | Method::HEAD => Json(json!({ index.as_str(): {
            "aliases": {},
            "mappings": {},
            "settings": {"index": {"number_of_shards": "1", "number_of_replicas": "0"}},
        }}))
        .into_response(),
        Method::PUT => {
            Json(json!({"acknowledged": true, "shards_acknowledged": true, "index": index}))
                .into_response()
        }
        Method::DELETE => es_error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "deleting an index is not supported: logs expire by retention",
        ),
        _ => es_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "illegal_argument_exception",
            &format!("method {method} is not allowed on [/{index}]"),
        ),
    }
}

/// Two or more segments not routed elsewhere: templates and ILM policies (stored,
/// see [`templates`]), aliases and the rest ([`unknown_admin`]).
async fn other_admin(
    State(service): State<IngestService>,
    method: Method,
    Path((first, rest)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some((kind, pattern)) = Kind::from_path(&first, &rest) {
        let request = TemplateRequest {
            method,
            headers,
            query,
            body,
        };
        return template_admin(service, request, kind, pattern.to_string()).await;
    }
    unknown_admin(&method, &format!("{first}/{rest}"))
}

/// The parts of a template request the handler needs.
struct TemplateRequest {
    method: Method,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
}

/// `GET|HEAD|PUT|POST|DELETE` of templates and ILM policies, per tenant, persisted.
async fn template_admin(
    service: IngestService,
    request: TemplateRequest,
    kind: Kind,
    pattern: String,
) -> Response {
    let tenant = match body::tenant(&request.headers, service.config()) {
        Ok(tenant) => tenant.as_str().to_string(),
        Err(error) => return ingest_error(&error),
    };
    let not_found = |pattern: &str| {
        es_error(
            StatusCode::NOT_FOUND,
            "resource_not_found_exception",
            &format!("{} matching [{pattern}] not found", kind.noun()),
        )
    };
    match request.method {
        Method::GET | Method::HEAD => {
            let lookup = {
                let (service, tenant, pattern) = (service.clone(), tenant.clone(), pattern.clone());
                move || {
                    let store = service.es_templates_blocking();
                    let store = store.lock().unwrap_or_else(|p| p.into_inner());
                    store.get(&tenant, kind, &pattern)
                }
            };
            let Ok(entries) = tokio::task::spawn_blocking(lookup).await else {
                return internal_error("template lookup failed");
            };
            if entries.is_empty() && is_explicit(&pattern) {
                return not_found(&pattern);
            }
            Json(get_response(kind, entries)).into_response()
        }
        Method::PUT | Method::POST => {
            let raw = match body::decode_body(&request.headers, request.body, service.config()) {
                Ok(raw) => raw,
                Err(error) => return ingest_error(&error),
            };
            let value: Value = match serde_json::from_slice(&raw) {
                Ok(value) => value,
                Err(error) => {
                    return es_error(
                        StatusCode::BAD_REQUEST,
                        "x_content_parse_exception",
                        &format!("cannot parse the request body: {error}"),
                    );
                }
            };
            let create = request
                .query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .any(|pair| pair == "create=true" || pair == "create");
            let now_ms = now_ns() / 1_000_000;
            let store = move || {
                let store = service.es_templates_blocking();
                let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                store.put(&tenant, kind, &pattern, value, create, now_ms)
            };
            match tokio::task::spawn_blocking(store).await {
                Ok(Ok(())) => Json(json!({"acknowledged": true})).into_response(),
                Ok(Err(error)) => store_error(error),
                Err(_) => internal_error("template write failed"),
            }
        }
        Method::DELETE => {
            let remove = {
                let pattern = pattern.clone();
                move || {
                    let store = service.es_templates_blocking();
                    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                    store.delete(&tenant, kind, &pattern)
                }
            };
            match tokio::task::spawn_blocking(remove).await {
                Ok(Ok(0)) if is_explicit(&pattern) => not_found(&pattern),
                Ok(Ok(_)) => Json(json!({"acknowledged": true})).into_response(),
                Ok(Err(error)) => store_error(error),
                Err(_) => internal_error("template delete failed"),
            }
        }
        method => es_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "illegal_argument_exception",
            &format!("method {method} is not allowed on {}", kind.noun()),
        ),
    }
}

fn store_error(error: StoreError) -> Response {
    match error {
        StoreError::Invalid(reason) => es_error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            &reason,
        ),
        StoreError::Exists(reason) => es_error(
            StatusCode::BAD_REQUEST,
            "resource_already_exists_exception",
            &reason,
        ),
        StoreError::Io(error) => {
            tracing::error!(%error, "cannot persist es templates");
            internal_error("cannot persist the template")
        }
    }
}

fn internal_error(reason: &str) -> Response {
    es_error(StatusCode::INTERNAL_SERVER_ERROR, "exception", reason)
}

async fn bulk_default(
    State(service): State<IngestService>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_bulk(&service, &headers, body, None).await
}

async fn bulk_into(
    State(service): State<IngestService>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_bulk(&service, &headers, body, Some(&index)).await
}

#[instrument(skip_all, fields(protocol = "elasticsearch"))]
async fn run_bulk(
    service: &IngestService,
    headers: &HeaderMap,
    body: Bytes,
    index: Option<&str>,
) -> Response {
    let started = Instant::now();
    let tenant = match body::tenant(headers, service.config()) {
        Ok(tenant) => tenant,
        Err(error) => return ingest_error(&error),
    };
    let body = match body::decode_body(headers, body, service.config()) {
        Ok(body) => body,
        Err(error) => return ingest_error(&error),
    };
    let parsed = match bulk::parse(&body, index, now_ns()) {
        Ok(parsed) => parsed,
        Err(bulk::MalformedBulk(reason)) => {
            debug!(%tenant, %reason, "rejected malformed bulk request");
            return es_error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                &reason,
            );
        }
    };
    if let Err(error) = service
        .write_logs(Protocol::Elasticsearch, &tenant, &parsed.records)
        .await
    {
        return ingest_error(&error);
    }
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Json(bulk::response(&parsed.items, took)).into_response()
}

async fn index_one_generated(
    State(service): State<IngestService>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    store_one(&service, &headers, body, &index, None).await
}

async fn index_one(
    State(service): State<IngestService>,
    Path((index, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    store_one(&service, &headers, body, &index, Some(id)).await
}

/// `POST /{index}/_doc[/{id}]`: one document, through the `_bulk` path.
async fn store_one(
    service: &IngestService,
    headers: &HeaderMap,
    body: Bytes,
    index: &str,
    id: Option<String>,
) -> Response {
    let body = match body::decode_body(headers, body, service.config()) {
        Ok(body) => body,
        Err(error) => return ingest_error(&error),
    };
    let source: Value = match serde_json::from_slice(&body) {
        Ok(source) => source,
        Err(e) => {
            return es_error(
                StatusCode::BAD_REQUEST,
                "document_parsing_exception",
                &format!("failed to parse: {e}"),
            );
        }
    };
    let action = json!({"index": {"_index": index, "_id": id}});
    let mut ndjson = action.to_string().into_bytes();
    ndjson.push(b'\n');
    ndjson.extend_from_slice(source.to_string().as_bytes());
    let mut inner_headers = headers.clone();
    inner_headers.remove(axum::http::header::CONTENT_ENCODING);
    let response = run_bulk(service, &inner_headers, Bytes::from(ndjson), Some(index)).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), 1 << 20).await else {
        return es_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "cannot read bulk result",
        );
    };
    let result: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let item = result["items"][0]["index"].clone();
    match item["status"].as_u64() {
        Some(201) => (StatusCode::CREATED, Json(item)).into_response(),
        _ => {
            let status = item["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            let kind = item["error"]["type"].as_str().unwrap_or("exception");
            let reason = item["error"]["reason"]
                .as_str()
                .unwrap_or("document rejected");
            es_error(status, kind, reason)
        }
    }
}
