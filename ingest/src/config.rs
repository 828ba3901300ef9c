//! The `[ingest]` section of the configuration file.

use proto::{ByteSize, HumanDuration, TenantId};
use serde::{Deserialize, Serialize};

use crate::scrape::{ScrapeConfig, validate_scrape_configs};
use crate::{Error, Result};

/// Limits and tenant settings shared by every write protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Largest request body accepted, as sent (compressed); larger ones get 413.
    pub max_request_size: ByteSize,
    /// Largest request body after decompression; a body that inflates past this gets 413.
    pub max_decompressed_size: ByteSize,
    /// Tenant of writes that carry no tenant header.
    pub default_tenant: String,
    /// HTTP header (and gRPC metadata key) that names the tenant of a write.
    pub tenant_header: String,
    /// Most labels one series may carry (`__name__` included); more is a 400.
    pub max_labels_per_series: usize,
    /// Longest label value accepted, in bytes; longer is a 400.
    pub max_label_value_length: usize,
    /// Prometheus scrape jobs (`[[ingest.scrape_configs]]`); none by default.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Bearer tokens, each bound to one tenant (`[[ingest.tenant_tokens]]`). When any is
    /// set, every write must carry `Authorization: Bearer <token>` and lands in that
    /// token's tenant; a tenant header naming another tenant is refused (403).
    pub tenant_tokens: Vec<TenantToken>,
    /// Most OTLP delta-temporality streams accumulated into cumulative series at once
    /// (memory: ~100 bytes per sum, more per histogram); past it new streams are refused.
    pub otlp_delta_max_streams: usize,
    /// An OTLP delta stream without a point for this long is forgotten (its next point
    /// starts a new cumulative series, which PromQL reads as a counter reset).
    pub otlp_delta_max_stale: HumanDuration,
}

/// A bearer token and the one tenant it may write to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantToken {
    /// The tenant.
    pub tenant: String,
    /// The secret the client sends as `Authorization: Bearer <token>`.
    pub token: String,
}

impl std::fmt::Debug for TenantToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantToken")
            .field("tenant", &self.tenant)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_request_size: ByteSize::mib(16),
            max_decompressed_size: ByteSize::mib(64),
            default_tenant: TenantId::DEFAULT.to_string(),
            tenant_header: "X-Scope-OrgID".to_string(),
            max_labels_per_series: 64,
            max_label_value_length: 2048,
            scrape_configs: Vec::new(),
            tenant_tokens: Vec::new(),
            otlp_delta_max_streams: 100_000,
            otlp_delta_max_stale: HumanDuration::secs(300),
        }
    }
}

impl Config {
    /// Checks the values that serde cannot: ranges, relations and names.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidConfig(message));
        if self.max_request_size.bytes() == 0 {
            return invalid("ingest.max_request_size must be greater than zero".to_string());
        }
        if self.max_decompressed_size < self.max_request_size {
            return invalid(format!(
                "ingest.max_decompressed_size ({}) must be at least ingest.max_request_size ({})",
                self.max_decompressed_size, self.max_request_size
            ));
        }
        if usize::try_from(self.max_decompressed_size.bytes()).is_err() {
            return invalid("ingest.max_decompressed_size does not fit in memory".to_string());
        }
        if let Err(error) = TenantId::new(self.default_tenant.as_str()) {
            return invalid(format!("ingest.default_tenant: {error}"));
        }
        if !is_header_name(&self.tenant_header) {
            return invalid(format!(
                "ingest.tenant_header {:?} is not a valid http header name",
                self.tenant_header
            ));
        }
        if self.max_labels_per_series == 0 {
            return invalid("ingest.max_labels_per_series must be greater than zero".to_string());
        }
        if self.max_label_value_length == 0 {
            return invalid("ingest.max_label_value_length must be greater than zero".to_string());
        }
        if self.otlp_delta_max_streams == 0 {
            return invalid("ingest.otlp_delta_max_streams must be greater than zero".to_string());
        }
        if self.otlp_delta_max_stale.get().is_zero() {
            return invalid("ingest.otlp_delta_max_stale must be greater than zero".to_string());
        }
        validate_scrape_configs(&self.scrape_configs)?;
        for (i, entry) in self.tenant_tokens.iter().enumerate() {
            if let Err(error) = TenantId::new(entry.tenant.as_str()) {
                return invalid(format!("ingest.tenant_tokens[{i}].tenant: {error}"));
            }
            if entry.token.len() < 16 || !entry.token.bytes().all(|b| b.is_ascii_graphic()) {
                return invalid(format!(
                    "ingest.tenant_tokens[{i}].token must be at least 16 printable ascii characters"
                ));
            }
            if self.tenant_tokens[..i]
                .iter()
                .any(|other| other.token == entry.token)
            {
                return invalid(format!("ingest.tenant_tokens[{i}].token is used twice"));
            }
        }
        Ok(())
    }
}

/// Returns true for a non-empty RFC 9110 token, the syntax of an HTTP field name.
fn is_header_name(name: &str) -> bool {
    const TOKEN_PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TOKEN_PUNCTUATION.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let config = Config {
            default_tenant: "a/b".to_string(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("default_tenant")
        );

        let config = Config {
            tenant_header: "X Scope".to_string(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("tenant_header")
        );

        let config = Config {
            max_decompressed_size: ByteSize::mib(1),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_decompressed_size")
        );

        for config in [
            Config {
                max_labels_per_series: 0,
                ..Config::default()
            },
            Config {
                max_label_value_length: 0,
                ..Config::default()
            },
        ] {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("max_label"), "{message}");
        }
    }
}
