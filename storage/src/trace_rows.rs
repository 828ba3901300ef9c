//! Log rows by trace id: one section of a log segment's index, beside the tantivy files.
//!
//! A trace id is a random 16-byte value, so as a tantivy term every one is new: a
//! hash-table entry and a term-dictionary path of its own. That made trace ids half the
//! cost of indexing a log segment and 38 bytes per row of its index. Here they are a
//! sorted table instead, built with one sort:
//!
//! ```text
//! count: u32 LE                      distinct trace ids
//! ids:   count × 16 bytes            ascending (as big-endian integers)
//! ends:  count × u32 LE              ends[i]: end of id i's rows in `rows`
//! rows:  ends[count-1] × u32 LE      each id's rows, ascending
//! ```
//!
//! A lookup is a binary search over `ids`, and its answer is exact: every row with the id
//! and no other.

use arrow::array::{Array, FixedSizeBinaryArray};

use crate::{Error, Result};

const ID_BYTES: usize = 16;

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "log index trace table".into(),
        reason: reason.into(),
    }
}

/// Collects the trace ids of a log segment's rows, batch by batch in row order, and
/// encodes the table.
#[derive(Default)]
pub(crate) struct TraceRowsBuilder {
    pairs: Vec<(u128, u32)>,
    rows: u32,
}

impl TraceRowsBuilder {
    /// Makes room for `rows` more rows at once (growing the table by doubling touched
    /// and copied twice its size).
    pub fn reserve(&mut self, rows: usize) {
        self.pairs.reserve_exact(rows);
    }

    /// Adds the next rows' `trace_id` column (a null row has no trace).
    pub fn add(&mut self, trace_ids: &FixedSizeBinaryArray) -> Result<()> {
        if trace_ids.value_length() as usize != ID_BYTES {
            return Err(corrupt(format!(
                "trace ids are {} bytes, not {ID_BYTES}",
                trace_ids.value_length()
            )));
        }
        let rows = u32::try_from(trace_ids.len())
            .ok()
            .and_then(|rows| rows.checked_add(self.rows))
            .ok_or_else(|| corrupt("more than 2^32 rows"))?;
        self.pairs.reserve(trace_ids.len() - trace_ids.null_count());
        for row in 0..trace_ids.len() {
            if trace_ids.is_valid(row) {
                let id: [u8; ID_BYTES] = trace_ids
                    .value(row)
                    .try_into()
                    .map_err(|_| corrupt("short trace id"))?;
                self.pairs
                    .push((u128::from_be_bytes(id), self.rows + row as u32));
            }
        }
        self.rows = rows;
        Ok(())
    }

    /// Encodes the table.
    pub fn finish(self) -> Vec<u8> {
        let mut pairs = self.pairs;
        pairs.sort_unstable();
        encode(&pairs)
    }
}

fn encode(pairs: &[(u128, u32)]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut ends = Vec::new();
    let mut rows = Vec::with_capacity(pairs.len() * 4);
    let mut count = 0u32;
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        ids.extend_from_slice(&group[0].0.to_be_bytes());
        for (_, row) in group {
            rows.extend_from_slice(&row.to_le_bytes());
        }
        ends.extend_from_slice(&((rows.len() / 4) as u32).to_le_bytes());
        count += 1;
    }
    let mut out = Vec::with_capacity(4 + ids.len() + ends.len() + rows.len());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&ids);
    out.extend_from_slice(&ends);
    out.extend_from_slice(&rows);
    out
}

/// An opened trace table.
pub(crate) struct TraceRows {
    bytes: Vec<u8>,
    count: usize,
}

impl TraceRows {
    /// Checks the table's framing and keeps it.
    pub fn open(bytes: Vec<u8>) -> Result<TraceRows> {
        let count = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| corrupt("truncated"))?;
        let table = TraceRows { bytes, count };
        let header = 4 + count * (ID_BYTES + 4);
        if table.bytes.len() < header {
            return Err(corrupt("truncated"));
        }
        let rows = if count == 0 { 0 } else { table.end(count - 1) };
        if table.bytes.len() != header + rows * 4 {
            return Err(corrupt("row count does not match the table's length"));
        }
        if (1..count).any(|i| table.end(i - 1) > table.end(i)) {
            return Err(corrupt("row ranges out of order"));
        }
        Ok(table)
    }

    fn id(&self, i: usize) -> &[u8] {
        let at = 4 + i * ID_BYTES;
        &self.bytes[at..at + ID_BYTES]
    }

    fn end(&self, i: usize) -> usize {
        let at = 4 + self.count * ID_BYTES + i * 4;
        u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    /// The rows holding `id`, ascending.
    pub fn rows(&self, id: &[u8; ID_BYTES]) -> Vec<u32> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = (low + high) / 2;
            match self.id(middle).cmp(id.as_slice()) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => {
                    let start = if middle == 0 { 0 } else { self.end(middle - 1) };
                    let base = 4 + self.count * (ID_BYTES + 4);
                    return self.bytes[base + start * 4..base + self.end(middle) * 4]
                        .chunks_exact(4)
                        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                        .collect();
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn column(ids: &[Option<[u8; 16]>]) -> FixedSizeBinaryArray {
        FixedSizeBinaryArray::try_from_sparse_iter_with_size(ids.iter().copied(), 16).unwrap()
    }

    /// The table of `ids`, added in batches of `batch` rows.
    fn build(ids: &[Option<[u8; 16]>], batch: usize) -> Vec<u8> {
        let mut builder = TraceRowsBuilder::default();
        for chunk in ids.chunks(batch.max(1)) {
            builder.add(&column(chunk)).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn empty_and_all_null() {
        for ids in [vec![], vec![None, None]] {
            let table = TraceRows::open(build(&ids, 1)).unwrap();
            assert!(table.rows(&[0; 16]).is_empty());
        }
    }

    #[test]
    fn truncated_or_inconsistent_tables_are_refused() {
        let bytes = build(&[Some([1; 16]), Some([2; 16]), Some([1; 16])], 3);
        for cut in 0..bytes.len() {
            assert!(
                TraceRows::open(bytes[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
        let mut swapped = bytes.clone();
        // The two ends (2 then 3) swapped: a range would run backwards.
        let ends = 4 + 2 * 16;
        swapped[ends..ends + 8].rotate_left(4);
        assert!(TraceRows::open(swapped).is_err());
    }

    proptest! {
        #[test]
        fn lookups_are_exact(
            ids in prop::collection::vec(prop::option::of(0u8..6), 0..200),
            batch in 1usize..64,
        ) {
            // Few distinct ids (differing in the first and last byte) and some nulls.
            let id = |n: u8| { let mut id = [7u8; 16]; id[0] = n; id[15] = n.wrapping_mul(37); id };
            let rows: Vec<Option<[u8; 16]>> = ids.iter().map(|n| n.map(id)).collect();
            let table = TraceRows::open(build(&rows, batch)).unwrap();
            for n in 0u8..7 {
                let expected: Vec<u32> = ids
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v == Some(n))
                    .map(|(row, _)| row as u32)
                    .collect();
                prop_assert_eq!(table.rows(&id(n)), expected);
            }
        }
    }
}
