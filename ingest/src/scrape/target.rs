//! Target discovery (static lists and Prometheus file-SD files) and target
//! relabelling ([`resolve`]).
//!
//! File SD: every file matching a pattern (`*` and `?` in the file name only) holds
//! `[{"targets": ["host:port", …], "labels": {"name": "value", …}}, …]`, as JSON, or
//! as YAML when the name ends in `.yml`/`.yaml` (the subset of [`super::yaml`]). Its
//! targets carry `__meta_filepath`. A file that cannot be read or parsed keeps the
//! targets it had last time (as Prometheus does), with a warning.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{ScrapeConfig, check_target_address, check_target_labels};
use super::relabel::{self, Relabel};

/// A target after relabelling: the URL to scrape and the labels of its series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScrapeTarget {
    /// `__address__` after relabelling (for logs).
    pub address: String,
    /// Full URL: scheme, address, metrics path and parameters.
    pub url: String,
    /// `job`, `instance` and the other labels left after relabelling (no `__` names).
    pub labels: BTreeMap<String, String>,
}

/// Applies the job's settings and `relabel_configs` to a discovered target, as
/// Prometheus does: the set starts with the target labels, `__address__`, `job`,
/// `__scheme__`, `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__` and
/// `__param_<name>` (first value); relabelling may rewrite or drop it; `instance`
/// defaults to `__address__`; `__param_*` labels override the URL parameters; labels
/// starting with `__` and empty ones are removed. `None`: dropped (or no address).
pub fn resolve(config: &ScrapeConfig, steps: &[Relabel], target: &Target) -> Option<ScrapeTarget> {
    let mut labels = target.labels.clone();
    let mut set_default = |name: &str, value: String| {
        labels.entry(name.to_string()).or_insert(value);
    };
    set_default("__address__", target.address.clone());
    set_default("job", config.job_name.clone());
    set_default("__scheme__", config.scheme.clone());
    set_default("__metrics_path__", config.metrics_path.clone());
    set_default("__scrape_interval__", config.scrape_interval.to_string());
    set_default("__scrape_timeout__", config.scrape_timeout.to_string());
    for (name, values) in &config.params {
        if let Some(first) = values.first() {
            set_default(&format!("__param_{name}"), first.clone());
        }
    }
    if !relabel::apply(steps, &mut labels) {
        return None;
    }
    let address = labels.get("__address__").filter(|a| !a.is_empty())?.clone();
    let scheme = labels
        .get("__scheme__")
        .cloned()
        .unwrap_or_else(|| config.scheme.clone());
    let path = labels
        .get("__metrics_path__")
        .cloned()
        .unwrap_or_else(|| config.metrics_path.clone());
    let mut params: BTreeMap<String, Vec<String>> = config.params.clone();
    for (name, value) in &labels {
        if let Some(param) = name.strip_prefix("__param_") {
            params.insert(param.to_string(), vec![value.clone()]);
        }
    }
    let mut url = match reqwest::Url::parse(&format!("{scheme}://{address}{path}")) {
        Ok(url) => url,
        Err(error) => {
            tracing::warn!(job = %config.job_name, %address, %error, "relabelled target has no valid url; dropped");
            return None;
        }
    };
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    labels
        .entry("instance".to_string())
        .or_insert_with(|| address.clone());
    labels.retain(|name, value| !name.starts_with("__") && !value.is_empty());
    Some(ScrapeTarget {
        address,
        url: url.to_string(),
        labels,
    })
}

/// One scrape target: its address and the labels every series of it gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// `host:port`; also the `instance` label.
    pub address: String,
    /// Target labels from the static config or the file-SD group.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Discovers the targets of one job, remembering the last good content of each file.
#[derive(Debug, Default)]
pub struct Discovery {
    last_good: HashMap<PathBuf, Vec<Target>>,
}

impl Discovery {
    /// Returns the job's targets, sorted and without duplicates. Reads files (blocking IO).
    pub fn targets(&mut self, config: &ScrapeConfig) -> Vec<Target> {
        let mut targets: Vec<Target> = config
            .static_configs
            .iter()
            .flat_map(|group| {
                group.targets.iter().map(|address| Target {
                    address: address.clone(),
                    labels: group.labels.clone(),
                })
            })
            .collect();
        let mut seen_files = Vec::new();
        for sd in &config.file_sd_configs {
            for pattern in &sd.files {
                for path in matching_files(Path::new(pattern)) {
                    match read_target_file(&path) {
                        Ok(found) => {
                            self.last_good.insert(path.clone(), found);
                        }
                        Err(message) => tracing::warn!(
                            job = %config.job_name,
                            file = %path.display(),
                            error = %message,
                            "cannot read scrape target file; keeping its previous targets"
                        ),
                    }
                    seen_files.push(path);
                }
            }
        }
        // A file that no longer exists no longer contributes targets.
        self.last_good.retain(|path, _| seen_files.contains(path));
        for found in self.last_good.values() {
            targets.extend(found.iter().cloned());
        }
        targets.sort();
        targets.dedup();
        targets
    }
}

/// Largest target file read.
const MAX_TARGET_FILE_BYTES: u64 = 16 << 20;

/// Reads one file-SD file (YAML when named `*.yml`/`*.yaml`, else JSON).
fn read_target_file(path: &Path) -> Result<Vec<Target>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_TARGET_FILE_BYTES {
        return Err(format!("file is larger than {MAX_TARGET_FILE_BYTES} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let is_yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
    let groups: Vec<FileGroup> = if is_yaml {
        let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
        match super::yaml::parse(text)? {
            serde_json::Value::Null => Vec::new(),
            value => serde_json::from_value(value).map_err(|e| e.to_string())?,
        }
    } else {
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    let file_path = path.display().to_string();
    let mut targets = Vec::new();
    for group in groups {
        check_target_labels(&group.labels)?;
        let mut labels = group.labels;
        labels.insert("__meta_filepath".to_string(), file_path.clone());
        for address in group.targets {
            check_target_address(&address)?;
            targets.push(Target {
                address,
                labels: labels.clone(),
            });
        }
    }
    Ok(targets)
}

/// The files matching `pattern`, whose file name may hold `*` and `?`; sorted.
fn matching_files(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let directory = match pattern.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|file| wildcard_match(name.as_bytes(), file.as_bytes()))
        })
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Matches `text` against a pattern of literal bytes, `*` (any run) and `?` (one byte).
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        assert!(wildcard_match(b"*.json", b"targets.json"));
        assert!(wildcard_match(b"t?.json", b"t1.json"));
        assert!(wildcard_match(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard_match(b"*.json", b"targets.yaml"));
        assert!(!wildcard_match(b"t?.json", b"t12.json"));
        assert!(wildcard_match(b"*", b""));
    }

    #[test]
    fn resolve_applies_relabelling_params_and_defaults() {
        use super::super::relabel::{RelabelConfig, compile};
        let config: ScrapeConfig = toml::from_str(
            r#"
            job_name = "snmp"
            metrics_path = "/snmp"
            params = { module = ["if_mib"] }
            [[relabel_configs]]
            source_labels = ["__address__"]
            target_label = "__param_target"
            [[relabel_configs]]
            source_labels = ["__param_target"]
            target_label = "instance"
            [[relabel_configs]]
            target_label = "__address__"
            replacement = "exporter:9116"
            [[relabel_configs]]
            action = "drop"
            source_labels = ["env"]
            regex = "test"
            "#,
        )
        .unwrap();
        let steps: Vec<RelabelConfig> = config.relabel_configs.clone();
        let steps = compile(&steps).unwrap();
        let target = Target {
            address: "switch-1:161".to_string(),
            labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        };
        let resolved = resolve(&config, &steps, &target).unwrap();
        assert_eq!(
            resolved.url,
            "http://exporter:9116/snmp?module=if_mib&target=switch-1%3A161"
        );
        assert_eq!(
            resolved.labels,
            BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("instance".to_string(), "switch-1:161".to_string()),
                ("job".to_string(), "snmp".to_string()),
            ])
        );
        let test_target = Target {
            labels: BTreeMap::from([("env".to_string(), "test".to_string())]),
            ..target
        };
        assert!(resolve(&config, &steps, &test_target).is_none());
    }

    #[test]
    fn yaml_target_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.yml");
        std::fs::write(&path, "- targets: ['a:1']\n  labels:\n    env: prod\n").unwrap();
        let targets = read_target_file(&path).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].address, "a:1");
        assert_eq!(targets[0].labels["env"], "prod");
        assert_eq!(
            targets[0].labels["__meta_filepath"],
            path.display().to_string()
        );
    }

    #[test]
    fn group_json_shape_is_prometheus_file_sd() {
        let groups: Vec<FileGroup> = serde_json::from_str(
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": ["c:3"]}]"#,
        )
        .unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].labels["env"], "prod");
        assert!(groups[1].labels.is_empty());
    }
}
