//! Metric label sets, matchers, and the in-memory series index (label → series ids).
//!
//! Series ids are dense per tenant (0, 1, 2…), so postings lists are appended in
//! order and stay sorted without any work. Lookup of an incoming label set hashes its
//! canonical bytes (xxh3) and compares labels on a hit.

use std::collections::{BTreeMap, HashMap};

use proto::SeriesId;
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<(String, String)>);

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
        Ok(Labels(pairs))
    }

    /// Builds a label set from `name` and other labels.
    pub fn from_metric(name: &str, labels: &Attributes) -> Result<Self> {
        let mut pairs: Vec<(String, String)> =
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.push((METRIC_NAME_LABEL.to_string(), name.to_string()));
        Labels::new(pairs)
    }

    /// Returns the value of a label, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Returns the metric name (`__name__`), or "" when absent.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME_LABEL).unwrap_or("")
    }

    /// Iterates over `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Returns the number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns true for the empty label set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the `(name, value)` pairs, sorted by name.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
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
    fn fingerprint(&self) -> u128 {
        FINGERPRINT_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            for (name, value) in &self.0 {
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

/// The series of one tenant: labels by id, ids by labels, and postings per label pair.
#[derive(Default)]
pub(crate) struct SeriesIndex {
    by_fingerprint: HashMap<u128, u64>,
    labels: Vec<Option<Labels>>,
    postings: HashMap<String, BTreeMap<String, Vec<u64>>>,
    /// Smallest and largest sample timestamp seen per series (ms).
    bounds: Vec<(i64, i64)>,
    count: usize,
}

impl SeriesIndex {
    /// Returns the id of an existing label set.
    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.lookup(labels.fingerprint())
    }

    fn lookup(&self, fingerprint: u128) -> Option<SeriesId> {
        self.by_fingerprint
            .get(&fingerprint)
            .map(|id| SeriesId(*id))
    }

    /// Returns the id for `labels`, creating the series if needed; the flag tells whether it was new.
    pub fn get_or_create(&mut self, labels: &Labels) -> (SeriesId, bool) {
        let fingerprint = labels.fingerprint();
        if let Some(id) = self.lookup(fingerprint) {
            return (id, false);
        }
        let id = self.labels.len() as u64;
        self.insert_at(id, labels.clone(), fingerprint);
        (SeriesId(id), true)
    }

    /// Registers a series under a known id (WAL replay and segment load).
    pub fn insert_with_id(&mut self, id: SeriesId, labels: Labels) {
        let index = id.0 as usize;
        if self.labels.get(index).is_some_and(Option::is_some) {
            return;
        }
        let fingerprint = labels.fingerprint();
        self.insert_at(id.0, labels, fingerprint);
    }

    fn insert_at(&mut self, id: u64, labels: Labels, fingerprint: u128) {
        let index = id as usize;
        if self.labels.len() <= index {
            self.labels.resize(index + 1, None);
        }
        for (name, value) in labels.iter() {
            let list = self
                .postings
                .entry(name.to_string())
                .or_default()
                .entry(value.to_string())
                .or_default();
            match list.last() {
                Some(last) if *last > id => {
                    let at = list.partition_point(|x| *x < id);
                    list.insert(at, id);
                }
                _ => list.push(id),
            }
        }
        self.by_fingerprint.insert(fingerprint, id);
        self.labels[index] = Some(labels);
        self.count += 1;
    }

    /// Returns the labels of a series.
    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.labels.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.count
    }

    /// One past the largest id in use.
    pub fn next_id(&self) -> u64 {
        self.labels.len() as u64
    }

    /// Widens a series' known time bounds.
    pub fn observe(&mut self, id: SeriesId, min_ts: i64, max_ts: i64) {
        let index = id.0 as usize;
        if self.bounds.len() <= index {
            self.bounds.resize(index + 1, (i64::MAX, i64::MIN));
        }
        let bounds = &mut self.bounds[index];
        bounds.0 = bounds.0.min(min_ts);
        bounds.1 = bounds.1.max(max_ts);
    }

    /// Returns true when the series has samples that may overlap `[start, end]` (ms).
    pub fn overlaps(&self, id: SeriesId, start: i64, end: i64) -> bool {
        self.bounds
            .get(id.0 as usize)
            .is_some_and(|(min, max)| *min <= end && *max >= start)
    }

    /// Returns the sorted ids of the series that satisfy every matcher.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut selected: Option<Vec<u64>> = None;
        for matcher in matchers.iter().filter(|m| !m.matches("")) {
            let ids = self.union_of_values(matcher, true);
            selected = Some(match selected {
                None => ids,
                Some(current) => intersect(&current, &ids),
            });
            if selected.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut selected = selected.unwrap_or_else(|| {
            (0..self.labels.len() as u64)
                .filter(|id| self.labels[*id as usize].is_some())
                .collect()
        });
        for matcher in matchers.iter().filter(|m| m.matches("")) {
            let excluded = self.union_of_values(matcher, false);
            selected = subtract(&selected, &excluded);
        }
        selected.into_iter().map(SeriesId).collect()
    }

    /// Ids of series whose value for the matcher's label matches (or not, per `want`).
    fn union_of_values(&self, matcher: &Matcher, want: bool) -> Vec<u64> {
        let Some(values) = self.postings.get(matcher.name()) else {
            return Vec::new();
        };
        if matcher.op == MatchOp::Equal && want {
            return values.get(&matcher.value).cloned().unwrap_or_default();
        }
        let mut ids: Vec<u64> = values
            .iter()
            .filter(|(value, _)| matcher.matches(value) == want)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Returns the label names used by the given series (or by all series), sorted.
    pub fn label_names(&self, ids: Option<&[SeriesId]>) -> Vec<String> {
        match ids {
            None => {
                let mut names: Vec<String> = self.postings.keys().cloned().collect();
                names.sort_unstable();
                names
            }
            Some(ids) => {
                let mut names = std::collections::BTreeSet::new();
                for id in ids {
                    if let Some(labels) = self.labels(*id) {
                        names.extend(labels.iter().map(|(n, _)| n.to_string()));
                    }
                }
                names.into_iter().collect()
            }
        }
    }

    /// Returns the values of one label over the given series (or over all series), sorted.
    pub fn label_values(&self, name: &str, ids: Option<&[SeriesId]>) -> Vec<String> {
        match ids {
            None => self
                .postings
                .get(name)
                .map(|values| values.keys().cloned().collect())
                .unwrap_or_default(),
            Some(ids) => {
                let mut values = std::collections::BTreeSet::new();
                for id in ids {
                    if let Some(value) = self.labels(*id).and_then(|l| l.get(name)) {
                        values.insert(value.to_string());
                    }
                }
                values.into_iter().collect()
            }
        }
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn index() -> SeriesIndex {
        let mut index = SeriesIndex::default();
        for (job, code, method) in [
            ("api", "200", "GET"),
            ("api", "500", "GET"),
            ("db", "200", ""),
            ("gateway", "404", "POST"),
        ] {
            index.get_or_create(&labels(&[
                ("__name__", "http_requests_total"),
                ("job", job),
                ("code", code),
                ("method", method),
            ]));
        }
        index
    }

    fn select(index: &SeriesIndex, matchers: &[(MatchOp, &str, &str)]) -> Vec<u64> {
        let matchers: Vec<Matcher> = matchers
            .iter()
            .map(|(op, n, v)| Matcher::new(*op, *n, *v).unwrap())
            .collect();
        index.select(&matchers).into_iter().map(|id| id.0).collect()
    }

    #[test]
    fn same_labels_in_any_order_get_the_same_id() {
        let mut index = SeriesIndex::default();
        let (a, new_a) = index.get_or_create(&labels(&[("b", "2"), ("a", "1")]));
        let (b, new_b) = index.get_or_create(&labels(&[("a", "1"), ("b", "2")]));
        assert_eq!((a, new_a, new_b), (b, true, false));
    }

    #[test]
    fn matchers_follow_prometheus_semantics() {
        let index = index();
        use MatchOp::*;
        assert_eq!(select(&index, &[(Equal, "job", "api")]), vec![0, 1]);
        assert_eq!(select(&index, &[(NotEqual, "job", "api")]), vec![2, 3]);
        assert_eq!(
            select(&index, &[(RegexMatch, "code", "2..|404")]),
            vec![0, 2, 3]
        );
        assert_eq!(
            select(&index, &[(RegexMatch, "code", "20")]),
            Vec::<u64>::new()
        );
        assert_eq!(select(&index, &[(RegexNoMatch, "job", "api|db")]), vec![3]);
        // A matcher that matches "" also selects series without the label.
        assert_eq!(select(&index, &[(Equal, "method", "")]), vec![2]);
        assert_eq!(
            select(&index, &[(RegexMatch, "method", "GET|")]),
            vec![0, 1, 2]
        );
        assert_eq!(
            select(
                &index,
                &[
                    (Equal, "__name__", "http_requests_total"),
                    (NotEqual, "method", "GET")
                ]
            ),
            vec![2, 3]
        );
    }

    #[test]
    fn empty_values_are_dropped_and_duplicates_rejected() {
        assert_eq!(labels(&[("a", ""), ("b", "1")]).len(), 1);
        assert!(Labels::new(vec![("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
    }

    proptest! {
        #[test]
        fn select_equals_brute_force(
            series in prop::collection::vec(prop::collection::btree_map("[abc]", "[xyz]{0,1}", 0..3), 1..30),
            name in "[abc]",
            value in "[xyz]{0,1}",
            op in 0..4usize,
        ) {
            let mut index = SeriesIndex::default();
            let mut all = Vec::new();
            for attrs in &series {
                let l = Labels::from_metric("m", attrs).unwrap();
                let (id, _) = index.get_or_create(&l);
                all.push((id.0, l));
            }
            all.sort();
            all.dedup_by_key(|(id, _)| *id);
            let op = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::RegexMatch, MatchOp::RegexNoMatch][op];
            let matcher = Matcher::new(op, name.clone(), value).unwrap();
            let expected: Vec<u64> = all
                .iter()
                .filter(|(_, l)| matcher.matches(l.get(&name).unwrap_or("")))
                .map(|(id, _)| *id)
                .collect();
            let got: Vec<u64> = index.select(&[matcher]).into_iter().map(|id| id.0).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
