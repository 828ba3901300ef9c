use std::fmt;
use std::str::FromStr;

/// A failure to parse an id from its text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The text has the wrong number of hex digits.
    #[error("expected {expected} hex digits, got {actual}")]
    Length { expected: usize, actual: usize },
    /// The text holds a character that is not a hex digit.
    #[error("invalid hex digit in id")]
    Digit,
    /// The tenant name is empty, too long or holds a character outside `[A-Za-z0-9_.-]`.
    #[error("invalid tenant id {0:?}: use 1-64 characters of [A-Za-z0-9_.-]")]
    Tenant(String),
}

/// The three kinds of telemetry Sightline stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Metric series, samples, exemplars and metadata.
    Metrics,
    /// Log records.
    Logs,
    /// Trace spans.
    Spans,
}

impl Signal {
    /// Every signal, in a fixed order.
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Spans];

    /// Returns the lowercase name used in paths and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Spans => "spans",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tenant that owns a piece of data. Safe to use as a path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant used when a request names none.
    pub const DEFAULT: &'static str = "default";

    /// Validates and wraps a tenant name.
    pub fn new(name: impl Into<String>) -> Result<Self, ParseIdError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if valid {
            Ok(TenantId(name))
        } else {
            Err(ParseIdError::Tenant(name))
        }
    }

    /// Returns the tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        TenantId(Self::DEFAULT.to_string())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], ParseIdError> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return Err(ParseIdError::Length {
            expected: N * 2,
            actual: bytes.len(),
        });
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(ParseIdError::Digit)?;
        let lo = hex_value(pair[1]).ok_or(ParseIdError::Digit)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Width of the id in bytes.
            pub const LEN: usize = $len;

            /// Returns the id's bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Builds the id from a byte slice of exactly the right width.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map($name)
            }

            /// Returns true when every byte is zero (an absent id on the wire).
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>(text).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(&self.0, f)?;
                f.write_str(")")
            }
        }
    };
}

hex_id!(
    /// A 128-bit trace id; its text form is 32 lowercase hex digits.
    TraceId,
    16
);
hex_id!(
    /// A 64-bit span id; its text form is 16 lowercase hex digits.
    SpanId,
    8
);

impl TraceId {
    /// Parses a trace id given as 32 hex digits, or as 16 (a 64-bit Zipkin/B3 id, left-padded with zeros).
    pub fn parse_lenient(text: &str) -> Result<Self, ParseIdError> {
        if text.len() == 16 {
            let low = parse_hex::<8>(text)?;
            let mut out = [0u8; 16];
            out[8..].copy_from_slice(&low);
            Ok(TraceId(out))
        } else {
            text.parse()
        }
    }
}

/// The dense id of a metric series within one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u64);

/// The id of one immutable segment (a Parquet file and its companions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u64);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_round_trips_through_hex() {
        let text = "4bf92f3577b34da6a3ce929d0e0e4736";
        let id: TraceId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(TraceId::parse_lenient(&text.to_uppercase()).unwrap(), id);
    }

    #[test]
    fn short_trace_id_is_left_padded() {
        let id = TraceId::parse_lenient("a3ce929d0e0e4736").unwrap();
        assert_eq!(id.to_string(), "0000000000000000a3ce929d0e0e4736");
    }

    #[test]
    fn bad_ids_are_rejected() {
        assert_eq!(
            "abc".parse::<SpanId>(),
            Err(ParseIdError::Length {
                expected: 16,
                actual: 3
            })
        );
        assert_eq!(
            "zz00000000000000".parse::<SpanId>(),
            Err(ParseIdError::Digit)
        );
    }

    #[test]
    fn tenant_names_are_path_safe() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        for bad in ["", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
