//! OTLP/HTTP bodies: protobuf or OTLP/JSON in, the same encoding out.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use proto::otlp::{Message, RpcStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The encoding of an OTLP/HTTP request, and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json` (OTLP/JSON)
    Json,
}

impl Format {
    /// Reads `Content-Type`; anything but protobuf or JSON is `Err` with the 415 answer.
    pub fn from_headers(headers: &HeaderMap) -> Result<Format, UnsupportedMediaType> {
        let value = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let media_type = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media_type.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            _ => Err(UnsupportedMediaType(format!(
                "unsupported content-type {value:?} (use application/x-protobuf or application/json)"
            ))),
        }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            Format::Protobuf => HeaderValue::from_static("application/x-protobuf"),
            Format::Json => HeaderValue::from_static("application/json"),
        }
    }
}

/// A request whose `Content-Type` is neither protobuf nor JSON: answered 415 with a JSON status.
#[derive(Debug)]
pub(crate) struct UnsupportedMediaType(String);

impl IntoResponse for UnsupportedMediaType {
    fn into_response(self) -> Response {
        let status = RpcStatus {
            code: 3,
            message: self.0,
        };
        let body = status_json(&status);
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, json_headers(), body).into_response()
    }
}

fn json_headers() -> [(axum::http::HeaderName, HeaderValue); 1] {
    [(CONTENT_TYPE, Format::Json.content_type())]
}

fn status_json(status: &RpcStatus) -> Vec<u8> {
    serde_json::json!({ "code": status.code, "message": status.message })
        .to_string()
        .into_bytes()
}

/// Decodes an export request in `format`. Upper-case hex ids are fine in JSON.
pub(crate) fn decode<T: Message + Default + DeserializeOwned>(
    format: Format,
    body: &[u8],
) -> Result<T> {
    match format {
        Format::Protobuf => T::decode(body)
            .map_err(|e| Error::BadRequest(format!("invalid otlp protobuf body: {e}"))),
        Format::Json => serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("invalid otlp json body: {e}"))),
    }
}

/// The 200 answer: the export response in `format` (`{}` when it is empty).
pub(crate) fn respond<T: Message + Serialize + Default + PartialEq>(
    format: Format,
    response: &T,
) -> Response {
    let body = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json if *response == T::default() => b"{}".to_vec(),
        Format::Json => serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    ([(CONTENT_TYPE, format.content_type())], body).into_response()
}

/// An error answer: `google.rpc.Status` in `format`, with the status and `Retry-After` of `error`.
pub(crate) fn respond_error(format: Format, error: &Error) -> Response {
    let status = RpcStatus {
        code: error.code().grpc_code(),
        message: error.client_message(),
    };
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => status_json(&status),
    };
    error.respond_with(([(CONTENT_TYPE, format.content_type())], body))
}

#[cfg(test)]
mod tests {
    use proto::otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse};

    use super::*;

    #[test]
    fn json_ids_are_hex_in_either_case() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C",
            "spanId":"eee19b7ec3c1b174","parentSpanId":"","name":"x","startTimeUnixNano":"1","endTimeUnixNano":2}]}]}]}"#;
        let request: ExportTraceServiceRequest = decode(Format::Json, body).unwrap_or_default();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[..2], [0x5b, 0x8e]);
        assert_eq!(span.span_id[..2], [0xee, 0xe1]);
        assert!(span.parent_span_id.is_empty());
        assert_eq!((span.start_time_unix_nano, span.end_time_unix_nano), (1, 2));
    }

    #[test]
    fn garbage_is_a_bad_request_naming_the_encoding() {
        let error = decode::<ExportTraceServiceRequest>(Format::Protobuf, b"\xff\xff\xff").err();
        assert!(error.is_some_and(|e| e.to_string().contains("invalid otlp protobuf body")));
        let error = decode::<ExportTraceServiceRequest>(Format::Json, b"{").err();
        assert!(error.is_some_and(|e| e.to_string().contains("invalid otlp json body")));
    }

    #[test]
    fn content_types_dispatch() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(Format::from_headers(&headers).ok(), Some(Format::Json));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        assert_eq!(Format::from_headers(&headers).ok(), Some(Format::Protobuf));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let refused = Format::from_headers(&headers)
            .err()
            .map(|r| r.into_response().status());
        assert_eq!(refused, Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }

    #[test]
    fn empty_responses_are_empty() {
        let response = respond(Format::Json, &ExportTraceServiceResponse::default());
        assert_eq!(response.status(), StatusCode::OK);
        let response = respond_error(Format::Json, &Error::BadRequest("nope".to_string()));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = respond_error(Format::Protobuf, &Error::NotReady("opening"));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            response
                .headers()
                .contains_key(axum::http::header::RETRY_AFTER)
        );
        assert_eq!(response.headers()[CONTENT_TYPE], "application/x-protobuf");
    }
}
