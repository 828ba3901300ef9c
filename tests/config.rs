//! The sample config in `deploy/` is the defaults, documents every key, and so does the
//! README; a wrong key is an error that names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sightline::{Config, ConfigError};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

const EXAMPLE: &str = "deploy/sightline.example.toml";

/// Returns every `section.key` that holds a value (nulls, i.e. unset options, left out).
fn dotted_keys(value: &serde_json::Value, prefix: &str, keys: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, child) in map {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                dotted_keys(child, &path, keys);
            }
        }
        serde_json::Value::Null => {}
        _ => {
            keys.insert(prefix.to_string());
        }
    }
}

fn default_keys() -> BTreeSet<String> {
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut keys = BTreeSet::new();
    dotted_keys(&defaults, "", &mut keys);
    keys
}

#[test]
fn example_config_equals_the_defaults() {
    let example = Config::load(&repo_file(EXAMPLE)).unwrap();
    assert_eq!(example, Config::default());
    example.validate().unwrap();
}

#[test]
fn example_config_sets_every_key() {
    let text = std::fs::read_to_string(repo_file(EXAMPLE)).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut example_keys = BTreeSet::new();
    dotted_keys(
        &serde_json::to_value(&table).unwrap(),
        "",
        &mut example_keys,
    );
    let missing: Vec<_> = default_keys().difference(&example_keys).cloned().collect();
    assert!(missing.is_empty(), "{EXAMPLE} lacks {missing:?}");
    // Options without a default value (storage.url) must at least be shown commented out.
    assert!(text.contains("# url = "), "{EXAMPLE} must show storage.url");
}

#[test]
fn readme_documents_every_key() {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let mut undocumented: Vec<_> = default_keys()
        .into_iter()
        .filter(|key| !readme.contains(&format!("`{key}`")))
        .collect();
    if !readme.contains("`storage.url`") {
        undocumented.push("storage.url".to_string());
    }
    assert!(undocumented.is_empty(), "README.md lacks {undocumented:?}");
}

#[test]
fn wrong_key_is_an_error_naming_the_key() {
    let error = Config::load(&repo_file("tests/fixtures/wrong_key.toml")).unwrap_err();
    assert!(matches!(error, ConfigError::Parse { .. }), "{error:?}");
    let message = format!("{:#}", anyhow::Error::from(error));
    assert!(message.contains("data_directory"), "{message}");
    assert!(message.contains("wrong_key.toml"), "{message}");
}

#[test]
fn wrong_value_is_an_error_naming_the_value() {
    let error =
        toml::from_str::<Config>("[server]\notlp_http_listen = \"sometimes\"\n").unwrap_err();
    assert!(error.to_string().contains("sometimes"), "{error}");
}

#[test]
fn missing_file_is_an_error_naming_the_file() {
    let error = Config::load(Path::new("/nonexistent/sightline.toml")).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/sightline.toml"),
        "{error}"
    );
}
