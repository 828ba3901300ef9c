//! The `[query]` section of the configuration file.

use proto::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Bounds on every query, whatever API it comes through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A query still running after this is cancelled and answered with a timeout error.
    pub timeout: HumanDuration,
    /// Memory one query may hold (DataFusion memory pool); past it the query fails.
    pub memory_limit: ByteSize,
    /// Most samples one PromQL query may load; past it the query fails.
    pub max_samples: u64,
    /// How far back a PromQL instant selector looks for the latest sample.
    pub lookback_delta: HumanDuration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: HumanDuration::secs(2 * 60),
            memory_limit: ByteSize::mib(4 * 1024),
            max_samples: 50_000_000,
            lookback_delta: HumanDuration::secs(5 * 60),
        }
    }
}

impl Config {
    /// Checks the values that serde cannot: every bound must be greater than zero.
    pub fn validate(&self) -> Result<()> {
        let invalid = |name: &str| {
            Err(Error::InvalidConfig(format!(
                "query.{name} must be greater than zero"
            )))
        };
        if self.timeout.get().is_zero() {
            return invalid("timeout");
        }
        if self.memory_limit.bytes() == 0 {
            return invalid("memory_limit");
        }
        if self.max_samples == 0 {
            return invalid("max_samples");
        }
        if self.lookback_delta.get().is_zero() {
            return invalid("lookback_delta");
        }
        Ok(())
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
    fn zero_bounds_are_named() {
        let config = Config {
            max_samples: 0,
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_samples")
        );
    }
}
