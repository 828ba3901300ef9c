use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A failure to parse a human-readable size or duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {text:?}: {reason}")]
pub struct ParseUnitError {
    kind: &'static str,
    text: String,
    reason: &'static str,
}

/// A byte count written as `"256MiB"`, `"16MB"`, `"4GiB"` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Builds a size from mebibytes.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }

    /// Returns the size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ParseUnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseUnitError {
            kind: "size",
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| error("expected a number"))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            _ => {
                return Err(error(
                    "unknown unit (use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)",
                ));
            }
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(error("out of range"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(bytes) => Ok(ByteSize(bytes)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written as `"5ms"`, `"10s"`, `"1h30m"`, `"7d"` (units `ms s m h d w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Builds a duration from seconds.
    pub const fn secs(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n))
    }

    /// Builds a duration from milliseconds.
    pub const fn millis(n: u64) -> Self {
        HumanDuration(Duration::from_millis(n))
    }

    /// Returns the wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = ParseUnitError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParseUnitError {
            kind: "duration",
            text: text.to_string(),
            reason,
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(error("empty"));
        }
        if rest == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        let mut total_ms: u128 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(error("expected a number"));
            }
            let number: u128 = rest[..digits]
                .parse()
                .map_err(|_| error("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit_ms: u128 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "" => return Err(error("missing unit (use ms, s, m, h, d, w)")),
                _ => return Err(error("unknown unit (use ms, s, m, h, d, w)")),
            };
            rest = &rest[unit_len..];
            total_ms = number
                .checked_mul(unit_ms)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(|| error("too large"))?;
        }
        let millis = u64::try_from(total_ms).map_err(|_| error("too large"))?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        const UNITS: [(&str, u128); 5] = [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ];
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        unreachable!("every duration is a whole number of milliseconds")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap(), ByteSize::mib(256));
        assert_eq!("16MB".parse::<ByteSize>().unwrap().bytes(), 16_000_000);
        assert_eq!("1024".parse::<ByteSize>().unwrap().bytes(), 1024);
        assert_eq!(ByteSize::mib(256).to_string(), "256MiB");
        assert!("12 parsecs".parse::<ByteSize>().is_err());
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(
            "1h30m".parse::<HumanDuration>().unwrap().get().as_secs(),
            5400
        );
        assert_eq!("5ms".parse::<HumanDuration>().unwrap().get().as_millis(), 5);
        assert_eq!(HumanDuration::secs(7 * 86400).to_string(), "7d");
        assert_eq!(HumanDuration::secs(90).to_string(), "90s");
        assert!("10".parse::<HumanDuration>().is_err());
        assert!("10x".parse::<HumanDuration>().is_err());
    }
}
