//! Tag names and values for the Tempo query editor (PROTOCOLS.md §5.3).

use serde_json::{Value as Json, json};

use super::params::Params;
use crate::traces::traceql::{self, Field, Intrinsic, Scope, Value, parse_field};
use crate::traces::{self, AttributeScope};
use crate::{Error, QueryContext, Result};

/// Intrinsic tag names Tempo offers.
const INTRINSICS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

/// Default and maximum number of names or values.
const DEFAULT_LIMIT: usize = 1_000;

fn scope_param(params: &Params) -> Result<Option<&str>> {
    match params.get("scope") {
        None | Some("all") => Ok(None),
        Some(
            scope @ ("resource" | "span" | "intrinsic" | "event" | "link" | "instrumentation"),
        ) => Ok(Some(scope)),
        Some(other) => Err(Error::BadRequest(format!("unknown scope {other:?}"))),
    }
}

/// `/api/v2/search/tags`.
pub(crate) async fn tags_v2(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
) -> Result<Json> {
    let scope = scope_param(params)?;
    let limit = params.limit("limit", DEFAULT_LIMIT)?;
    let (span_keys, resource_keys) =
        traces::attribute_keys(context, tenant, params.seconds_range()?, limit).await?;
    let mut scopes = Vec::new();
    let wanted = |name: &str| scope.is_none_or(|s| s == name);
    if wanted("resource") {
        scopes.push(json!({"name": "resource", "tags": resource_keys}));
    }
    if wanted("span") {
        scopes.push(json!({"name": "span", "tags": span_keys}));
    }
    if wanted("intrinsic") {
        scopes.push(json!({"name": "intrinsic", "tags": INTRINSICS}));
    }
    Ok(json!({"scopes": scopes, "metrics": {}}))
}

/// `/api/search/tags`.
pub(crate) async fn tags_v1(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
) -> Result<Json> {
    let scope = scope_param(params)?;
    let limit = params.limit("limit", DEFAULT_LIMIT)?;
    let (span_keys, resource_keys) =
        traces::attribute_keys(context, tenant, params.seconds_range()?, limit).await?;
    let mut names: Vec<String> = match scope {
        Some("span") => span_keys,
        Some("resource") => resource_keys,
        Some("intrinsic") => INTRINSICS.iter().map(|s| s.to_string()).collect(),
        _ => span_keys.into_iter().chain(resource_keys).collect(),
    };
    names.sort();
    names.dedup();
    names.truncate(limit);
    Ok(json!({"tagNames": names, "metrics": {}}))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Bool(_) => "bool",
        Value::Duration(_) => "duration",
        Value::Status(_) | Value::Kind(_) => "keyword",
        _ => "string",
    }
}

fn typed_json(text: &str) -> Json {
    let value = traceql::typed(Value::Raw(text.to_string()));
    let rendered = match &value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => text.to_string(),
    };
    json!({"type": type_name(&value), "value": rendered})
}

/// The values of a tag, as (type, value) pairs.
async fn values_of(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
    field: &Field,
) -> Result<Vec<Json>> {
    let limit = params.limit("limit", DEFAULT_LIMIT)?;
    let range = params.seconds_range()?;
    let keywords = |words: &[&str]| -> Vec<Json> {
        words
            .iter()
            .map(|w| json!({"type": "keyword", "value": w}))
            .collect()
    };
    let strings = |values: Vec<String>| -> Vec<Json> {
        values
            .into_iter()
            .map(|v| json!({"type": "string", "value": v}))
            .collect()
    };
    Ok(match field {
        Field::Intrinsic(Intrinsic::Status) => keywords(&["error", "ok", "unset"]),
        Field::Intrinsic(Intrinsic::Kind) => keywords(&[
            "client",
            "consumer",
            "internal",
            "producer",
            "server",
            "unspecified",
        ]),
        Field::Intrinsic(Intrinsic::Name | Intrinsic::RootName) => {
            let mut names: Vec<String> = traces::operations(context, tenant, range, None)
                .await?
                .into_iter()
                .map(|o| o.name)
                .collect();
            names.sort();
            names.dedup();
            names.truncate(limit);
            strings(names)
        }
        Field::Intrinsic(Intrinsic::RootServiceName) => {
            let mut names = traces::service_names(context, tenant, range).await?;
            names.truncate(limit);
            strings(names)
        }
        Field::Intrinsic(_) => Vec::new(),
        Field::Attribute(scope, key) => {
            let scope = match scope {
                Scope::Span => AttributeScope::Span,
                Scope::Resource => AttributeScope::Resource,
                Scope::Any => AttributeScope::Any,
            };
            traces::attribute_values(context, tenant, range, scope, key, limit)
                .await?
                .iter()
                .map(|v| typed_json(v))
                .collect()
        }
    })
}

/// `/api/v2/search/tag/{tag}/values`: `tag` is a TraceQL identifier.
pub(crate) async fn values_v2(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
    tag: &str,
) -> Result<Json> {
    let field = parse_field(tag)?;
    let values = values_of(context, tenant, params, &field).await?;
    Ok(json!({"tagValues": values, "metrics": {}}))
}

/// `/api/search/tag/{tag}/values`: `tag` is a bare attribute name (or an intrinsic).
pub(crate) async fn values_v1(
    context: &QueryContext,
    tenant: &proto::TenantId,
    params: &Params,
    tag: &str,
) -> Result<Json> {
    let field = match parse_field(tag) {
        Ok(field) => field,
        Err(_) => Field::Attribute(Scope::Any, tag.to_string()),
    };
    let values = values_of(context, tenant, params, &field).await?;
    let plain: Vec<Json> = values.into_iter().map(|v| v["value"].clone()).collect();
    Ok(json!({"tagValues": plain}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed() {
        assert_eq!(typed_json("200"), json!({"type": "int", "value": "200"}));
        assert_eq!(typed_json("0.5"), json!({"type": "float", "value": "0.5"}));
        assert_eq!(typed_json("true"), json!({"type": "bool", "value": "true"}));
        assert_eq!(typed_json("api"), json!({"type": "string", "value": "api"}));
    }
}
