//! Loki push bodies (JSON, snappy protobuf) → [`Stream`]s.

use prost::Message;
use serde_json::Value;

use super::labels::parse_labels;

/// One log line of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// UTC nanoseconds.
    pub timestamp_ns: i64,
    /// The line.
    pub line: String,
    /// Structured metadata, in order.
    pub metadata: Vec<(String, String)>,
}

/// One stream: its labels and entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Stream labels, in order.
    pub labels: Vec<(String, String)>,
    /// The entries.
    pub entries: Vec<Entry>,
}

fn check_labels(labels: &[(String, String)], position: usize) -> Result<(), String> {
    if labels.is_empty() {
        return Err(format!(
            "stream {position}: at least one label pair is required per stream"
        ));
    }
    if let Some((name, _)) = labels.iter().find(|(name, _)| !is_label_name(name)) {
        return Err(format!(
            "stream {position}: invalid label name {name:?} (use [a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    Ok(())
}

/// Loki (like Prometheus) accepts `[a-zA-Z_][a-zA-Z0-9_]*` as stream label names.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn json_text_map(value: &Value, what: &str) -> Result<Vec<(String, String)>, String> {
    let Value::Object(map) = value else {
        return Err(format!("{what} must be an object of strings"));
    };
    map.iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            _ => Err(format!("{what} value of {key:?} must be a string")),
        })
        .collect()
}

fn json_entry(value: &Value, stream: usize, line: usize) -> Result<Entry, String> {
    let at = |e: String| format!("stream {stream} value {line}: {e}");
    let Value::Array(parts) = value else {
        return Err(at(
            "expected [\"<unix ns>\", \"<line>\"(, {metadata})]".to_string()
        ));
    };
    if !(2..=3).contains(&parts.len()) {
        return Err(at(format!(
            "expected 2 or 3 elements, found {}",
            parts.len()
        )));
    }
    let timestamp_ns = match &parts[0] {
        Value::String(text) => text.parse::<i64>().map_err(|_| {
            at(format!(
                "timestamp {text:?} is not an integer of nanoseconds"
            ))
        })?,
        _ => {
            return Err(at(
                "timestamp must be a string of unix nanoseconds".to_string()
            ));
        }
    };
    let Value::String(text) = &parts[1] else {
        return Err(at("log line must be a string".to_string()));
    };
    let metadata = match parts.get(2) {
        None => Vec::new(),
        Some(value) => json_text_map(value, "structured metadata").map_err(at)?,
    };
    Ok(Entry {
        timestamp_ns,
        line: text.clone(),
        metadata,
    })
}

/// Decodes a JSON push body.
pub fn decode_json(body: &[u8]) -> Result<Vec<Stream>, String> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid loki push json: {e}"))?;
    let Some(Value::Array(streams)) = root.get("streams") else {
        return Err("invalid loki push json: expected {\"streams\":[…]}".to_string());
    };
    streams
        .iter()
        .enumerate()
        .map(|(position, stream)| {
            let labels = json_text_map(
                stream.get("stream").unwrap_or(&Value::Null),
                "stream labels",
            )
            .map_err(|e| format!("stream {position}: {e}"))?;
            check_labels(&labels, position)?;
            let entries = match stream.get("values") {
                Some(Value::Array(values)) => values
                    .iter()
                    .enumerate()
                    .map(|(line, value)| json_entry(value, position, line))
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
                Some(_) => return Err(format!("stream {position}: values must be an array")),
            };
            Ok(Stream { labels, entries })
        })
        .collect()
}

/// Decodes an (already decompressed) protobuf `PushRequest` body.
pub fn decode_proto(body: &[u8]) -> Result<Vec<Stream>, String> {
    let request = proto::loki::PushRequest::decode(body)
        .map_err(|e| format!("invalid loki push protobuf: {e}"))?;
    request
        .streams
        .into_iter()
        .enumerate()
        .map(|(position, stream)| {
            let labels =
                parse_labels(&stream.labels).map_err(|e| format!("stream {position}: {e}"))?;
            check_labels(&labels, position)?;
            let entries = stream
                .entries
                .into_iter()
                .map(|entry| {
                    let timestamp = entry.timestamp.unwrap_or_default();
                    let timestamp_ns = timestamp
                        .seconds
                        .checked_mul(1_000_000_000)
                        .and_then(|ns| ns.checked_add(i64::from(timestamp.nanos)))
                        .ok_or_else(|| format!("stream {position}: timestamp out of range"))?;
                    Ok(Entry {
                        timestamp_ns,
                        line: entry.line,
                        metadata: entry
                            .structured_metadata
                            .into_iter()
                            .map(|pair| (pair.name, pair.value))
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Stream { labels, entries })
        })
        .collect()
}

#[cfg(test)]
mod label_name_tests {
    use super::*;

    #[test]
    fn json_streams_with_invalid_label_names_are_refused() {
        let labels = vec![("ser]vice_naje".to_string(), "支付".to_string())];
        let error = check_labels(&labels, 0).unwrap_err();
        assert!(error.contains("invalid label name"), "{error}");
        assert!(check_labels(&[("service_name".into(), "x".into())], 0).is_ok());
        assert!(!is_label_name("1abc") && !is_label_name("") && is_label_name("_a1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_push_decodes() {
        let body = br#"{"streams":[{"stream":{"job":"api","level":"error"},
            "values":[["1700000000000000000","boom"],["1700000001000000000","with meta",{"trace_id":"ab","user":"u1"}]]}]}"#;
        let streams = decode_json(body).unwrap();
        assert_eq!(streams[0].labels.len(), 2);
        assert_eq!(
            streams[0].entries[1].timestamp_ns,
            1_700_000_001_000_000_000
        );
        assert_eq!(
            streams[0].entries[1].metadata[1],
            ("user".to_string(), "u1".to_string())
        );
    }

    #[test]
    fn bad_json_names_the_problem() {
        let cases: [(&[u8], &str); 6] = [
            (b"nope", "invalid loki push json"),
            (br#"{"streams":{}}"#, "streams"),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[[1700000000000000000,"x"]]}]}"#,
                "timestamp must be a string",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["x","y"]]}]}"#,
                "not an integer",
            ),
            (
                br#"{"streams":[{"stream":{},"values":[]}]}"#,
                "at least one label",
            ),
            (
                br#"{"streams":[{"stream":{"a":"b"},"values":[["1","y",{"k":1}]]}]}"#,
                "must be a string",
            ),
        ];
        for (body, expected) in cases {
            let error = decode_json(body).unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[test]
    fn proto_push_decodes() {
        let request = proto::loki::PushRequest {
            streams: vec![proto::loki::StreamAdapter {
                labels: r#"{app="支付"}"#.into(),
                entries: vec![proto::loki::EntryAdapter {
                    timestamp: Some(proto::loki::Timestamp {
                        seconds: 2,
                        nanos: 5,
                    }),
                    line: "行".into(),
                    structured_metadata: vec![proto::loki::LabelPairAdapter {
                        name: "traceID".into(),
                        value: "ab".into(),
                    }],
                    parsed: vec![],
                }],
                hash: 0,
            }],
            format: String::new(),
        };
        let streams = decode_proto(&request.encode_to_vec()).unwrap();
        assert_eq!(
            streams[0].labels,
            vec![("app".to_string(), "支付".to_string())]
        );
        assert_eq!(streams[0].entries[0].timestamp_ns, 2_000_000_005);
        assert!(
            decode_proto(b"\x0a\x05\x0a\x03{a}")
                .unwrap_err()
                .contains("stream labels")
        );
    }
}
