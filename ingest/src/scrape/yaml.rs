//! Prometheus file-SD target files written in YAML, read into a JSON value with every
//! scalar as a string (the file-SD schema has only strings), through `yaml-rust2`.
//!
//! A first pass over the parser's events refuses what could make loading costly:
//! aliases (each one copies its anchor's subtree, so a few lines can expand without
//! bound) and nesting deeper than [`MAX_DEPTH`]. Only then is the document loaded.

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

/// Deepest nesting accepted, so hostile input cannot recurse deeply.
const MAX_DEPTH: usize = 32;

/// Parses one document (an empty file is `Null`).
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    check_events(text)?;
    let mut documents = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match documents.len() {
        0 => Ok(Value::Null),
        1 => to_json(documents.pop().unwrap_or(Yaml::Null)),
        _ => Err("only one YAML document is read".to_string()),
    }
}

fn check_events(text: &str) -> Result<(), String> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0_usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| e.to_string())?;
        match event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => {
                return Err(format!(
                    "line {}: aliases are not supported in target files",
                    mark.line()
                ));
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "line {}: nested deeper than {MAX_DEPTH} levels",
                        mark.line()
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

fn to_json(node: Yaml) -> Result<Value, String> {
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Array(items) => Value::Array(
            items
                .into_iter()
                .map(to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Yaml::Hash(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let Some(key) = scalar_text(key) else {
                    return Err("mapping keys must be scalars".to_string());
                };
                map.insert(key, to_json(value)?);
            }
            Value::Object(map)
        }
        other => match scalar_text(other) {
            Some(text) => Value::String(text),
            None => return Err("unreadable YAML value".to_string()),
        },
    })
}

/// A scalar as the text it was written as (`8080`, `true`, `1.5` stay strings).
fn scalar_text(node: Yaml) -> Option<String> {
    match node {
        Yaml::String(text) | Yaml::Real(text) => Some(text),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_sd_shapes_parse() {
        let text = r#"
# targets of the web tier
- targets:
  - web-1:8080   # first
  - "web-2:8080"
  labels:
    env: prod
    team: 'a''s'
    port: 8080
- targets: [db-1:9104, 'db-2:9104']
  labels: {env: prod, role: db}
-   targets:
      - cache:9121
    labels:
      note: >
        folded
        text
"#;
        assert_eq!(
            parse(text).unwrap(),
            json!([
                {"targets": ["web-1:8080", "web-2:8080"], "labels": {"env": "prod", "team": "a's", "port": "8080"}},
                {"targets": ["db-1:9104", "db-2:9104"], "labels": {"env": "prod", "role": "db"}},
                {"targets": ["cache:9121"], "labels": {"note": "folded text\n"}}
            ])
        );
        assert_eq!(parse("---\n[]\n").unwrap(), json!([]));
        assert_eq!(parse("").unwrap(), Value::Null);
    }

    #[test]
    fn costly_or_broken_yaml_is_an_error() {
        for text in [
            "- &a x\n- *a\n",
            "- [a, b\n",
            "a: 1\na: 2\n",
            "- a\n---\n- b\n",
            "a:\n    b: 1\n  c: 2\n",
            "? [a]\n: b\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
    }
}
