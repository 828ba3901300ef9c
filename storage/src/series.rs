//! Metric label sets, matchers, and series ids.
//!
//! Series ids are unique across nodes (a node ordinal in the high bits, a dense local
//! number below). The in-memory index that maps label sets to ids is
//! `series_index::SeriesIndex`; it finds an incoming label set by hashing its canonical
//! bytes ([`Labels`] fingerprint, xxh3_128; a hit needs no label comparison).

use std::sync::OnceLock;

use regex::Regex;
use xxhash_rust::xxh3::xxh3_128;

thread_local! {
    static FINGERPRINT_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

use crate::model::Attributes;
use crate::{Error, Result};

/// The label that holds the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// A metric's label set: sorted by name, names unique, no empty values, `__name__` included.
///
/// It remembers its [`Labels::fingerprint`] once computed: a label set that a receiver
/// keeps between requests (the remote_write label cache) is hashed once, not on every
/// write. Equality, order and hashing look at the pairs only.
#[derive(Clone, Default)]
pub struct Labels {
    pairs: Vec<(String, String)>,
    fingerprint: OnceLock<u128>,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.pairs == other.pairs
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.pairs.cmp(&other.pairs)
    }
}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pairs.hash(state);
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Labels").field(&self.pairs).finish()
    }
}

impl Labels {
    /// Builds a label set, sorting it and dropping empty values (as Prometheus does).
    /// Fails on empty or duplicate names.
    pub fn new(mut pairs: Vec<(String, String)>) -> Result<Self> {
        pairs.retain(|(_, value)| !value.is_empty());
        if !pairs.is_sorted_by(|a, b| a.0 < b.0) {
            pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        for window in pairs.windows(2) {
            if window[0].0 == window[1].0 {
                return Err(Error::InvalidWrite(format!(
                    "duplicate label name {:?}",
                    window[0].0
                )));
            }
        }
        if pairs.iter().any(|(name, _)| name.is_empty()) {
            return Err(Error::InvalidWrite("empty label name".to_string()));
        }
        Ok(Labels::wrap(pairs))
    }

    /// Builds a label set from `name` and other labels.
    pub fn from_metric(name: &str, labels: &Attributes) -> Result<Self> {
        let mut pairs: Vec<(String, String)> =
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.push((METRIC_NAME_LABEL.to_string(), name.to_string()));
        Labels::new(pairs)
    }

    fn wrap(pairs: Vec<(String, String)>) -> Self {
        Labels {
            pairs,
            fingerprint: OnceLock::new(),
        }
    }

    /// Returns the value of a label, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// Returns the metric name (`__name__`), or "" when absent.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME_LABEL).unwrap_or("")
    }

    /// Iterates over `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Returns the number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Returns true for the empty label set.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Wraps pairs that are already a valid label set (sorted, unique names, no empty values).
    pub(crate) fn from_sorted_pairs(pairs: Vec<(String, String)>) -> Self {
        debug_assert!(
            pairs.is_sorted_by(|a, b| a.0 < b.0),
            "label names sorted and unique"
        );
        Labels::wrap(pairs)
    }

    /// Returns the `(name, value)` pairs, sorted by name.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// Returns the labels other than `__name__`, as an attribute map.
    pub fn without_name(&self) -> Attributes {
        self.iter()
            .filter(|(n, _)| *n != METRIC_NAME_LABEL)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// A 128-bit hash of the canonical label bytes. At 2^-128 per pair a collision is
    /// not a practical concern (PERF-NOTES §4), so a hit needs no label comparison.
    /// Computed on first use and remembered.
    pub fn fingerprint(&self) -> u128 {
        *self.fingerprint.get_or_init(|| self.compute_fingerprint())
    }

    fn compute_fingerprint(&self) -> u128 {
        FINGERPRINT_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            for (name, value) in &self.pairs {
                buffer.extend_from_slice(name.as_bytes());
                buffer.push(0xff);
                buffer.extend_from_slice(value.as_bytes());
                buffer.push(0xfe);
            }
            xxh3_128(&buffer)
        })
    }
}

/// The four PromQL matcher kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    RegexMatch,
    /// `!~` (fully anchored)
    RegexNoMatch,
}

/// One label matcher of a series selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regexes are anchored at both ends, as in PromQL.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(
                Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| Error::InvalidQuery(format!("bad regex {value:?}: {e}")))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// Returns the operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// Returns the value (or regex source) the matcher compares against.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Returns the label name this matcher tests.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tests one label value ("" stands for an absent label).
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::RegexMatch, Some(re)) => re.is_match(value),
            (MatchOp::RegexNoMatch, Some(re)) => !re.is_match(value),
            (_, None) => unreachable!("regex matchers always hold a compiled regex"),
        }
    }
}

/// Bits of a series id that number the series within one node's id space; the bits
/// above hold the node's ordinal (0 for a single node and for data written before
/// ordinals existed).
pub const LOCAL_ID_BITS: u32 = 40;

/// The first series id of the node with `ordinal`.
pub fn series_id_base(ordinal: u64) -> u64 {
    ordinal << LOCAL_ID_BITS
}

/// A label set from `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn test_labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
    .expect("valid test labels")
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_labels as labels;

    #[test]
    fn empty_values_are_dropped_and_duplicates_rejected() {
        assert_eq!(labels(&[("a", ""), ("b", "1")]).len(), 1);
        assert!(Labels::new(vec![("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
    }

    #[test]
    fn a_remembered_fingerprint_changes_nothing_but_its_cost() {
        use std::hash::BuildHasher;
        let hashed = labels(&[("__name__", "up"), ("job", "api")]);
        let fingerprint = hashed.fingerprint();
        let fresh = labels(&[("job", "api"), ("__name__", "up")]);
        // Equality, order and hashing ignore whether the fingerprint was computed.
        assert_eq!(hashed, fresh);
        assert_eq!(hashed.cmp(&fresh), std::cmp::Ordering::Equal);
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&hashed), state.hash_one(&fresh));
        assert_eq!(format!("{hashed:?}"), format!("{fresh:?}"));
        // The remembered value is the one a fresh label set computes, and survives clones.
        assert_eq!(fresh.fingerprint(), fingerprint);
        assert_eq!(hashed.clone().fingerprint(), fingerprint);
        assert_eq!(hashed.compute_fingerprint(), fingerprint);
        // Different label sets differ, also in the canonical encoding's separators.
        assert_ne!(
            labels(&[("a", "bc")]).fingerprint(),
            labels(&[("ab", "c")]).fingerprint()
        );
        assert_ne!(labels(&[("__name__", "up")]).fingerprint(), fingerprint);
    }
}
