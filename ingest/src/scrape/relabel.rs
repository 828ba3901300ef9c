//! Prometheus relabelling (`relabel_configs` on targets, `metric_relabel_configs` on
//! scraped series): the actions `replace keep drop hashmod labelmap labeldrop
//! labelkeep lowercase uppercase keepequal dropequal`, with Prometheus' defaults
//! (separator `;`, regex `(.*)`, replacement `$1`, action `replace`) and its regex
//! semantics: the expression is anchored at both ends (`^(?:regex)$`), replacement
//! references are `$1`, `${1}`, `$name`. `hashmod` takes the MD5 of the joined values
//! and the low 8 bytes as a big-endian integer, as Prometheus does, so a target lands
//! in the same shard as it would there.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::config::is_label_name;

/// One relabelling step, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` and matched against `regex`.
    pub source_labels: Vec<String>,
    /// Joins the source values.
    pub separator: String,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`; compared by
    /// `keepequal`/`dropequal`.
    pub target_label: String,
    /// RE2-style expression, anchored at both ends.
    pub regex: String,
    /// Modulus of `hashmod`.
    pub modulus: u64,
    /// Value (with `$1`-style references) written by `replace`, name template of `labelmap`.
    pub replacement: String,
    /// What to do.
    pub action: RelabelAction,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: ";".to_string(),
            target_label: String::new(),
            regex: "(.*)".to_string(),
            modulus: 0,
            replacement: "$1".to_string(),
            action: RelabelAction::Replace,
        }
    }
}

/// The relabelling actions Prometheus has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Writes `replacement` (expanded) to `target_label` when `regex` matches.
    #[default]
    Replace,
    /// Keeps the label set only when `regex` matches.
    Keep,
    /// Drops the label set when `regex` matches.
    Drop,
    /// Writes `hash(source values) % modulus` to `target_label`.
    Hashmod,
    /// Copies every label whose name matches `regex` to the name `replacement`.
    Labelmap,
    /// Removes every label whose name matches `regex`.
    Labeldrop,
    /// Removes every label whose name does not match `regex`.
    Labelkeep,
    /// Writes the lower-cased source value to `target_label`.
    Lowercase,
    /// Writes the upper-cased source value to `target_label`.
    Uppercase,
    /// Keeps the label set when the source value equals `target_label`'s value.
    Keepequal,
    /// Drops the label set when the source value equals `target_label`'s value.
    Dropequal,
}

/// A checked, compiled relabelling step.
#[derive(Debug, Clone)]
pub struct Relabel {
    config: RelabelConfig,
    regex: Regex,
}

/// Compiles and checks a list of steps; `Err` names the step and the problem.
pub fn compile(configs: &[RelabelConfig]) -> Result<Vec<Relabel>, String> {
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| {
            compile_one(config).map_err(|message| format!("[{index}]: {message}"))
        })
        .collect()
}

fn compile_one(config: &RelabelConfig) -> Result<Relabel, String> {
    let regex = Regex::new(&format!("^(?s:{})$", config.regex))
        .map_err(|e| format!("invalid regex {:?}: {e}", config.regex))?;
    use RelabelAction::*;
    let needs_target = matches!(config.action, Replace | Hashmod | Lowercase | Uppercase)
        || matches!(config.action, Keepequal | Dropequal);
    if needs_target && config.target_label.is_empty() {
        return Err(format!("action {:?} needs target_label", config.action));
    }
    if matches!(config.action, Hashmod) && config.modulus == 0 {
        return Err("action hashmod needs a modulus greater than zero".to_string());
    }
    if matches!(
        config.action,
        Lowercase | Uppercase | Hashmod | Keepequal | Dropequal
    ) && !is_label_name(&config.target_label)
    {
        return Err(format!(
            "target_label {:?} is not a valid label name",
            config.target_label
        ));
    }
    if matches!(config.action, Replace)
        && !config.target_label.contains('$')
        && !is_label_name(&config.target_label)
    {
        return Err(format!(
            "target_label {:?} is not a valid label name",
            config.target_label
        ));
    }
    for name in &config.source_labels {
        if !is_label_name(name) {
            return Err(format!("source label {name:?} is not a valid label name"));
        }
    }
    Ok(Relabel {
        config: config.clone(),
        regex,
    })
}

/// Runs `steps` over `labels`; `false` means the label set is dropped.
pub fn apply(steps: &[Relabel], labels: &mut BTreeMap<String, String>) -> bool {
    steps.iter().all(|step| step.apply(labels))
}

impl Relabel {
    fn source_value(&self, labels: &BTreeMap<String, String>) -> String {
        let mut value = String::new();
        for (index, name) in self.config.source_labels.iter().enumerate() {
            if index > 0 {
                value.push_str(&self.config.separator);
            }
            if let Some(v) = labels.get(name) {
                value.push_str(v);
            }
        }
        value
    }

    /// One step; `false` drops the label set.
    fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let config = &self.config;
        match config.action {
            RelabelAction::Keep => self.regex.is_match(&self.source_value(labels)),
            RelabelAction::Drop => !self.regex.is_match(&self.source_value(labels)),
            RelabelAction::Keepequal => {
                let target = labels.get(&config.target_label).map_or("", String::as_str);
                self.source_value(labels) == target
            }
            RelabelAction::Dropequal => {
                let target = labels.get(&config.target_label).map_or("", String::as_str);
                self.source_value(labels) != target
            }
            RelabelAction::Replace => {
                let value = self.source_value(labels);
                let Some(captures) = self.regex.captures(&value) else {
                    return true;
                };
                let mut target = String::new();
                captures.expand(&config.target_label, &mut target);
                if !is_label_name(&target) {
                    return true;
                }
                let mut replaced = String::new();
                captures.expand(&config.replacement, &mut replaced);
                if replaced.is_empty() {
                    labels.remove(&target);
                } else {
                    labels.insert(target, replaced);
                }
                true
            }
            RelabelAction::Lowercase | RelabelAction::Uppercase => {
                let value = self.source_value(labels);
                let value = if config.action == RelabelAction::Lowercase {
                    value.to_lowercase()
                } else {
                    value.to_uppercase()
                };
                labels.insert(config.target_label.clone(), value);
                true
            }
            RelabelAction::Hashmod => {
                let digest = md5(self.source_value(labels).as_bytes());
                let mut low = [0u8; 8];
                low.copy_from_slice(&digest[8..]);
                let shard = u64::from_be_bytes(low) % config.modulus;
                labels.insert(config.target_label.clone(), shard.to_string());
                true
            }
            RelabelAction::Labelmap => {
                let mut added = Vec::new();
                for (name, value) in labels.iter() {
                    if let Some(captures) = self.regex.captures(name) {
                        let mut new_name = String::new();
                        captures.expand(&config.replacement, &mut new_name);
                        added.push((new_name, value.clone()));
                    }
                }
                labels.extend(added);
                true
            }
            RelabelAction::Labeldrop => {
                labels.retain(|name, _| !self.regex.is_match(name));
                true
            }
            RelabelAction::Labelkeep => {
                labels.retain(|name, _| self.regex.is_match(name));
                true
            }
        }
    }
}

/// MD5 (RFC 1321), for `hashmod` only (not for anything that needs a secure hash).
pub(crate) fn md5(input: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(input).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn step(text: &str) -> Relabel {
        let config: RelabelConfig = toml::from_str(text).unwrap();
        compile(&[config]).unwrap().remove(0)
    }

    #[test]
    fn md5_matches_the_rfc_vectors() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn replace_is_anchored_and_expands_groups() {
        let replace = step(
            r#"source_labels = ["__address__"]
               regex = "([^:]+):\\d+"
               target_label = "host"
               replacement = "${1}-x""#,
        );
        let mut set = labels(&[("__address__", "node1:9100")]);
        assert!(replace.apply(&mut set));
        assert_eq!(set["host"], "node1-x");
        // Anchored: "de" does not match inside "abcdef".
        let partial = step(
            r#"source_labels = ["a"]
               regex = "de"
               target_label = "b"
               replacement = "hit""#,
        );
        let mut set = labels(&[("a", "abcdef")]);
        partial.apply(&mut set);
        assert!(!set.contains_key("b"));
        // An empty replacement removes the target label.
        let clear = step(
            r#"source_labels = ["a"]
               target_label = "a"
               replacement = """#,
        );
        let mut set = labels(&[("a", "x")]);
        clear.apply(&mut set);
        assert!(set.is_empty());
    }

    #[test]
    fn keep_drop_and_equal_filter_the_set() {
        let keep = step(
            r#"action = "keep"
               source_labels = ["env", "team"]
               regex = "prod;.*""#,
        );
        assert!(keep.apply(&mut labels(&[("env", "prod"), ("team", "a")])));
        assert!(!keep.apply(&mut labels(&[("env", "dev"), ("team", "a")])));
        let drop = step(
            r#"action = "drop"
               source_labels = ["__name__"]
               regex = "go_.*""#,
        );
        assert!(!drop.apply(&mut labels(&[("__name__", "go_threads")])));
        assert!(drop.apply(&mut labels(&[("__name__", "http_requests_total")])));
        let keepequal = step(
            r#"action = "keepequal"
               source_labels = ["a"]
               target_label = "b""#,
        );
        assert!(keepequal.apply(&mut labels(&[("a", "1"), ("b", "1")])));
        assert!(!keepequal.apply(&mut labels(&[("a", "1"), ("b", "2")])));
    }

    #[test]
    fn label_name_actions() {
        let map = step(
            r#"action = "labelmap"
               regex = "__meta_kubernetes_pod_label_(.+)""#,
        );
        let mut set = labels(&[("__meta_kubernetes_pod_label_app", "web"), ("x", "1")]);
        map.apply(&mut set);
        assert_eq!(set["app"], "web");
        let drop = step(
            r#"action = "labeldrop"
               regex = "x|y""#,
        );
        drop.apply(&mut set);
        assert!(!set.contains_key("x"));
        let keep = step(
            r#"action = "labelkeep"
               regex = "app""#,
        );
        keep.apply(&mut set);
        assert_eq!(set, labels(&[("app", "web")]));
        let lower = step(
            r#"action = "lowercase"
               source_labels = ["app"]
               target_label = "app_lower""#,
        );
        let mut set = labels(&[("app", "WeB")]);
        lower.apply(&mut set);
        assert_eq!(set["app_lower"], "web");
    }

    #[test]
    fn hashmod_shards_as_prometheus() {
        let hashmod = step(
            r#"action = "hashmod"
               source_labels = ["__address__"]
               target_label = "__tmp_hash"
               modulus = 1000"#,
        );
        let mut set = labels(&[("__address__", "abc")]);
        hashmod.apply(&mut set);
        // md5("abc") low 8 bytes d6963f7d28e17f72 (big-endian) mod 1000.
        let expected = 0xd696_3f7d_28e1_7f72u64 % 1000;
        assert_eq!(set["__tmp_hash"], expected.to_string());
    }

    #[test]
    fn bad_steps_are_refused() {
        for text in [
            r#"regex = "(""#,
            r#"action = "hashmod"
               target_label = "t""#,
            r#"action = "replace""#,
            r#"action = "keep"
               source_labels = ["bad-name"]"#,
        ] {
            let config: RelabelConfig = toml::from_str(text).unwrap();
            assert!(compile(&[config]).is_err(), "{text}");
        }
    }
}
