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
        let mut last_busy = (0_u16, String::new());
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
                if payload.path.starts_with("/v1/") {
                    let body = response.bytes().await.map_err(|source| Error::Request {
                        url: url.clone(),
                        source,
                    })?;
                    return check_otlp(&url, payload.path, &body);
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
            let body = response.text().await.unwrap_or_default();
            debug!(%url, status = status.as_u16(), ?wait, attempt, %body, "server busy, retrying");
            last_busy = (status.as_u16(), truncate(&body));
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_RETRY_AFTER);
        }
        let (status, body) = last_busy;
        Err(Error::GaveUp {
            url,
            attempts: MAX_ATTEMPTS,
            status,
            body,
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

/// An OTLP/HTTP 200 may still reject records (`partial_success`): report them.
fn check_otlp(url: &str, path: &str, body: &[u8]) -> Result<()> {
    use prost::Message as _;
    use proto::otlp::{ExportLogsServiceResponse, ExportTraceServiceResponse};
    let rejected = if path == "/v1/traces" {
        ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|answer| answer.partial_success)
            .map(|partial| (partial.rejected_spans, partial.error_message))
    } else {
        ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|answer| answer.partial_success)
            .map(|partial| (partial.rejected_log_records, partial.error_message))
    };
    match rejected {
        Some((count, message)) if count > 0 => Err(Error::Rejected {
            url: url.to_string(),
            status: 200,
            body: truncate(&format!("{count} records rejected: {message}")),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server answering each connection with the next canned status;
    /// returns its URL and the headers of every request it saw.
    async fn canned_server(
        answers: Vec<&'static str>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                loop {
                    let read = stream.read(&mut buffer).await.unwrap();
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_string)
                            })
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            seen.push(head.to_string());
                            break;
                        }
                    }
                    if read == 0 {
                        break;
                    }
                }
                let response =
                    format!("HTTP/1.1 {answer}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
            seen
        });
        (url, handle)
    }

    fn payload() -> Payload {
        Payload {
            path: "/api/v1/write",
            content_type: "application/x-protobuf",
            content_encoding: Some("snappy"),
            extra_headers: vec![("X-Prometheus-Remote-Write-Version", "0.1.0")],
            body: b"hello".to_vec(),
            signal: crate::encode::Signal::Samples,
            records: 1,
        }
    }

    #[tokio::test]
    async fn overload_is_retried_after_the_servers_delay() {
        let (url, server) = canned_server(vec![
            "429 Too Many Requests\r\nRetry-After: 1",
            "503 Service Unavailable",
            "204 No Content",
        ])
        .await;
        let sender = Sender::new(&url, Some("team-a".to_string())).unwrap();
        let started = std::time::Instant::now();
        sender.send(&payload()).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter()
                .all(|head| head.to_ascii_lowercase().contains("x-scope-orgid: team-a"))
        );
        assert!(
            seen[2].to_ascii_lowercase().contains("retry-attempt: 2"),
            "{}",
            seen[2]
        );

        let (url, server) = canned_server(vec!["400 Bad Request"]).await;
        let error = Sender::new(&url, None)
            .unwrap()
            .send(&payload())
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Rejected { status: 400, .. }),
            "{error}"
        );
        server.await.unwrap();
    }

    #[test]
    fn otlp_partial_success_is_reported() {
        use prost::Message as _;
        use proto::otlp::{ExportTracePartialSuccess, ExportTraceServiceResponse};
        assert!(check_otlp("u", "/v1/traces", &[]).is_ok());
        let answer = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "span starts in the future".to_string(),
            }),
        };
        let error = check_otlp("u", "/v1/traces", &answer.encode_to_vec()).unwrap_err();
        assert!(error.to_string().contains("2 records rejected"), "{error}");
    }

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
