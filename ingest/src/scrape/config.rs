//! `[[ingest.scrape_configs]]`: one table per job, shaped like Prometheus' `scrape_configs`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use proto::{HumanDuration, TenantId};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One scrape job: how often, where, and which targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// The `job` label of every series scraped by this job; unique.
    pub job_name: String,
    /// Time between two scrapes of one target.
    pub scrape_interval: HumanDuration,
    /// Time allowed for one scrape; at most `scrape_interval`.
    pub scrape_timeout: HumanDuration,
    /// HTTP path of the metrics on each target.
    pub metrics_path: String,
    /// URL scheme; only `http` so far.
    pub scheme: String,
    /// Keep the scraped `job`/`instance`/target labels when they conflict (true), or
    /// rename the scraped ones to `exported_<name>` (false).
    pub honor_labels: bool,
    /// Most samples one scrape may return; more fails the scrape (`up` = 0). 0: no limit.
    pub sample_limit: usize,
    /// Tenant the samples are written to; unset means `ingest.default_tenant`.
    pub tenant: Option<String>,
    /// Fixed target lists.
    pub static_configs: Vec<StaticConfig>,
    /// Target lists read from Prometheus file-SD JSON files.
    pub file_sd_configs: Vec<FileSdConfig>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            job_name: String::new(),
            scrape_interval: HumanDuration::secs(15),
            scrape_timeout: HumanDuration::secs(10),
            metrics_path: "/metrics".to_string(),
            scheme: "http".to_string(),
            honor_labels: false,
            sample_limit: 0,
            tenant: None,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
        }
    }
}

/// `targets` (`host:port`) sharing `labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to every series of these targets.
    pub labels: BTreeMap<String, String>,
}

/// Files (a `*`/`?` pattern in the file name is allowed) in Prometheus' file-SD JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSdConfig {
    /// Paths of the target files.
    pub files: Vec<String>,
    /// How often the files are read again.
    pub refresh_interval: HumanDuration,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        FileSdConfig {
            files: Vec::new(),
            refresh_interval: HumanDuration::secs(300),
        }
    }
}

/// Returns true for a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a `host:port` target address.
pub(crate) fn check_target_address(address: &str) -> std::result::Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("target {address:?} must be host:port"));
    };
    if host.is_empty() || host.contains('/') || address.contains("://") {
        return Err(format!(
            "target {address:?} must be host:port, without scheme or path"
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("target {address:?} has an invalid port"));
    }
    Ok(())
}

/// Checks target labels: valid names (Prometheus' reserved `__` names are refused).
pub(crate) fn check_target_labels(
    labels: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    for name in labels.keys() {
        if !is_label_name(name) || name.starts_with("__") {
            return Err(format!("label name {name:?} is invalid"));
        }
    }
    Ok(())
}

/// Validates every scrape config; messages name the key (`ingest.scrape_configs[i].key`).
pub(crate) fn validate_scrape_configs(configs: &[ScrapeConfig]) -> Result<()> {
    let mut jobs = HashSet::new();
    for (index, config) in configs.iter().enumerate() {
        let key = |name: &str| format!("ingest.scrape_configs[{index}].{name}");
        let invalid = |message: String| Err(Error::InvalidConfig(message));
        if config.job_name.is_empty() {
            return invalid(format!("{} must be set", key("job_name")));
        }
        if !jobs.insert(config.job_name.as_str()) {
            return invalid(format!(
                "{} {:?} is used by another scrape config",
                key("job_name"),
                config.job_name
            ));
        }
        if config.scrape_interval.get() < Duration::from_millis(100) {
            return invalid(format!("{} must be at least 100ms", key("scrape_interval")));
        }
        if config.scrape_timeout.get().is_zero() {
            return invalid(format!(
                "{} must be greater than zero",
                key("scrape_timeout")
            ));
        }
        if config.scrape_timeout.get() > config.scrape_interval.get() {
            return invalid(format!(
                "{} ({}) must not be greater than {} ({})",
                key("scrape_timeout"),
                config.scrape_timeout,
                key("scrape_interval"),
                config.scrape_interval
            ));
        }
        if !config.metrics_path.starts_with('/') {
            return invalid(format!("{} must start with '/'", key("metrics_path")));
        }
        if config.scheme != "http" {
            return invalid(format!(
                "{} {:?} is not supported (only \"http\")",
                key("scheme"),
                config.scheme
            ));
        }
        if let Some(tenant) = &config.tenant
            && let Err(error) = TenantId::new(tenant.as_str())
        {
            return invalid(format!("{}: {error}", key("tenant")));
        }
        for (static_index, static_config) in config.static_configs.iter().enumerate() {
            let static_key = |name: &str| key(&format!("static_configs[{static_index}].{name}"));
            for target in &static_config.targets {
                if let Err(message) = check_target_address(target) {
                    return invalid(format!("{}: {message}", static_key("targets")));
                }
            }
            if let Err(message) = check_target_labels(&static_config.labels) {
                return invalid(format!("{}: {message}", static_key("labels")));
            }
        }
        for (sd_index, sd) in config.file_sd_configs.iter().enumerate() {
            let sd_key = |name: &str| key(&format!("file_sd_configs[{sd_index}].{name}"));
            if sd.files.is_empty() || sd.files.iter().any(String::is_empty) {
                return invalid(format!("{} must list at least one path", sd_key("files")));
            }
            for file in &sd.files {
                let directory = std::path::Path::new(file)
                    .parent()
                    .map(|p| p.to_string_lossy().to_string())
                    .unwrap_or_default();
                if directory.contains(['*', '?', '[']) {
                    return invalid(format!(
                        "{}: {file:?} has a pattern in a directory name (only the file name may have one)",
                        sd_key("files")
                    ));
                }
            }
            if sd.refresh_interval.get() < Duration::from_millis(100) {
                return invalid(format!(
                    "{} must be at least 100ms",
                    sd_key("refresh_interval")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> ScrapeConfig {
        ScrapeConfig {
            job_name: "node".to_string(),
            static_configs: vec![StaticConfig {
                targets: vec!["localhost:9100".to_string()],
                labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            }],
            ..ScrapeConfig::default()
        }
    }

    fn message(configs: &[ScrapeConfig]) -> String {
        validate_scrape_configs(configs).unwrap_err().to_string()
    }

    #[test]
    fn scrape_config_validation_names_the_key() {
        validate_scrape_configs(&[job()]).unwrap();
        assert!(message(&[job(), job()]).contains("scrape_configs[1].job_name"));
        let mut config = job();
        config.scrape_timeout = HumanDuration::secs(20);
        assert!(message(&[config]).contains("scrape_configs[0].scrape_timeout"));
        let mut config = job();
        config.scheme = "https".to_string();
        assert!(message(&[config]).contains("scheme"));
        let mut config = job();
        config.static_configs[0].targets = vec!["http://a:1/metrics".to_string()];
        assert!(message(&[config]).contains("static_configs[0].targets"));
        let mut config = job();
        config.static_configs[0]
            .labels
            .insert("bad-name".to_string(), "x".to_string());
        assert!(message(&[config]).contains("static_configs[0].labels"));
        let mut config = job();
        config.file_sd_configs = vec![FileSdConfig::default()];
        assert!(message(&[config]).contains("file_sd_configs[0].files"));
        let mut config = job();
        config.tenant = Some("a/b".to_string());
        assert!(message(&[config]).contains("tenant"));
        let mut config = job();
        config.job_name = String::new();
        assert!(message(&[config]).contains("job_name"));
    }

    #[test]
    fn scrape_config_parses_from_toml_shape() {
        let text = r#"
            job_name = "app"
            scrape_interval = "1s"
            scrape_timeout = "500ms"
            static_configs = [{ targets = ["a:1", "b:2"], labels = { env = "dev" } }]
            file_sd_configs = [{ files = ["/etc/targets/*.json"], refresh_interval = "30s" }]
        "#;
        let config: ScrapeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.scrape_interval, HumanDuration::secs(1));
        assert_eq!(config.metrics_path, "/metrics");
        assert_eq!(config.static_configs[0].targets.len(), 2);
        assert_eq!(
            config.file_sd_configs[0].refresh_interval,
            HumanDuration::secs(30)
        );
        validate_scrape_configs(&[config]).unwrap();
        assert!(toml::from_str::<ScrapeConfig>("job = \"x\"").is_err());
    }
}
