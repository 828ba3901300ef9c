//! Request parameters and error bodies shared by the trace read APIs (Tempo, Zipkin,
//! Jaeger, service graph).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::traces::{MAX_LIMIT, TimeRange};
use crate::{Error, Result};

/// The query string of a request, in order, repeated keys kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first value of `name`, empty values treated as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// An integer parameter.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|value| {
                value.trim().parse::<i64>().map_err(|_| {
                    Error::BadRequest(format!(
                        "invalid parameter {name:?}: {value:?} is not an integer"
                    ))
                })
            })
            .transpose()
    }

    /// A result limit: `default` when absent, at most [`MAX_LIMIT`].
    pub(crate) fn limit(&self, name: &str, default: usize) -> Result<usize> {
        match self.int(name)? {
            None => Ok(default),
            Some(limit) if limit > 0 => Ok((limit as usize).min(MAX_LIMIT)),
            Some(_) => Ok(default),
        }
    }

    /// A Go-style duration (`100ms`, `1.5s`, `2m`, `1h30m`) in nanoseconds.
    pub(crate) fn go_duration(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|value| {
                parse_go_duration(value).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "invalid parameter {name:?}: {value:?} is not a duration"
                    ))
                })
            })
            .transpose()
    }

    /// A window from `start`/`end` in Unix seconds (Tempo), defaulting to the last hour.
    pub(crate) fn seconds_range(&self) -> Result<TimeRange> {
        let recent = TimeRange::recent();
        let seconds = |name: &str, default: i64| -> Result<i64> {
            Ok(self
                .int(name)?
                .filter(|s| *s > 0)
                .map_or(default, |s| s.saturating_mul(1_000_000_000)))
        };
        let end = seconds("end", recent.end_ns)?;
        let start = seconds(
            "start",
            end.saturating_sub(crate::traces::DEFAULT_WINDOW_NS),
        )?;
        TimeRange {
            start_ns: start,
            end_ns: end.saturating_add(999_999_999),
        }
        .validate()
    }
}

/// Parses a Go duration string into nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(plain) = text.parse::<i64>() {
        return Some(plain);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total.is_finite() && total < i64::MAX as f64).then_some(total as i64)
}

/// The status and client-facing message of an error; 5xx details are logged, not sent.
pub(crate) fn status_and_message(error: &Error) -> (StatusCode, String) {
    let status = StatusCode::from_u16(error.code().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() && !matches!(error, Error::Timeout(_) | Error::NotReady(_)) {
        tracing::error!(error = ?error, "trace read failed");
        return (status, "internal error".to_string());
    }
    (status, error.to_string())
}

/// An error as a plain-text response (Tempo, Zipkin).
pub(crate) fn text_error(error: Error) -> Response {
    let (status, message) = status_and_message(&error);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// Whether the client asked for protobuf.
pub(crate) fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("100ms"), Some(100_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("250us"), Some(250_000));
        assert_eq!(parse_go_duration("42"), Some(42));
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration("ms"), None);
    }

    #[test]
    fn params() {
        let params = Params(vec![
            ("limit".into(), "5".into()),
            ("tags".into(), "".into()),
            ("start".into(), "100".into()),
            ("end".into(), "200".into()),
        ]);
        assert_eq!(params.limit("limit", 20).unwrap(), 5);
        assert_eq!(params.get("tags"), None);
        let range = params.seconds_range().unwrap();
        assert_eq!(range.start_ns, 100_000_000_000);
        assert_eq!(range.end_ns, 200_999_999_999);
        assert!(
            Params(vec![("limit".into(), "x".into())])
                .limit("limit", 1)
                .is_err()
        );
    }
}
