//! `[[ingest.scrape_configs]]`: one table per job, shaped like Prometheus' `scrape_configs`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use proto::{HumanDuration, TenantId};
use serde::{Deserialize, Serialize};

use super::relabel::{RelabelConfig, compile};
use crate::{Error, Result};

/// `basic_auth`: user and password (inline or read from a file at each scrape).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<String>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `authorization`: a credential sent as `Authorization: <type> <credentials>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// The scheme (`Bearer` unless set).
    #[serde(rename = "type")]
    pub kind: String,
    /// The credential.
    pub credentials: Option<String>,
    /// File holding the credential (trailing newline ignored).
    pub credentials_file: Option<String>,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization {
            kind: "Bearer".to_string(),
            credentials: None,
            credentials_file: None,
        }
    }
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("type", &self.kind)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

/// `tls_config` of `https` scrapes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that signed the targets' certificates (added to the
    /// system roots).
    pub ca_file: Option<String>,
    /// PEM file of the client certificate (with `key_file`), for targets that ask for one.
    pub cert_file: Option<String>,
    /// PEM file of the client certificate's private key.
    pub key_file: Option<String>,
    /// Accept any server certificate (no verification at all).
    pub insecure_skip_verify: bool,
}

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
    /// URL scheme: `http` or `https`.
    pub scheme: String,
    /// Query parameters added to every scrape URL (`{ module = ["if_mib"] }`).
    pub params: BTreeMap<String, Vec<String>>,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: <type> <credentials>` (type `Bearer` by default).
    pub authorization: Option<Authorization>,
    /// TLS settings of `https` scrapes.
    pub tls_config: TlsConfig,
    /// Relabelling of discovered targets (`__address__`, `__scheme__`,
    /// `__metrics_path__`, `__param_<name>`, `job`, target labels), before scraping.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabelling of every scraped series, before it is stored (`sample_limit`
    /// counts what is left).
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Keep the scraped `job`/`instance`/target labels when they conflict (true), or
    /// rename the scraped ones to `exported_<name>` (false).
    pub honor_labels: bool,
    /// Most samples one scrape may keep after `metric_relabel_configs`; more fails
    /// the scrape (`up` = 0). 0: no limit.
    pub sample_limit: usize,
    /// Tenant the samples are written to; unset means `ingest.default_tenant`.
    pub tenant: Option<String>,
    /// Fixed target lists.
    pub static_configs: Vec<StaticConfig>,
    /// Target lists read from Prometheus file-SD files (JSON, or YAML for `.yml`/`.yaml`).
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
            params: BTreeMap::new(),
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
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
        if config.scheme != "http" && config.scheme != "https" {
            return invalid(format!(
                "{} {:?} is not supported (\"http\" or \"https\")",
                key("scheme"),
                config.scheme
            ));
        }
        if let Some(auth) = &config.basic_auth {
            if auth.username.is_empty() {
                return invalid(format!("{} must be set", key("basic_auth.username")));
            }
            if auth.password.is_some() && auth.password_file.is_some() {
                return invalid(format!(
                    "{}: set password or password_file, not both",
                    key("basic_auth")
                ));
            }
        }
        if let Some(auth) = &config.authorization {
            if config.basic_auth.is_some() {
                return invalid(format!(
                    "{}: set basic_auth or authorization, not both",
                    key("authorization")
                ));
            }
            if auth.credentials.is_some() == auth.credentials_file.is_some() {
                return invalid(format!(
                    "{}: set exactly one of credentials and credentials_file",
                    key("authorization")
                ));
            }
            if auth.kind.is_empty() || auth.kind.eq_ignore_ascii_case("basic") {
                return invalid(format!(
                    "{}: type must be set and not Basic (use basic_auth)",
                    key("authorization")
                ));
            }
        }
        if config.tls_config.cert_file.is_some() != config.tls_config.key_file.is_some() {
            return invalid(format!(
                "{}: cert_file and key_file go together",
                key("tls_config")
            ));
        }
        for (name, values) in &config.params {
            if name.is_empty() || values.is_empty() {
                return invalid(format!(
                    "{}: {name:?} needs a name and at least one value",
                    key("params")
                ));
            }
        }
        if let Err(message) = compile(&config.relabel_configs) {
            return invalid(format!("{}{message}", key("relabel_configs")));
        }
        if let Err(message) = compile(&config.metric_relabel_configs) {
            return invalid(format!("{}{message}", key("metric_relabel_configs")));
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
        config.scheme = "ftp".to_string();
        assert!(message(&[config]).contains("scheme"));
        let mut config = job();
        config.scheme = "https".to_string();
        validate_scrape_configs(&[config]).unwrap();
        let mut config = job();
        config.metric_relabel_configs = vec![RelabelConfig {
            regex: "(".to_string(),
            ..RelabelConfig::default()
        }];
        assert!(message(&[config]).contains("metric_relabel_configs[0]"));
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
