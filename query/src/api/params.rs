//! Parameter parsing shared by the read APIs: times and durations as the Prometheus
//! HTTP API writes them (PROTOCOLS.md §1.2).

use crate::{Error, Result};

/// Parses a time: RFC 3339 (`2026-11-24T10:05:00Z`, fractional seconds allowed) or
/// Unix seconds with an optional fraction (`1732442700.123`). Returns Unix milliseconds.
pub fn parse_time(name: &str, value: &str) -> Result<i64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(Error::BadRequest(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp"
            )));
        }
        let ms = (seconds * 1000.0).round();
        // Prometheus clamps its min/max time sentinels into range; so do we.
        return Ok(ms.clamp(i64::MIN as f64 / 2.0, i64::MAX as f64 / 2.0) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Error::BadRequest(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp"
            ))
        })
}

/// Parses a duration: Prometheus duration syntax (`5m`, `1h30m`, `250ms`) or seconds
/// with an optional fraction (`15`, `0.5`). Returns milliseconds.
pub fn parse_duration(name: &str, value: &str) -> Result<i64> {
    let value = value.trim();
    let invalid = || {
        Error::BadRequest(format!(
            "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration"
        ))
    };
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > (i64::MAX / 1000) as f64 {
            return Err(invalid());
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    parse_prometheus_duration(value).ok_or_else(invalid)
}

/// Parses `[0-9]+(ms|s|m|h|d|w|y)` repeated, units in decreasing order, into milliseconds.
pub fn parse_prometheus_duration(value: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if value.is_empty() {
        return None;
    }
    let mut rest = value;
    let mut total: i64 = 0;
    let mut last_unit = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (index, (unit, scale)) = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())?;
        if last_unit.is_some_and(|last| index <= last) {
            return None;
        }
        last_unit = Some(index);
        rest = &rest[unit.len()..];
        total = total.checked_add(number.checked_mul(*scale)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("t", "1.5").unwrap(), 1500);
        assert_eq!(parse_time("t", "1970-01-01T00:00:01.25Z").unwrap(), 1250);
        assert_eq!(
            parse_time("t", "2026-11-24T10:00:00+01:00").unwrap(),
            parse_time("t", "2026-11-24T09:00:00Z").unwrap()
        );
        assert!(
            parse_time("start", "yesterday")
                .unwrap_err()
                .to_string()
                .contains("start")
        );
        assert!(parse_time("t", "NaN").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("step", "15").unwrap(), 15_000);
        assert_eq!(parse_duration("step", "0.25").unwrap(), 250);
        assert_eq!(parse_duration("step", "1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("step", "250ms").unwrap(), 250);
        assert_eq!(parse_duration("step", "1m1ms").unwrap(), 60_001);
        assert!(parse_duration("step", "30m1h").is_err());
        assert!(parse_duration("step", "5x").is_err());
        assert!(parse_duration("step", "").is_err());
    }
}
