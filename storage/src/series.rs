//! Metric label sets, matchers, and the in-memory series index (label → series ids).
//!
//! Series ids are unique across nodes (a node ordinal in the high bits, a dense local
//! number below); the index maps them to dense positions, so postings lists are
//! appended in order and stay sorted without any work. Lookup of an incoming label set
//! hashes its canonical bytes (xxh3_128; a hit needs no label comparison).

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

/// Bits of a series id that number the series within one node's id space; the bits
/// above hold the node's ordinal (0 for a single node and for data written before
/// ordinals existed).
pub const LOCAL_ID_BITS: u32 = 40;

/// The first series id of the node with `ordinal`.
pub fn series_id_base(ordinal: u64) -> u64 {
    ordinal << LOCAL_ID_BITS
}

/// The series of one tenant: labels by id, ids by labels, and postings per label pair.
///
/// Series ids are global (`ordinal << 40 | local`, see [`series_id_base`]), so they are
/// not dense: each id is mapped to a dense position, and postings list positions, which
/// are handed out in insertion order and so stay sorted without work. One label set
/// has one position; when it arrives under a second id (written through two ingesters),
/// that id becomes an alias of the position: selection returns the first id (the
/// canonical one) and [`SeriesIndex::aliases`] gives the others, whose samples readers
/// merge into it, as PromQL wants one series per label set.
#[derive(Default)]
pub(crate) struct SeriesIndex {
    /// Id (canonical or alias) → position.
    positions: HashMap<u64, u32>,
    /// Per position: the canonical id, the labels, the sample time bounds (ms).
    ids: Vec<u64>,
    labels: Vec<Labels>,
    bounds: Vec<(i64, i64)>,
    by_fingerprint: HashMap<u128, u32>,
    postings: HashMap<String, BTreeMap<String, Vec<u32>>>,
    /// Ids other than the canonical one, per position.
    aliases: HashMap<u32, Vec<u64>>,
    /// One past the largest local id seen, per ordinal.
    next_local: HashMap<u64, u64>,
    /// Ids created here (or replayed) that no series segment holds yet, oldest first.
    unpersisted: Vec<u64>,
    /// Every id, sorted, per ordinal (what an ingester answers a querier's series sync from).
    by_ordinal: HashMap<u64, Vec<u64>>,
}

impl SeriesIndex {
    /// Returns the (canonical) id of an existing label set.
    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.lookup(labels.fingerprint())
    }

    fn lookup(&self, fingerprint: u128) -> Option<SeriesId> {
        self.by_fingerprint
            .get(&fingerprint)
            .map(|position| SeriesId(self.ids[*position as usize]))
    }

    /// Returns the id for `labels`, creating the series in the id space that starts at
    /// `base` (this node's [`series_id_base`]) if needed; the flag tells whether it was new.
    pub fn get_or_create(&mut self, labels: &Labels, base: u64) -> (SeriesId, bool) {
        let fingerprint = labels.fingerprint();
        if let Some(id) = self.lookup(fingerprint) {
            return (id, false);
        }
        let ordinal = base >> LOCAL_ID_BITS;
        let local = self.next_local.get(&ordinal).copied().unwrap_or(0);
        let id = base | local;
        self.insert(id, labels.clone(), fingerprint);
        self.unpersisted.push(id);
        (SeriesId(id), true)
    }

    /// Registers a series under a known id: from a series segment (`persisted`) or from
    /// WAL replay (then the next flush writes it to a series segment). Known ids are
    /// left alone.
    pub fn insert_with_id(&mut self, id: SeriesId, labels: Labels, persisted: bool) {
        if self.positions.contains_key(&id.0) {
            return;
        }
        let fingerprint = labels.fingerprint();
        self.insert(id.0, labels, fingerprint);
        if !persisted {
            self.unpersisted.push(id.0);
        }
    }

    fn insert(&mut self, id: u64, labels: Labels, fingerprint: u128) {
        let ordinal = id >> LOCAL_ID_BITS;
        let local = id & ((1 << LOCAL_ID_BITS) - 1);
        let next = self.next_local.entry(ordinal).or_insert(0);
        *next = (*next).max(local + 1);
        let ids = self.by_ordinal.entry(ordinal).or_default();
        match ids.last() {
            Some(last) if *last > id => {
                let at = ids.partition_point(|x| *x < id);
                ids.insert(at, id);
            }
            _ => ids.push(id),
        }
        if let Some(&position) = self.by_fingerprint.get(&fingerprint) {
            self.positions.insert(id, position);
            self.aliases.entry(position).or_default().push(id);
            return;
        }
        let position = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        for (name, value) in labels.iter() {
            self.postings
                .entry(name.to_string())
                .or_default()
                .entry(value.to_string())
                .or_default()
                .push(position);
        }
        self.by_fingerprint.insert(fingerprint, position);
        self.positions.insert(id, position);
        self.ids.push(id);
        self.labels.push(labels);
        self.bounds.push((i64::MAX, i64::MIN));
    }

    /// Returns the labels of a series (canonical id or alias).
    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.positions
            .get(&id.0)
            .map(|position| &self.labels[*position as usize])
    }

    /// Every id (canonical and alias) with its labels, in no particular order.
    pub fn all_ids(&self) -> impl Iterator<Item = (u64, &Labels)> {
        self.positions
            .iter()
            .map(|(id, position)| (*id, &self.labels[*position as usize]))
    }

    /// Number of distinct label sets.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The other ids of the label set of canonical id `id` (empty for most series).
    pub fn aliases(&self, id: SeriesId) -> &[u64] {
        self.positions
            .get(&id.0)
            .filter(|position| self.ids[**position as usize] == id.0)
            .and_then(|position| self.aliases.get(position))
            .map_or(&[], Vec::as_slice)
    }

    /// True when some label set has more than one id.
    pub fn has_aliases(&self) -> bool {
        !self.aliases.is_empty()
    }

    /// The series created or replayed here that no series segment holds yet, oldest first.
    pub fn unpersisted(&self) -> Vec<(u64, Labels)> {
        self.unpersisted
            .iter()
            .filter_map(|id| self.labels(SeriesId(*id)).map(|l| (*id, l.clone())))
            .collect()
    }

    /// Up to `limit` series of node `ordinal` with a local id from `after` on, by id.
    pub fn ids_from(&self, ordinal: u64, after: u64, limit: usize) -> Vec<(u64, Labels)> {
        let Some(ids) = self.by_ordinal.get(&ordinal) else {
            return Vec::new();
        };
        let from = ids.partition_point(|id| *id < series_id_base(ordinal) | after);
        ids[from..]
            .iter()
            .take(limit)
            .filter_map(|id| self.labels(SeriesId(*id)).map(|l| (*id, l.clone())))
            .collect()
    }

    /// One past the largest local id known, per ordinal.
    pub fn cursors(&self) -> BTreeMap<u64, u64> {
        self.next_local.iter().map(|(o, n)| (*o, *n)).collect()
    }

    /// Records that the first `count` of [`SeriesIndex::unpersisted`] are in a segment now.
    pub fn mark_persisted(&mut self, count: usize) {
        let count = count.min(self.unpersisted.len());
        self.unpersisted.drain(..count);
    }

    /// Widens a series' known time bounds.
    pub fn observe(&mut self, id: SeriesId, min_ts: i64, max_ts: i64) {
        let Some(&position) = self.positions.get(&id.0) else {
            return;
        };
        let bounds = &mut self.bounds[position as usize];
        bounds.0 = bounds.0.min(min_ts);
        bounds.1 = bounds.1.max(max_ts);
    }

    /// Returns true when the series has samples that may overlap `[start, end]` (ms).
    pub fn overlaps(&self, id: SeriesId, start: i64, end: i64) -> bool {
        self.positions
            .get(&id.0)
            .map(|position| self.bounds[*position as usize])
            .is_some_and(|(min, max)| min <= end && max >= start)
    }

    /// Returns the sorted canonical ids of the series that satisfy every matcher.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut selected: Option<Vec<u32>> = None;
        for matcher in matchers.iter().filter(|m| !m.matches("")) {
            let positions = self.union_of_values(matcher, true);
            selected = Some(match selected {
                None => positions,
                Some(current) => intersect(&current, &positions),
            });
            if selected.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut selected = selected
            .unwrap_or_else(|| (0..u32::try_from(self.ids.len()).unwrap_or(u32::MAX)).collect());
        for matcher in matchers.iter().filter(|m| m.matches("")) {
            let excluded = self.union_of_values(matcher, false);
            selected = subtract(&selected, &excluded);
        }
        let mut ids: Vec<SeriesId> = selected
            .into_iter()
            .map(|position| SeriesId(self.ids[position as usize]))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Positions of series whose value for the matcher's label matches (or not, per `want`).
    fn union_of_values(&self, matcher: &Matcher, want: bool) -> Vec<u32> {
        let Some(values) = self.postings.get(matcher.name()) else {
            return Vec::new();
        };
        if matcher.op == MatchOp::Equal && want {
            return values.get(&matcher.value).cloned().unwrap_or_default();
        }
        let mut positions: Vec<u32> = values
            .iter()
            .filter(|(value, _)| matcher.matches(value) == want)
            .flat_map(|(_, positions)| positions.iter().copied())
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
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

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
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

fn subtract(a: &[u32], b: &[u32]) -> Vec<u32> {
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
            index.get_or_create(
                &labels(&[
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("code", code),
                    ("method", method),
                ]),
                0,
            );
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
        let (a, new_a) = index.get_or_create(&labels(&[("b", "2"), ("a", "1")]), 0);
        let (b, new_b) = index.get_or_create(&labels(&[("a", "1"), ("b", "2")]), 0);
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
    fn ids_of_other_nodes_are_remapped_and_one_label_set_keeps_one_entry() {
        let mut index = SeriesIndex::default();
        let a = series_id_base(1);
        let b = series_id_base(2);
        let up_api = labels(&[("__name__", "up"), ("job", "api")]);
        let up_db = labels(&[("__name__", "up"), ("job", "db")]);
        // Node 2 wrote both series first (its ids are larger than node 1's).
        index.insert_with_id(SeriesId(b), up_api.clone(), true);
        index.insert_with_id(SeriesId(b + 1), up_db.clone(), true);
        // Node 1 (this one) creates `up{job="api"}` again under its own id only when it
        // did not know it: here it knows it, so it reuses node 2's id.
        assert_eq!(index.get_or_create(&up_api, a), (SeriesId(b), false));
        // Node 1 created the same label set independently (learnt from a segment).
        index.insert_with_id(SeriesId(a), up_api.clone(), true);
        assert_eq!(index.len(), 2);
        assert_eq!(index.labels(SeriesId(a)), Some(&up_api));
        assert_eq!(index.aliases(SeriesId(b)), &[a]);
        assert!(
            index.aliases(SeriesId(a)).is_empty(),
            "aliases are listed on the canonical id"
        );
        let matcher = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
        assert_eq!(index.select(&[matcher]), vec![SeriesId(b), SeriesId(b + 1)]);
        // A new series of node 1 continues its local numbering.
        let (new, created) = index.get_or_create(&labels(&[("__name__", "up"), ("job", "web")]), a);
        assert_eq!((new, created), (SeriesId(a + 1), true));
        assert_eq!(
            index.unpersisted(),
            vec![(a + 1, labels(&[("__name__", "up"), ("job", "web")]))]
        );
        index.mark_persisted(1);
        assert!(index.unpersisted().is_empty());
        // Bounds observed through an alias widen the label set's bounds.
        index.observe(SeriesId(a), 100, 200);
        assert!(index.overlaps(SeriesId(b), 150, 160));
        assert!(!index.overlaps(SeriesId(b), 300, 400));
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
                let (id, _) = index.get_or_create(&l, 0);
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
