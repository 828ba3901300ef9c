//! Index templates, component templates, legacy `_template`s and ILM policies that
//! collectors install at start-up (Filebeat, Logstash): kept per tenant and persisted
//! in `<data_dir>/es_templates.json` (written to a temporary file, fsynced, renamed,
//! directory fsynced), so that after a restart `GET`/`HEAD` still find them and the
//! collector does not reinstall them. They change nothing in how documents are
//! stored: Sightline maps `_bulk` documents by ECS, not by mapping.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// File name of the store, in the data directory.
pub const FILE_NAME: &str = "es_templates.json";

/// Most entries (of all kinds) one tenant may keep.
pub(crate) const MAX_ENTRIES_PER_TENANT: usize = 512;

/// Largest body of one entry, serialised (Filebeat's index template is ~0.5 MB).
pub(crate) const MAX_ENTRY_BYTES: usize = 4 << 20;

/// What is stored under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// `/_index_template/<name>` (composable index templates, ES ≥ 7.8).
    IndexTemplate,
    /// `/_component_template/<name>`.
    ComponentTemplate,
    /// `/_template/<name>` (legacy templates, Beats/Logstash 7.x).
    LegacyTemplate,
    /// `/_ilm/policy/<name>`.
    IlmPolicy,
}

impl Kind {
    /// Recognises the path of an endpoint: `(first segment, rest)`.
    /// Returns the kind and the name part (possibly empty: "all").
    pub(crate) fn from_path<'a>(first: &str, rest: &'a str) -> Option<(Kind, &'a str)> {
        match first {
            "_index_template" => Some((Kind::IndexTemplate, rest)),
            "_component_template" => Some((Kind::ComponentTemplate, rest)),
            "_template" => Some((Kind::LegacyTemplate, rest)),
            "_ilm" => match rest.strip_prefix("policy") {
                Some("") => Some((Kind::IlmPolicy, "")),
                Some(name) => name.strip_prefix('/').map(|name| (Kind::IlmPolicy, name)),
                None => None,
            },
            _ => None,
        }
    }

    /// The noun ES uses in its not-found messages.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::IndexTemplate => "index template",
            Kind::ComponentTemplate => "component template",
            Kind::LegacyTemplate => "index_template",
            Kind::IlmPolicy => "lifecycle policy",
        }
    }
}

/// One stored body with its version (bumped on every `PUT`) and modification time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub body: Value,
    pub version: u64,
    pub modified_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// tenant → kind → name → entry.
    tenants: BTreeMap<String, BTreeMap<Kind, BTreeMap<String, Entry>>>,
}

/// Why a write was refused (a 400 for the client, or a 500 when the disk failed).
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The request itself is wrong (name, body, limits).
    Invalid(String),
    /// `create=true` and the name is taken.
    Exists(String),
    /// The file could not be written.
    Io(std::io::Error),
}

/// All templates and policies, loaded from and saved to one file.
#[derive(Debug)]
pub(crate) struct TemplateStore {
    path: Option<PathBuf>,
    stored: Stored,
}

impl TemplateStore {
    /// Loads the store from `dir` (an absent file is an empty store; an unreadable one
    /// is logged and starts empty, since it is only collector bookkeeping). `None`
    /// keeps it in memory only.
    pub(crate) fn open(dir: Option<&Path>) -> Self {
        let path = dir.map(|dir| dir.join(FILE_NAME));
        let stored = match &path {
            Some(path) => match fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                    tracing::warn!(path = %path.display(), %error, "cannot parse es templates, starting empty");
                    Stored::default()
                }),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Stored::default(),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read es templates, starting empty");
                    Stored::default()
                }
            },
            None => Stored::default(),
        };
        TemplateStore { path, stored }
    }

    /// Entries of `kind` whose names match `pattern` (comma-separated names, `*`
    /// wildcards; empty or `*` = all), in name order.
    pub(crate) fn get(&self, tenant: &str, kind: Kind, pattern: &str) -> Vec<(String, Entry)> {
        let Some(entries) = self.stored.tenants.get(tenant).and_then(|t| t.get(&kind)) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|(name, _)| matches_pattern(pattern, name))
            .map(|(name, entry)| (name.clone(), entry.clone()))
            .collect()
    }

    /// Stores `body` under `name`; `create` refuses to replace.
    pub(crate) fn put(
        &mut self,
        tenant: &str,
        kind: Kind,
        name: &str,
        body: Value,
        create: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        validate_name(name)?;
        if !body.is_object() {
            return Err(StoreError::Invalid(
                "the request body must be a JSON object".to_string(),
            ));
        }
        let size = serde_json::to_vec(&body).map(|b| b.len()).unwrap_or(0);
        if size > MAX_ENTRY_BYTES {
            return Err(StoreError::Invalid(format!(
                "{} [{name}] is {size} bytes, more than the {MAX_ENTRY_BYTES} this server keeps",
                kind.noun()
            )));
        }
        let tenant_entries = self.stored.tenants.entry(tenant.to_string()).or_default();
        let total: usize = tenant_entries.values().map(BTreeMap::len).sum();
        let entries = tenant_entries.entry(kind).or_default();
        let previous = entries.get(name).map(|e| e.version);
        if previous.is_some() && create {
            return Err(StoreError::Exists(format!(
                "{} [{name}] already exists",
                kind.noun()
            )));
        }
        if previous.is_none() && total >= MAX_ENTRIES_PER_TENANT {
            return Err(StoreError::Invalid(format!(
                "more than {MAX_ENTRIES_PER_TENANT} templates and policies in one tenant"
            )));
        }
        let entry = Entry {
            body,
            version: previous.unwrap_or(0) + 1,
            modified_ms: now_ms,
        };
        let old = entries.insert(name.to_string(), entry);
        if let Err(error) = self.save() {
            // Keep memory and disk the same: undo.
            let entries = self
                .stored
                .tenants
                .entry(tenant.to_string())
                .or_default()
                .entry(kind)
                .or_default();
            match old {
                Some(old) => entries.insert(name.to_string(), old),
                None => entries.remove(name),
            };
            return Err(StoreError::Io(error));
        }
        Ok(())
    }

    /// Removes the entries matching `pattern`; returns how many went.
    pub(crate) fn delete(
        &mut self,
        tenant: &str,
        kind: Kind,
        pattern: &str,
    ) -> Result<usize, StoreError> {
        let Some(entries) = self
            .stored
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.get_mut(&kind))
        else {
            return Ok(0);
        };
        let before = entries.clone();
        entries.retain(|name, _| !matches_pattern(pattern, name));
        let removed = before.len() - entries.len();
        if removed == 0 {
            return Ok(0);
        }
        if let Err(error) = self.save() {
            if let Some(entries) = self
                .stored
                .tenants
                .get_mut(tenant)
                .and_then(|t| t.get_mut(&kind))
            {
                *entries = before;
            }
            return Err(StoreError::Io(error));
        }
        Ok(removed)
    }

    /// Writes the whole store: temporary file, fsync, rename, fsync of the directory.
    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec(&self.stored).map_err(std::io::Error::other)?;
        let temporary = path.with_extension("json.tmp");
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

/// ES's rules for template and policy names, enough to keep them path- and file-safe.
fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with(['_', '-', '+'])
        || name == "."
        || name == ".."
        || name.chars().any(|c| {
            matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
            ) || c.is_control()
        });
    if bad {
        return Err(StoreError::Invalid(format!(
            "invalid name [{name}]: must not be empty, start with '_', '-' or '+', or contain \\ / * ? \" < > | , # : or spaces"
        )));
    }
    Ok(())
}

/// True when `name` matches one of the comma-separated `*`-patterns (empty = all).
pub(crate) fn matches_pattern(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() || pattern == "_all" {
        return true;
    }
    pattern
        .split(',')
        .any(|one| wildcard_match(one.trim().as_bytes(), name.as_bytes()))
}

/// Glob match with `*` only (iterative, linear in practice).
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// True when the pattern names entries explicitly (no wildcard, not "all"): a miss is a 404.
pub(crate) fn is_explicit(pattern: &str) -> bool {
    !pattern.is_empty() && pattern != "_all" && !pattern.contains('*')
}

/// The `GET` answer for `entries` of `kind`, in ES's shape.
pub(crate) fn get_response(kind: Kind, entries: Vec<(String, Entry)>) -> Value {
    match kind {
        Kind::IndexTemplate => json!({"index_templates": entries
            .into_iter()
            .map(|(name, entry)| json!({"name": name, "index_template": entry.body}))
            .collect::<Vec<_>>()}),
        Kind::ComponentTemplate => json!({"component_templates": entries
            .into_iter()
            .map(|(name, entry)| json!({"name": name, "component_template": entry.body}))
            .collect::<Vec<_>>()}),
        Kind::LegacyTemplate => Value::Object(
            entries
                .into_iter()
                .map(|(name, entry)| {
                    let mut body = entry.body;
                    if let Some(object) = body.as_object_mut() {
                        object.entry("order").or_insert(json!(0));
                        object.entry("index_patterns").or_insert(json!([]));
                        object.entry("settings").or_insert(json!({}));
                        object.entry("mappings").or_insert(json!({}));
                        object.entry("aliases").or_insert(json!({}));
                    }
                    (name, body)
                })
                .collect(),
        ),
        Kind::IlmPolicy => Value::Object(
            entries
                .into_iter()
                .map(|(name, entry)| {
                    let policy = entry.body.get("policy").cloned().unwrap_or(json!({}));
                    let modified = chrono_like_iso(entry.modified_ms);
                    (
                        name,
                        json!({"version": entry.version, "modified_date": modified, "policy": policy}),
                    )
                })
                .collect(),
        ),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of Unix milliseconds (civil-from-days, proleptic Gregorian).
fn chrono_like_iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_lists_match_as_es_does() {
        assert!(matches_pattern("", "a"));
        assert!(matches_pattern("filebeat-*", "filebeat-8.17.0"));
        assert!(!matches_pattern("filebeat-*", "logstash"));
        assert!(matches_pattern("x,logstash", "logstash"));
        assert!(matches_pattern("*beat*", "filebeat-8"));
        assert!(!matches_pattern("logstash", "logstash-2"));
        assert!(is_explicit("logstash") && !is_explicit("log*") && !is_explicit(""));
    }

    #[test]
    fn iso_dates_are_civil() {
        assert_eq!(chrono_like_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            chrono_like_iso(1_709_210_096_789),
            "2024-02-29T12:34:56.789Z"
        );
    }

    #[test]
    fn entries_survive_a_reopen_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TemplateStore::open(Some(dir.path()));
        let body = json!({"index_patterns": ["filebeat-*"], "priority": 150});
        store
            .put(
                "default",
                Kind::IndexTemplate,
                "filebeat-8",
                body.clone(),
                false,
                1,
            )
            .unwrap();
        store
            .put(
                "default",
                Kind::IndexTemplate,
                "filebeat-8",
                body.clone(),
                false,
                2,
            )
            .unwrap();
        assert!(matches!(
            store.put(
                "default",
                Kind::IndexTemplate,
                "filebeat-8",
                body.clone(),
                true,
                3
            ),
            Err(StoreError::Exists(_))
        ));
        for bad in ["", "_x", "a/b", "a*"] {
            assert!(matches!(
                store.put("default", Kind::IndexTemplate, bad, body.clone(), false, 3),
                Err(StoreError::Invalid(_))
            ));
        }
        assert!(matches!(
            store.put("default", Kind::IndexTemplate, "x", json!([1]), false, 3),
            Err(StoreError::Invalid(_))
        ));

        let reopened = TemplateStore::open(Some(dir.path()));
        let got = reopened.get("default", Kind::IndexTemplate, "filebeat-*");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].1.body.clone(), got[0].1.version), (body, 2));
        assert!(reopened.get("other", Kind::IndexTemplate, "").is_empty());
        assert!(reopened.get("default", Kind::LegacyTemplate, "").is_empty());

        let mut reopened = reopened;
        assert_eq!(
            reopened
                .delete("default", Kind::IndexTemplate, "filebeat-8")
                .unwrap(),
            1
        );
        assert!(
            TemplateStore::open(Some(dir.path()))
                .get("default", Kind::IndexTemplate, "")
                .is_empty()
        );
    }
}
