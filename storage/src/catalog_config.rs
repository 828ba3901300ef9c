//! The `[storage.catalog]` section: where the list of live segments is kept.

use std::path::PathBuf;

use proto::HumanDuration;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Catalog settings. Unset `url` means the embedded catalog (`manifest.json` in the
/// segment store), the single-node default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// `postgres://user@host:port/database` of a shared PostgreSQL catalog, or unset for
    /// the embedded one. The password goes in `password_file`, not here.
    pub url: Option<String>,
    /// File holding the PostgreSQL password (a mounted Secret); its trailing newline is ignored.
    pub password_file: Option<PathBuf>,
    /// This node's name in the catalog (its WAL checkpoint and heartbeat are kept under
    /// it). Unset means the host name. An ingester must keep its name across restarts.
    pub node_id: Option<String>,
    /// How often a node reloads the segment list from a shared catalog and renews its heartbeat.
    pub refresh_interval: HumanDuration,
    /// How long a compaction lease holds before another node may take the range over.
    pub lease_ttl: HumanDuration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            url: None,
            password_file: None,
            node_id: None,
            refresh_interval: HumanDuration::secs(5),
            lease_ttl: HumanDuration::secs(600),
        }
    }
}

impl CatalogConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<()> {
        if let Some(url) = &self.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(Error::InvalidConfig(format!(
                "storage.catalog.url {url:?}: only postgres:// catalogs are supported"
            )));
        }
        if self.refresh_interval.get().is_zero() || self.lease_ttl.get().is_zero() {
            return Err(Error::InvalidConfig(
                "storage.catalog.refresh_interval and lease_ttl must be greater than zero".into(),
            ));
        }
        if let Some(node) = &self.node_id
            && (node.is_empty() || node.len() > 253)
        {
            return Err(Error::InvalidConfig(
                "storage.catalog.node_id must have 1 to 253 characters".into(),
            ));
        }
        Ok(())
    }
}
