//! The configuration: one struct, loaded from one TOML file.
//!
//! Each crate owns its section (`storage::Config`, `ingest::Config`, `query::Config`);
//! this module owns `[server]` and `[telemetry]` and composes them. Every struct denies
//! unknown keys and defaults every missing one, so an empty file is a valid config.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proto::HumanDuration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole configuration of a Sightline server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listeners, data directory and shutdown.
    pub server: ServerConfig,
    /// The storage engine.
    pub storage: storage::Config,
    /// Write protocols: limits and tenants.
    pub ingest: ingest::Config,
    /// Read APIs: query bounds.
    pub query: query::Config,
    /// The server's own logs.
    pub telemetry: TelemetryConfig,
}

/// The `[server]` section: where the server listens and keeps its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Main HTTP address: every HTTP API, the UI, health, readiness and self-metrics.
    pub listen: SocketAddr,
    /// OTLP/gRPC address.
    pub grpc_listen: SocketAddr,
    /// OTLP/HTTP address, or off.
    pub otlp_http_listen: Listen,
    /// Jaeger query API address, or off.
    pub jaeger_listen: Listen,
    /// Extra address for the Elasticsearch API (always also under `/es` on the main address), or off.
    pub es_listen: Listen,
    /// Directory of the WAL (`wal/`) and, unless `storage.url` says otherwise, the segments (`segments/`).
    pub data_dir: PathBuf,
    /// How long a shutdown waits for in-flight requests before closing storage anyway.
    pub shutdown_grace: HumanDuration,
    /// What this node runs: everything (`all`, the default), or one part of a scaled-out deployment.
    pub role: Role,
    /// `host:port` where other nodes reach this node's main port (queriers ask an
    /// ingester there for its unflushed rows; it goes into the catalog heartbeat).
    /// `${NAME}` parts are read from the environment (Kubernetes: `${POD_IP}:7700`).
    /// Unset: the listen address, with the host name for an unspecified IP.
    pub advertise_addr: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7700)),
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 4317)),
            otlp_http_listen: Listen::On(SocketAddr::from(([0, 0, 0, 0], 4318))),
            jaeger_listen: Listen::On(SocketAddr::from(([0, 0, 0, 0], 16686))),
            es_listen: Listen::Off,
            data_dir: PathBuf::from("./data"),
            shutdown_grace: HumanDuration::secs(10),
            role: Role::All,
            advertise_addr: None,
        }
    }
}

/// What one node of a deployment runs (`sightline serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in one process: the single-node server.
    #[default]
    All,
    /// The write protocols, the WAL and flushes to segments; no read APIs, no compaction.
    Ingest,
    /// The read APIs over the catalog's segments; no writes, no WAL.
    Query,
    /// Compaction and retention only.
    Compact,
}

impl Role {
    /// Every role, in the order `--help` lists them.
    pub const ALL: [Role; 4] = [Role::All, Role::Ingest, Role::Query, Role::Compact];

    /// The name used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Ingest => "ingest",
            Role::Query => "query",
            Role::Compact => "compact",
        }
    }

    /// True when the node accepts writes (receivers, WAL, flush).
    pub fn ingests(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }

    /// True when the node answers the read APIs.
    pub fn queries(self) -> bool {
        matches!(self, Role::All | Role::Query)
    }

    /// True when the node runs compaction and retention.
    pub fn compacts(self) -> bool {
        matches!(self, Role::All | Role::Compact)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `all`, `ingest`, `query`, `compact`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid role {0:?}: expected all, ingest, query or compact")]
pub struct ParseRoleError(String);

impl FromStr for Role {
    type Err = ParseRoleError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| ParseRoleError(text.to_string()))
    }
}

/// The `[telemetry]` section: the server's own logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `tracing` filter directives (`RUST_LOG` syntax); the `RUST_LOG` variable overrides it.
    pub log_filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_filter: "info".to_string(),
        }
    }
}

/// An optional listener: an `IP:port` address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listen {
    /// Listen on this address.
    On(SocketAddr),
    /// Do not listen.
    Off,
}

impl Listen {
    /// Returns the address, or `None` when off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::On(addr) => Some(addr),
            Listen::Off => None,
        }
    }
}

/// A listener value that is neither `off` nor an `IP:port` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid listen address {0:?}: expected IP:port (e.g. 0.0.0.0:4318) or off")]
pub struct ParseListenError(String);

impl FromStr for Listen {
    type Err = ParseListenError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        text.parse()
            .map(Listen::On)
            .map_err(|_| ParseListenError(text.to_string()))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::On(addr) => addr.fmt(f),
            Listen::Off => f.write_str("off"),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a configuration could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the config (unknown key, wrong type).
    #[error("failed to parse config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A `[server]` or `[telemetry]` value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A `[storage]` value is out of range.
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// An `[ingest]` value is out of range.
    #[error(transparent)]
    Ingest(#[from] ingest::Error),
    /// A `[query]` value is out of range.
    #[error(transparent)]
    Query(#[from] query::Error),
}

impl Config {
    /// Reads and parses a TOML config file. Missing keys take their defaults;
    /// unknown keys are an error that names them. Does not validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks every section: ranges and relations that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.telemetry.validate()?;
        self.storage.validate()?;
        self.ingest.validate()?;
        self.query.validate()?;
        Ok(())
    }
}

impl ServerConfig {
    /// Returns every enabled listener with its config key, main listener first.
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let optional = [
            ("server.otlp_http_listen", self.otlp_http_listen),
            ("server.jaeger_listen", self.jaeger_listen),
            ("server.es_listen", self.es_listen),
        ];
        let mut listeners = vec![
            ("server.listen", self.listen),
            ("server.grpc_listen", self.grpc_listen),
        ];
        listeners.extend(
            optional
                .into_iter()
                .filter_map(|(key, listen)| Some((key, listen.addr()?))),
        );
        listeners
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let listeners = self.listeners();
        for (index, (key, addr)) in listeners.iter().enumerate() {
            let clash = listeners[..index]
                .iter()
                .find(|(_, earlier)| addr.port() != 0 && earlier == addr);
            if let Some((earlier_key, _)) = clash {
                return Err(ConfigError::Invalid(format!(
                    "{earlier_key} and {key} both use {addr}"
                )));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "server.data_dir must not be empty".to_string(),
            ));
        }
        Ok(())
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .map(|_| ())
            .map_err(|error| {
                ConfigError::Invalid(format!(
                    "telemetry.log_filter {:?}: {error}",
                    self.log_filter
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn empty_file_means_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn listen_parses_addresses_and_off() {
        assert_eq!("off".parse::<Listen>().unwrap(), Listen::Off);
        assert_eq!("OFF".parse::<Listen>().unwrap(), Listen::Off);
        assert_eq!(
            "127.0.0.1:4318".parse::<Listen>().unwrap().addr(),
            Some(SocketAddr::from(([127, 0, 0, 1], 4318)))
        );
        assert!("localhost".parse::<Listen>().is_err());
        assert_eq!(Listen::Off.to_string(), "off");
    }

    #[test]
    fn clashing_listeners_are_named() {
        let mut config = Config::default();
        config.server.otlp_http_listen = Listen::On(config.server.listen);
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("server.listen"), "{message}");
        assert!(message.contains("server.otlp_http_listen"), "{message}");
    }

    #[test]
    fn port_zero_never_clashes() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = Config::default();
        config.server.listen = any;
        config.server.grpc_listen = any;
        config.server.otlp_http_listen = Listen::On(any);
        config.validate().unwrap();
    }

    #[test]
    fn roles_parse_and_default_to_all() {
        assert_eq!(ServerConfig::default().role, Role::All);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("querier".parse::<Role>().is_err());
        let config: Config = toml::from_str("[server]\nrole = \"compact\"\n").unwrap();
        assert_eq!(config.server.role, Role::Compact);
        assert!(Role::All.ingests() && Role::All.queries() && Role::All.compacts());
        assert!(!Role::Query.ingests() && !Role::Query.compacts());
        assert!(!Role::Ingest.queries() && !Role::Compact.ingests());
    }

    #[test]
    fn bad_log_filter_is_rejected() {
        let mut config = Config::default();
        config.telemetry.log_filter = "sightline=loud".to_string();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("telemetry.log_filter"), "{message}");
    }
}
