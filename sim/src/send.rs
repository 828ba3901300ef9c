//! Sends encoded payloads to Sightline over HTTP, retrying 429/502/503/504 with the
//! server's `Retry-After` (or exponential backoff) and connection failures a few times.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use tracing::{debug, warn};

use crate::encode::Payload;
use crate::error::{Error, Result};

/// Attempts per payload before giving up on an overloaded server.
const MAX_ATTEMPTS: u32 = 30;
/// Attempts per payload when the connection itself fails.
const MAX_CONNECT_ATTEMPTS: u32 = 5;
/// Longest wait honoured from `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP client bound to one Sightline and tenant.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: reqwest::Client,
    base_url: String,
    tenant: Option<String>,
}

impl Sender {
    pub fn new(base_url: &str, tenant: Option<String>) -> Result<Sender> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("sightline-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Request {
                url: base_url.to_string(),
                source,
            })?;
        Ok(Sender {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            tenant,
        })
    }

    /// Sends one payload until it is acknowledged.
    pub async fn send(&self, payload: &Payload) -> Result<()> {
        let url = format!("{}{}", self.base_url, payload.path);
        let mut backoff = Duration::from_millis(100);
        let mut connect_failures = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let mut request = self
                .client
                .post(&url)
                .header(CONTENT_TYPE, payload.content_type)
                .body(payload.body.clone());
            if let Some(encoding) = payload.content_encoding {
                request = request.header(CONTENT_ENCODING, encoding);
            }
            for (name, value) in &payload.extra_headers {
                request = request.header(*name, *value);
            }
            if attempt > 1 {
                request = request.header("Retry-Attempt", (attempt - 1).to_string());
            }
            if let Some(tenant) = &self.tenant {
                request = request.header("X-Scope-OrgID", tenant);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(source)
                    if (source.is_connect() || source.is_timeout())
                        && connect_failures + 1 < MAX_CONNECT_ATTEMPTS =>
                {
                    connect_failures += 1;
                    warn!(%url, error = %source, "send failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_RETRY_AFTER);
                    continue;
                }
                Err(source) => return Err(Error::Request { url, source }),
            };
            let status = response.status();
            if status.is_success() {
                if payload.path.ends_with("_bulk") {
                    let text = response.text().await.map_err(|source| Error::Request {
                        url: url.clone(),
                        source,
                    })?;
                    return check_bulk(&url, &text);
                }
                return Ok(());
            }
            let retryable = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            );
            if !retryable {
                let body = response.text().await.unwrap_or_default();
                return Err(Error::Rejected {
                    url,
                    status: status.as_u16(),
                    body: truncate(&body),
                });
            }
            let wait = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(backoff, |seconds| {
                    Duration::from_secs(seconds).min(MAX_RETRY_AFTER)
                });
            debug!(%url, status = status.as_u16(), ?wait, attempt, "server busy, retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_RETRY_AFTER);
        }
        Err(Error::GaveUp {
            url,
            attempts: MAX_ATTEMPTS,
        })
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(500).collect()
}

/// A `_bulk` answer is 200 even when items failed: report the first failure.
fn check_bulk(url: &str, text: &str) -> Result<()> {
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok(());
    };
    if answer.get("errors").and_then(serde_json::Value::as_bool) != Some(true) {
        return Ok(());
    }
    let first = answer
        .get("items")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_object().and_then(|map| map.values().next()))
        .find(|result| result.get("error").is_some());
    let status = first
        .and_then(|result| result.get("status"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(400);
    Err(Error::Rejected {
        url: url.to_string(),
        status: u16::try_from(status).unwrap_or(400),
        body: truncate(&first.map(ToString::to_string).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_item_errors_are_reported() {
        assert!(check_bulk("u", r#"{"errors":false,"items":[]}"#).is_ok());
        let failed = r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"bad"}}}]}"#;
        let error = check_bulk("u", failed).unwrap_err();
        assert!(
            matches!(error, Error::Rejected { status: 400, .. }),
            "{error}"
        );
    }
}
