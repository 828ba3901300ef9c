//! Target discovery: static lists and Prometheus file-SD JSON files.
//!
//! File SD: every file matching a pattern (`*` and `?` in the file name only) holds
//! `[{"targets": ["host:port", …], "labels": {"name": "value", …}}, …]`. A file that
//! cannot be read or parsed keeps the targets it had last time (as Prometheus does),
//! with a warning. YAML target files are not supported.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{ScrapeConfig, check_target_address, check_target_labels};

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

/// Reads one file-SD JSON file.
fn read_target_file(path: &Path) -> Result<Vec<Target>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let groups: Vec<FileGroup> = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    for group in groups {
        check_target_labels(&group.labels)?;
        for address in group.targets {
            check_target_address(&address)?;
            targets.push(Target {
                address,
                labels: group.labels.clone(),
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
