//! The in-memory series index of one tenant: label sets by id, ids by label set
//! (xxh3_128 fingerprint of the canonical bytes; a hit needs no label comparison),
//! and postings per label pair. Label strings are interned ([`Symbols`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::SeriesId;

use crate::idmap::IdMap;
use crate::series::{LOCAL_ID_BITS, Labels, METRIC_NAME_LABEL, MatchOp, Matcher, series_id_base};
use crate::symbols::Symbols;
#[cfg(test)]
use crate::symbols::map_bytes;

/// A label set as the index stores it: `(name, value)` symbol pairs, sorted by name.
type InternedLabels = Box<[[u32; 2]]>;

/// A borrowed view of a label set in the index, read without copying any string.
#[derive(Clone, Copy)]
pub(crate) struct LabelsRef<'a> {
    symbols: &'a Symbols,
    pairs: &'a [[u32; 2]],
}

impl<'a> LabelsRef<'a> {
    /// Iterates over `(name, value)` pairs in name order.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.pairs
            .iter()
            .map(move |[name, value]| (self.symbols.resolve(*name), self.symbols.resolve(*value)))
    }

    /// Returns the value of a label, if present.
    pub fn get(self, name: &str) -> Option<&'a str> {
        self.pairs
            .binary_search_by(|[n, _]| self.symbols.resolve(*n).cmp(name))
            .ok()
            .map(|i| self.symbols.resolve(self.pairs[i][1]))
    }

    /// Returns the metric name (`__name__`), or "" when absent.
    pub fn metric_name(self) -> &'a str {
        self.get(METRIC_NAME_LABEL).unwrap_or("")
    }

    /// Copies the label set out of the index.
    pub fn to_labels(self) -> Labels {
        Labels::from_sorted_pairs(
            self.iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        )
    }
}

/// The positions of the series with one label value: most values (instance, pod…)
/// belong to a single series, which then needs no allocation of its own.
enum Postings {
    One(u32),
    Many(Vec<u32>),
}

impl Postings {
    fn push(&mut self, position: u32) {
        match self {
            Postings::One(first) => *self = Postings::Many(vec![*first, position]),
            Postings::Many(positions) => positions.push(position),
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Postings::One(position) => std::slice::from_ref(position),
            Postings::Many(positions) => positions,
        }
    }

    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        match self {
            Postings::One(_) => 0,
            Postings::Many(positions) => positions.capacity() * size_of::<u32>(),
        }
    }
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
///
/// Label names and values are interned ([`Symbols`]): a series costs its symbol pairs
/// (8 bytes per label) plus its postings entries, and each distinct string is stored once.
#[derive(Default)]
pub(crate) struct SeriesIndex {
    symbols: Symbols,
    /// Id (canonical or alias) → position.
    positions: IdMap<u64, u32>,
    /// Per position: the canonical id, the labels, the sample time bounds (ms).
    ids: Vec<u64>,
    labels: Vec<InternedLabels>,
    bounds: Vec<(i64, i64)>,
    /// The 128-bit fingerprint as two words (a `u128` key would be padded to 32 bytes).
    by_fingerprint: HashMap<[u64; 2], u32>,
    /// Name symbol → value symbol → positions.
    postings: IdMap<u32, IdMap<u32, Postings>>,
    /// Ids other than the canonical one, per position.
    aliases: HashMap<u32, Vec<u64>>,
    /// One past the largest local id seen, per ordinal.
    next_local: HashMap<u64, u64>,
    /// Ids created here (or replayed) that no series segment holds yet, oldest first.
    unpersisted: Vec<u64>,
    /// Every id, sorted, per ordinal (what an ingester answers a querier's series sync from).
    by_ordinal: HashMap<u64, Vec<u64>>,
}

fn fingerprint_key(fingerprint: u128) -> [u64; 2] {
    [(fingerprint >> 64) as u64, fingerprint as u64]
}

impl SeriesIndex {
    /// Returns the (canonical) id of an existing label set.
    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.lookup(labels.fingerprint())
    }

    fn lookup(&self, fingerprint: u128) -> Option<SeriesId> {
        self.by_fingerprint
            .get(&fingerprint_key(fingerprint))
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
        self.insert(id, labels, fingerprint);
        self.unpersisted.push(id);
        (SeriesId(id), true)
    }

    /// Registers a series under a known id: from a series segment (`persisted`) or from
    /// WAL replay (then the next flush writes it to a series segment). Known ids are
    /// left alone.
    pub fn insert_with_id(&mut self, id: SeriesId, labels: &Labels, persisted: bool) {
        if self.positions.contains_key(&id.0) {
            return;
        }
        self.insert(id.0, labels, labels.fingerprint());
        if !persisted {
            self.unpersisted.push(id.0);
        }
    }

    fn insert(&mut self, id: u64, labels: &Labels, fingerprint: u128) {
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
        let key = fingerprint_key(fingerprint);
        if let Some(&position) = self.by_fingerprint.get(&key) {
            self.positions.insert(id, position);
            self.aliases.entry(position).or_default().push(id);
            return;
        }
        let position = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        let mut pairs = Vec::with_capacity(labels.len());
        for (name, value) in labels.iter() {
            let pair = [self.symbols.intern(name), self.symbols.intern(value)];
            self.postings
                .entry(pair[0])
                .or_default()
                .entry(pair[1])
                .and_modify(|postings| postings.push(position))
                .or_insert(Postings::One(position));
            pairs.push(pair);
        }
        self.by_fingerprint.insert(key, position);
        self.positions.insert(id, position);
        self.ids.push(id);
        self.labels.push(pairs.into_boxed_slice());
        self.bounds.push((i64::MAX, i64::MIN));
    }

    /// Returns a view of the labels of a series (canonical id or alias), without copying.
    pub fn view(&self, id: SeriesId) -> Option<LabelsRef<'_>> {
        self.positions
            .get(&id.0)
            .map(|position| self.view_at(*position))
    }

    fn view_at(&self, position: u32) -> LabelsRef<'_> {
        LabelsRef {
            symbols: &self.symbols,
            pairs: &self.labels[position as usize],
        }
    }

    /// Returns a copy of the labels of a series (canonical id or alias).
    pub fn labels(&self, id: SeriesId) -> Option<Labels> {
        self.view(id).map(LabelsRef::to_labels)
    }

    /// Every id (canonical and alias) with a view of its labels, in no particular order.
    #[cfg(test)]
    pub fn all_ids(&self) -> impl Iterator<Item = (u64, LabelsRef<'_>)> {
        self.positions
            .iter()
            .map(|(id, position)| (*id, self.view_at(*position)))
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

    /// The ids of the series created or replayed here that no series segment holds
    /// yet, oldest first (read their labels with [`SeriesIndex::view`]).
    pub fn unpersisted_ids(&self) -> Vec<u64> {
        self.unpersisted.clone()
    }

    /// The series created or replayed here that no series segment holds yet, oldest first.
    #[cfg(test)]
    pub fn unpersisted(&self) -> Vec<(u64, Labels)> {
        self.unpersisted
            .iter()
            .filter_map(|id| self.labels(SeriesId(*id)).map(|l| (*id, l)))
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
            .filter_map(|id| self.labels(SeriesId(*id)).map(|l| (*id, l)))
            .collect()
    }

    /// One past the largest local id known, per ordinal.
    pub fn cursors(&self) -> BTreeMap<u64, u64> {
        self.next_local.iter().map(|(o, n)| (*o, *n)).collect()
    }

    /// Records that the first `count` of [`SeriesIndex::unpersisted_ids`] are in a segment now.
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

    /// The values of label `name`, by value symbol.
    fn values_of(&self, name: &str) -> Option<&IdMap<u32, Postings>> {
        self.postings.get(&self.symbols.get(name)?)
    }

    /// Positions of series whose value for the matcher's label matches (or not, per `want`).
    fn union_of_values(&self, matcher: &Matcher, want: bool) -> Vec<u32> {
        let Some(values) = self.values_of(matcher.name()) else {
            return Vec::new();
        };
        if matcher.op() == MatchOp::Equal && want {
            return self
                .symbols
                .get(matcher.value())
                .and_then(|value| values.get(&value))
                .map(|positions| positions.as_slice().to_vec())
                .unwrap_or_default();
        }
        let mut positions: Vec<u32> = values
            .iter()
            .filter(|(value, _)| matcher.matches(self.symbols.resolve(**value)) == want)
            .flat_map(|(_, positions)| positions.as_slice().iter().copied())
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
    }

    /// Returns the label names used by the given series (or by all series), sorted.
    pub fn label_names(&self, ids: Option<&[SeriesId]>) -> Vec<String> {
        let symbols: HashSet<u32> = match ids {
            None => self.postings.keys().copied().collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.positions.get(&id.0))
                .flat_map(|position| self.labels[*position as usize].iter().map(|[n, _]| *n))
                .collect(),
        };
        self.sorted_strings(symbols)
    }

    /// Returns the values of one label over the given series (or over all series), sorted.
    pub fn label_values(&self, name: &str, ids: Option<&[SeriesId]>) -> Vec<String> {
        let Some(name) = self.symbols.get(name) else {
            return Vec::new();
        };
        let symbols: HashSet<u32> = match ids {
            None => self
                .postings
                .get(&name)
                .map(|values| values.keys().copied().collect())
                .unwrap_or_default(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.positions.get(&id.0))
                .filter_map(|position| {
                    let pairs = &self.labels[*position as usize];
                    pairs.iter().find(|[n, _]| *n == name).map(|[_, v]| *v)
                })
                .collect(),
        };
        self.sorted_strings(symbols)
    }

    fn sorted_strings(&self, symbols: HashSet<u32>) -> Vec<String> {
        let mut strings: Vec<String> = symbols
            .into_iter()
            .map(|symbol| self.symbols.resolve(symbol).to_string())
            .collect();
        strings.sort_unstable();
        strings
    }

    /// Bytes the index holds on the heap (an estimate from capacities; allocator
    /// overhead not included). Test-only: it walks every series.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|pairs| pairs.len() * size_of::<[u32; 2]>())
            .sum();
        let postings: usize = self
            .postings
            .values()
            .map(|values| {
                map_bytes(values) + values.values().map(Postings::heap_bytes).sum::<usize>()
            })
            .sum();
        let aliases: usize = self.aliases.values().map(|a| a.capacity() * 8).sum();
        let by_ordinal: usize = self.by_ordinal.values().map(|a| a.capacity() * 8).sum();
        self.symbols.heap_bytes()
            + map_bytes(&self.positions)
            + self.ids.capacity() * size_of::<u64>()
            + self.labels.capacity() * size_of::<InternedLabels>()
            + labels
            + self.bounds.capacity() * size_of::<(i64, i64)>()
            + map_bytes(&self.by_fingerprint)
            + map_bytes(&self.postings)
            + postings
            + map_bytes(&self.aliases)
            + aliases
            + map_bytes(&self.next_local)
            + self.unpersisted.capacity() * size_of::<u64>()
            + map_bytes(&self.by_ordinal)
            + by_ordinal
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

    use crate::series::test_labels as labels;

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
        index.insert_with_id(SeriesId(b), &up_api, true);
        index.insert_with_id(SeriesId(b + 1), &up_db, true);
        // Node 1 (this one) creates `up{job="api"}` again under its own id only when it
        // did not know it: here it knows it, so it reuses node 2's id.
        assert_eq!(index.get_or_create(&up_api, a), (SeriesId(b), false));
        // Node 1 created the same label set independently (learnt from a segment).
        index.insert_with_id(SeriesId(a), &up_api, true);
        assert_eq!(index.len(), 2);
        assert_eq!(index.labels(SeriesId(a)), Some(up_api.clone()));
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

    /// `count` synthetic series of 20 labels: two unique per series (instance, pod), the
    /// rest shared by many series, as in a typical Kubernetes scrape.
    fn synthetic_series(count: usize) -> Vec<Labels> {
        (0..count)
            .map(|i| {
                let mut pairs = vec![
                    ("__name__".to_string(), format!("metric_{}", i % 50)),
                    (
                        "instance".to_string(),
                        format!("10.{}.{}.{}:9100", i / 65536, (i / 256) % 256, i % 256),
                    ),
                    ("pod".to_string(), format!("api-7d9f8c6b5-{i:08x}")),
                ];
                for label in 0..17 {
                    pairs.push((
                        format!("label_name_{label:02}"),
                        format!("value-{}", (i / 7 + label) % 10),
                    ));
                }
                Labels::new(pairs).unwrap()
            })
            .collect()
    }

    /// Heap bytes of the same label sets as the index held them before interning: a
    /// `Vec<(String, String)>` per series (its strings exactly sized), not counting postings.
    fn owned_label_bytes(series: &[Labels]) -> usize {
        series
            .iter()
            .map(|labels| {
                size_of::<Labels>()
                    + labels.len() * size_of::<(String, String)>()
                    + labels.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
            })
            .sum()
    }

    #[test]
    fn interned_labels_round_trip_and_each_string_is_stored_once() {
        let series = synthetic_series(2_000);
        let mut index = SeriesIndex::default();
        let ids: Vec<SeriesId> = series.iter().map(|l| index.get_or_create(l, 0).0).collect();
        for (id, labels) in ids.iter().zip(&series) {
            assert_eq!(index.labels(*id).as_ref(), Some(labels));
            let view = index.view(*id).unwrap();
            assert_eq!(view.metric_name(), labels.metric_name());
            assert_eq!(view.get("pod"), labels.get("pod"));
            assert_eq!(view.get("absent"), None);
            assert!(view.iter().eq(labels.iter()));
        }
        let distinct: std::collections::BTreeSet<&str> = series
            .iter()
            .flat_map(|l| l.iter().flat_map(|(n, v)| [n, v]))
            .collect();
        assert_eq!(index.symbols.len(), distinct.len());
        let unpersisted: Vec<u64> = ids.iter().map(|id| id.0).collect();
        assert_eq!(index.unpersisted_ids(), unpersisted);
        let mut all: Vec<(u64, Labels)> =
            index.all_ids().map(|(id, l)| (id, l.to_labels())).collect();
        all.sort();
        assert_eq!(
            all,
            ids.iter().map(|id| id.0).zip(series).collect::<Vec<_>>()
        );
    }

    #[test]
    fn label_names_and_values_read_the_interned_index() {
        let index = index();
        assert_eq!(
            index.label_names(None),
            ["__name__", "code", "job", "method"]
        );
        assert_eq!(index.label_values("job", None), ["api", "db", "gateway"]);
        assert_eq!(index.label_values("absent", None), Vec::<String>::new());
        let db = [SeriesId(2)];
        assert_eq!(index.label_names(Some(&db)), ["__name__", "code", "job"]);
        assert_eq!(
            index.label_values("code", Some(&[SeriesId(0), SeriesId(2), SeriesId(3)])),
            ["200", "404"]
        );
        assert_eq!(
            index.label_values("method", Some(&db)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn interned_index_is_far_smaller_than_owned_labels() {
        let count = 10_000;
        let series = synthetic_series(count);
        let mut index = SeriesIndex::default();
        for labels in &series {
            index.get_or_create(labels, 0);
        }
        let owned = owned_label_bytes(&series) / count;
        let interned = index.heap_bytes() / count;
        // The owned label sets alone took ~1.4 KB per series; the whole interned index
        // (labels, postings, fingerprints, ids) must take less than half of that.
        assert!(owned > 1_300, "owned labels: {owned} bytes per series");
        assert!(
            interned * 2 < owned,
            "interned index: {interned} vs owned labels: {owned} bytes per series"
        );
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
            prop_assert_eq!(&got, &expected);
            // Label names and values over the selection and over everything.
            let chosen: Vec<&Labels> = all.iter().filter(|(id, _)| got.contains(id)).map(|(_, l)| l).collect();
            let ids: Vec<SeriesId> = got.iter().map(|id| SeriesId(*id)).collect();
            let names: std::collections::BTreeSet<String> = chosen.iter().flat_map(|l| l.iter().map(|(n, _)| n.to_string())).collect();
            prop_assert_eq!(index.label_names(Some(&ids)), names.into_iter().collect::<Vec<_>>());
            let values: std::collections::BTreeSet<String> = chosen.iter().filter_map(|l| l.get(&name)).map(str::to_string).collect();
            prop_assert_eq!(index.label_values(&name, Some(&ids)), values.into_iter().collect::<Vec<_>>());
            let values: std::collections::BTreeSet<String> = all.iter().filter_map(|(_, l)| l.get(&name)).map(str::to_string).collect();
            prop_assert_eq!(index.label_values(&name, None), values.into_iter().collect::<Vec<_>>());
        }
    }
}
