//! `_bulk`: NDJSON action/source pairs → log records and ES's per-item results.
//!
//! `index` and `create` append; `delete` and `update` are refused per item (a log
//! store does not rewrite history). A malformed action line fails the whole request
//! (nothing stored); a bad source line fails only its item.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use storage::model::LogRecord;

use super::ecs;

/// A whole-request failure: the body is not valid bulk NDJSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedBulk(pub String);

/// One parsed action and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The action name reported back (`index`, `create`, `delete`, `update`).
    pub action: String,
    /// The target index.
    pub index: String,
    /// The document id (given or generated).
    pub id: String,
    /// `Ok(position in the records)` or the per-item error `(status, type, reason)`.
    pub outcome: Result<usize, (u16, &'static str, String)>,
}

/// The parsed request: records to store and one item per action.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Records of the accepted items, in order.
    pub records: Vec<LogRecord>,
    /// One entry per action, in order.
    pub items: Vec<Item>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A 20-character id, unique within this process, as ES's auto ids look.
fn generate_id(now_ns: i64) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let counter = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut value = (u128::from(now_ns as u64) << 64) | u128::from(counter);
    let mut out = String::with_capacity(20);
    for _ in 0..20 {
        out.push(char::from(ALPHABET[(value & 63) as usize]));
        value >>= 6;
    }
    out
}

fn malformed(line: usize, what: impl std::fmt::Display) -> MalformedBulk {
    MalformedBulk(format!("Malformed action/metadata line [{line}], {what}"))
}

/// Parses a bulk body. `default_index` is the `{index}` path segment, if any.
pub fn parse(
    body: &[u8],
    default_index: Option<&str>,
    now_ns: i64,
) -> Result<Parsed, MalformedBulk> {
    let mut parsed = Parsed::default();
    let mut lines = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, line)| (n + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
    while let Some((number, line)) = lines.next() {
        let action_line: Value = serde_json::from_slice(line)
            .map_err(|e| malformed(number, format_args!("expected a json object: {e}")))?;
        let Value::Object(action_object) = action_line else {
            return Err(malformed(
                number,
                "expected START_OBJECT but found a json value",
            ));
        };
        let mut entries = action_object.into_iter();
        let Some((action, metadata)) = entries.next() else {
            return Err(malformed(
                number,
                "expected FIELD_NAME but found [END_OBJECT]",
            ));
        };
        if entries.next().is_some() {
            return Err(malformed(number, "expected END_OBJECT after the action"));
        }
        if !matches!(action.as_str(), "index" | "create" | "delete" | "update") {
            return Err(malformed(
                number,
                format_args!(
                    "expected field [create], [delete], [index] or [update] but found [{action}]"
                ),
            ));
        }
        let Value::Object(metadata) = metadata else {
            return Err(malformed(
                number,
                format_args!("expected START_OBJECT after [{action}]"),
            ));
        };
        let index = match metadata.get("_index") {
            Some(Value::String(index)) => index.clone(),
            Some(_) => return Err(malformed(number, "[_index] must be a string")),
            None => match default_index {
                Some(index) => index.to_string(),
                None => {
                    return Err(MalformedBulk(format!(
                        "Validation Failed: 1: index is missing for the action on line [{number}]"
                    )));
                }
            },
        };
        let id = match metadata.get("_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Number(id)) => Some(id.to_string()),
            Some(_) => return Err(malformed(number, "[_id] must be a string")),
        };
        let op_type_create = metadata.get("op_type").and_then(Value::as_str) == Some("create");
        let reported = if action == "index" && op_type_create {
            "create".to_string()
        } else {
            action.clone()
        };
        let source = if action == "delete" {
            None
        } else {
            match lines.next() {
                Some((source_number, source_line)) => Some((source_number, source_line)),
                None => {
                    return Err(MalformedBulk(format!(
                        "Validation Failed: 1: the [{action}] action on line [{number}] has no source line"
                    )));
                }
            }
        };
        let outcome = match (action.as_str(), id.as_deref(), source) {
            ("delete", _, _) => Err((
                400,
                "illegal_argument_exception",
                "delete is not supported: this endpoint stores append-only logs".to_string(),
            )),
            ("update", _, _) => Err((
                400,
                "illegal_argument_exception",
                "update is not supported: this endpoint stores append-only logs".to_string(),
            )),
            (_, Some(""), _) => Err((
                400,
                "illegal_argument_exception",
                "if _id is specified it must not be empty".to_string(),
            )),
            (_, _, Some((source_number, source_line))) => {
                match serde_json::from_slice::<Value>(source_line) {
                    Err(e) => Err((
                        400,
                        "document_parsing_exception",
                        format!("[{source_number}:{}] failed to parse: {e}", e.column()),
                    )),
                    Ok(source) => match ecs::document_to_record(source, &index, now_ns) {
                        Ok(record) => {
                            parsed.records.push(record);
                            Ok(parsed.records.len() - 1)
                        }
                        Err(error) => Err((400, "document_parsing_exception", error.0)),
                    },
                }
            }
            (_, _, None) => Err((
                400,
                "illegal_argument_exception",
                "missing source".to_string(),
            )),
        };
        parsed.items.push(Item {
            action: reported,
            index,
            id: id.unwrap_or_else(|| generate_id(now_ns)),
            outcome,
        });
    }
    if parsed.items.is_empty() {
        return Err(MalformedBulk(
            "Validation Failed: 1: no requests added".to_string(),
        ));
    }
    Ok(parsed)
}

/// ES's error object for a per-item or whole-request failure.
pub fn error_object(kind: &str, reason: &str) -> Value {
    json!({"type": kind, "reason": reason})
}

/// The `_bulk` response body for stored items, serialized straight from them (a
/// `serde_json::Value` tree of a thousand items cost a seventh of a `_bulk` request's
/// CPU).
pub fn response(items: &[Item], took_ms: u64) -> BulkResponse<'_> {
    BulkResponse { items, took_ms }
}

/// The `_bulk` response body: `took`, `errors` and one result per item.
pub struct BulkResponse<'a> {
    items: &'a [Item],
    took_ms: u64,
}

impl Serialize for BulkResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("took", &self.took_ms)?;
        map.serialize_entry(
            "errors",
            &self.items.iter().any(|item| item.outcome.is_err()),
        )?;
        map.serialize_entry("items", &ItemResults(self.items))?;
        map.end()
    }
}

struct ItemResults<'a>(&'a [Item]);

impl Serialize for ItemResults<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .enumerate()
                .map(|(seq_no, item)| ItemResult { seq_no, item }),
        )
    }
}

/// `{"<action>": {...}}` for one item.
struct ItemResult<'a> {
    seq_no: usize,
    item: &'a Item,
}

impl Serialize for ItemResult<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let item = self.item;
        let mut map = serializer.serialize_map(Some(1))?;
        match &item.outcome {
            Ok(_) => map.serialize_entry(
                &item.action,
                &Stored {
                    _index: &item.index,
                    _id: &item.id,
                    _version: 1,
                    result: "created",
                    _shards: Shards {
                        total: 1,
                        successful: 1,
                        failed: 0,
                    },
                    _seq_no: self.seq_no,
                    _primary_term: 1,
                    status: 201,
                },
            )?,
            Err((status, kind, reason)) => map.serialize_entry(
                &item.action,
                &Refused {
                    _index: &item.index,
                    _id: &item.id,
                    status: *status,
                    error: ItemError { kind, reason },
                },
            )?,
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Stored<'a> {
    _index: &'a str,
    _id: &'a str,
    _version: u32,
    result: &'static str,
    _shards: Shards,
    _seq_no: usize,
    _primary_term: u32,
    status: u16,
}

#[derive(Serialize)]
struct Shards {
    total: u32,
    successful: u32,
    failed: u32,
}

#[derive(Serialize)]
struct Refused<'a> {
    _index: &'a str,
    _id: &'a str,
    status: u16,
    error: ItemError<'a>,
}

/// [`error_object`] of one item.
#[derive(Serialize)]
struct ItemError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    reason: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(body: &str, index: Option<&str>) -> Result<Parsed, MalformedBulk> {
        parse(body.as_bytes(), index, 1_000)
    }

    #[test]
    fn index_and_create_append_in_order() {
        let body = concat!(
            "{\"index\":{\"_index\":\"logs-app\",\"_id\":\"1\"}}\n",
            "{\"message\":\"hello\"}\n",
            "{\"create\":{}}\r\n",
            "{\"message\":\"world\"}\n",
            "\n",
            "{\"index\":{\"op_type\":\"create\"}}\n",
            "{\"message\":\"third\"}",
        );
        let parsed = parse_str(body, Some("default-index")).unwrap();
        assert_eq!(parsed.records.len(), 3);
        assert_eq!(parsed.items[0].index, "logs-app");
        assert_eq!(parsed.items[0].id, "1");
        assert_eq!(parsed.items[1].index, "default-index");
        assert_eq!(parsed.items[1].id.len(), 20);
        assert_eq!(parsed.items[2].action, "create");
        assert_eq!(parsed.records[1].body, "world");
        let response = serde_json::to_value(response(&parsed.items, 1)).unwrap();
        assert_eq!(response["errors"], false);
        assert_eq!(response["items"][0]["index"]["status"], 201);
        assert_eq!(response["items"][2]["create"]["result"], "created");
        assert_eq!(
            response["items"][1],
            json!({"create": {
                "_index": "default-index",
                "_id": parsed.items[1].id,
                "_version": 1,
                "result": "created",
                "_shards": {"total": 1, "successful": 1, "failed": 0},
                "_seq_no": 1,
                "_primary_term": 1,
                "status": 201,
            }})
        );
        assert_eq!(response["took"], 1);
        assert_eq!(response.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn bad_items_fail_alone() {
        let body = concat!(
            "{\"index\":{\"_index\":\"a\",\"_id\":\"\"}}\n{\"f\":1}\n",
            "{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{\"doc\":{\"f\":2}}\n",
            "{\"index\":{\"_index\":\"a\"}}\n\"just a string\"\n",
            "{\"index\":{\"_index\":\"a\"}}\n{\"@timestamp\":\"nope\"}\n",
            "{\"index\":{\"_index\":\"a\"}}\n{not json}\n",
            "{\"index\":{\"_index\":\"a\"}}\n{\"f\":3}\n",
        );
        let parsed = parse_str(body, None).unwrap();
        assert_eq!(parsed.items.len(), 7);
        assert_eq!(parsed.records.len(), 1);
        let response = serde_json::to_value(response(&parsed.items, 1)).unwrap();
        assert_eq!(response["errors"], true);
        let items = response["items"].as_array().unwrap();
        assert_eq!(
            items[1],
            json!({"delete": {
                "_index": "a",
                "_id": "1",
                "status": 400,
                "error": error_object(
                    items[1]["delete"]["error"]["type"].as_str().unwrap(),
                    items[1]["delete"]["error"]["reason"].as_str().unwrap(),
                ),
            }})
        );
        assert_eq!(
            items[0]["index"]["error"]["reason"],
            "if _id is specified it must not be empty"
        );
        assert_eq!(items[1]["delete"]["status"], 400);
        assert_eq!(
            items[2]["update"]["error"]["type"],
            "illegal_argument_exception"
        );
        assert_eq!(
            items[3]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        assert_eq!(
            items[4]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        assert_eq!(
            items[5]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        assert_eq!(items[6]["index"]["status"], 201);
    }

    #[test]
    fn malformed_action_lines_fail_the_request() {
        let empty = "{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"f1\":\"v1\"}\n{}\n";
        let error = parse_str(empty, None).unwrap_err();
        assert_eq!(
            error.0,
            "Malformed action/metadata line [3], expected FIELD_NAME but found [END_OBJECT]"
        );
        for body in [
            "not json\n{}\n",
            "{\"upsert\":{}}\n{}\n",
            "[1]\n",
            "{\"index\":{\"_index\":\"a\"}}\n",
            "{\"index\":{}}\n{}\n",
            "",
            "{\"index\":{\"_index\":\"a\"},\"create\":{}}\n{}\n",
        ] {
            assert!(parse_str(body, None).is_err(), "{body:?} accepted");
        }
    }
}
