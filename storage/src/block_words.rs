//! The distinct words of a block of log lines: what one document of the full-text index
//! holds ([`crate::textindex`]).
//!
//! Log lines repeat themselves: within a few dozen lines of one service, the date, the
//! level, the logger, the thread and the message template come back on every line. The
//! index is fed each distinct word once per block, so the words are gathered here first,
//! in a small open-addressing table that stays in cache, and handed over joined by
//! spaces.

/// The smallest table; it doubles when it is half full.
const MIN_SLOTS: usize = 1024;

/// A set of words, kept in insertion order as one space-separated string.
#[derive(Debug)]
pub(crate) struct BlockWords {
    /// The distinct words so far, each followed by a space.
    joined: String,
    /// Open addressing over `words`: 0 is empty, otherwise an index into `words` plus 1.
    slots: Vec<u32>,
    /// The distinct words.
    words: Vec<Word>,
}

/// A distinct word: most words are compared by `prefix` and `len` alone.
#[derive(Debug, Clone, Copy)]
struct Word {
    /// The first 16 bytes, little-endian, zero-padded.
    prefix: [u64; 2],
    hash: u64,
    /// Where the word starts in `joined`.
    start: u32,
    len: u32,
}

/// ASCII letters and digits lowercase by setting bit 5 of each byte (digits have it set
/// already), eight bytes at a time.
const FOLD: u64 = 0x2020_2020_2020_2020;

/// The low `n` bytes of a lane set, for `n` up to 8.
#[inline]
fn lane_mask(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// The first 16 bytes of `word` as two little-endian lanes, zero-padded.
#[inline]
fn prefix_of(word: &[u8]) -> [u64; 2] {
    let n = word.len().min(16);
    let mut bytes = [0u8; 16];
    bytes[..n].copy_from_slice(&word[..n]);
    let lanes = u128::from_le_bytes(bytes);
    [lanes as u64, (lanes >> 64) as u64]
}

/// The first 16 bytes of the ASCII alphanumeric word `text[start..end]`, lowercased, as
/// [`prefix_of`] gives them. Two loads from `text` when 16 bytes follow `start`.
#[inline]
fn folded_prefix_at(text: &[u8], start: usize, end: usize) -> [u64; 2] {
    let n = (end - start).min(16);
    let [low, high] = match text.get(start..).and_then(<[u8]>::first_chunk::<16>) {
        Some(chunk) => {
            let lanes = u128::from_le_bytes(*chunk);
            [
                lanes as u64 & lane_mask(n),
                (lanes >> 64) as u64 & lane_mask(n.saturating_sub(8)),
            ]
        }
        None => prefix_of(&text[start..end]),
    };
    [
        low | (FOLD & lane_mask(n)),
        high | (FOLD & lane_mask(n.saturating_sub(8))),
    ]
}

/// The hash of a word of `len` bytes starting with `prefix`: a multiply-xorshift mix of
/// the prefix, the length and, past 16 bytes, the last eight bytes with bit 5 set (so
/// that a word and its ASCII lowercasing hash alike when it is letters and digits).
#[inline]
fn hash_of(word: &[u8], prefix: [u64; 2]) -> u64 {
    let tail = match word.len() {
        0..=16 => 0,
        len => {
            let mut last = [0u8; 8];
            last.copy_from_slice(&word[len - 8..]);
            u64::from_le_bytes(last) | FOLD
        }
    };
    let mut hash = prefix[0].wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ prefix[1].rotate_left(29)
        ^ tail.wrapping_mul(0xD6E8_FEB8_6659_FD93)
        ^ (word.len() as u64) << 59;
    hash = (hash ^ (hash >> 32)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    hash ^ (hash >> 29)
}

impl Default for BlockWords {
    fn default() -> Self {
        BlockWords {
            joined: String::new(),
            slots: vec![0; MIN_SLOTS],
            words: Vec::new(),
        }
    }
}

impl BlockWords {
    /// Adds the word `text[start..end]`, ASCII letters and digits, lowercased. A word seen
    /// before in the block (most are) is found without being copied.
    #[inline]
    pub fn add_ascii_word(&mut self, text: &[u8], start: usize, end: usize) {
        let word = &text[start..end];
        debug_assert!(word.iter().all(u8::is_ascii_alphanumeric));
        if word.is_empty() {
            return;
        }
        let prefix = folded_prefix_at(text, start, end);
        let hash = hash_of(word, prefix);
        let tail = word.get(16..).unwrap_or_default();
        let Err(slot) = self.find(hash, prefix, word.len(), |kept| {
            kept.iter().zip(tail).all(|(k, w)| *k == w | 0x20)
        }) else {
            return;
        };
        let at = self.joined.len();
        self.joined
            .extend(word.iter().map(|byte| char::from(byte | 0x20)));
        self.insert(slot, at, prefix, hash);
    }

    /// Adds a word, lowercased character by character.
    pub fn add_lowercased(&mut self, word: &str) {
        let start = self.joined.len();
        self.joined
            .extend(word.chars().flat_map(char::to_lowercase));
        self.commit(start);
    }

    /// Adds a word as it is.
    pub fn add(&mut self, word: &str) {
        let start = self.joined.len();
        self.joined.push_str(word);
        self.commit(start);
    }

    /// The distinct words, each followed by a space, in the order they were first added.
    pub fn joined(&self) -> &str {
        &self.joined
    }

    /// Forgets every word, keeping the memory.
    pub fn clear(&mut self) {
        if !self.words.is_empty() {
            self.joined.clear();
            self.words.clear();
            self.slots.fill(0);
        }
    }

    /// Keeps the word written at `joined[start..]` if it is new, else takes it back.
    fn commit(&mut self, start: usize) {
        let word = &self.joined.as_bytes()[start..];
        if word.is_empty() {
            return;
        }
        let prefix = prefix_of(word);
        let hash = hash_of(word, prefix);
        let tail = word.get(16..).unwrap_or_default();
        match self.find(hash, prefix, word.len(), |kept| kept == tail) {
            Ok(()) => self.joined.truncate(start),
            Err(slot) => self.insert(slot, start, prefix, hash),
        }
    }

    /// Finds the word with this hash, prefix and length whose bytes past the first 16
    /// satisfy `tail_matches`: `Ok` when it is kept, else the empty slot it would take.
    #[inline]
    fn find(
        &self,
        hash: u64,
        prefix: [u64; 2],
        len: usize,
        tail_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<(), usize> {
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => return Err(slot),
                taken => {
                    let other = self.words[taken as usize - 1];
                    if other.hash == hash
                        && other.len as usize == len
                        && other.prefix == prefix
                        && (len <= 16 || {
                            let from = other.start as usize + 16;
                            tail_matches(&self.joined.as_bytes()[from..other.start as usize + len])
                        })
                    {
                        return Ok(());
                    }
                    slot = (slot + 1) & mask;
                }
            }
        }
    }

    /// Keeps the word just written at `joined[start..]` in the empty `slot`.
    fn insert(&mut self, slot: usize, start: usize, prefix: [u64; 2], hash: u64) {
        let len = self.joined.len() - start;
        self.words.push(Word {
            prefix,
            hash,
            start: start as u32,
            len: len as u32,
        });
        self.slots[slot] = self.words.len() as u32;
        self.joined.push(' ');
        if self.words.len() * 2 > self.slots.len() {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let slots = self.slots.len() * 2;
        self.slots.clear();
        self.slots.resize(slots, 0);
        let mask = slots - 1;
        for (index, word) in self.words.iter().enumerate() {
            let mut slot = word.hash as usize & mask;
            while self.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = index as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    #[test]
    fn keeps_each_word_once_in_first_seen_order() {
        let mut words = BlockWords::default();
        words.add_ascii_word(b"GET", 0, 3);
        words.add("get");
        words.add_lowercased("Ünïcode");
        words.add_ascii_word(b"xorders", 1, 7);
        words.add_lowercased("ÜNÏCODE");
        assert_eq!(words.joined(), "get ünïcode orders ");
        words.clear();
        assert_eq!(words.joined(), "");
        words.add("orders");
        assert_eq!(words.joined(), "orders ");
    }

    #[test]
    fn grows_past_its_first_table() {
        let mut words = BlockWords::default();
        for round in 0..2 {
            for i in 0..10 * MIN_SLOTS {
                words.add(&format!("w{i}"));
            }
            let listed: Vec<&str> = words.joined().split_terminator(' ').collect();
            let distinct: BTreeSet<&str> = listed.iter().copied().collect();
            assert_eq!(listed.len(), 10 * MIN_SLOTS, "round {round}");
            assert_eq!(distinct.len(), 10 * MIN_SLOTS, "round {round}");
        }
    }

    #[test]
    fn words_sharing_their_first_16_bytes_stay_apart() {
        let mut words = BlockWords::default();
        let long = "abcdefghijklmnop";
        for word in [
            long,
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "abcdefghijklmnopq",
            long,
        ] {
            words.add(word);
        }
        assert_eq!(
            words.joined(),
            "abcdefghijklmnop abcdefghijklmnopq abcdefghijklmnopr "
        );
    }

    proptest! {
        /// Words taken from inside a text (with or without 16 bytes after them) and
        /// lowercased on the way agree with words lowercased first.
        #[test]
        fn ascii_words_agree_with_words_lowercased_first(
            input in prop::collection::vec("[a-cA-C0-2]{1,3}|[aAbB]{15,19}|[aA1]{24,40}", 0..120),
        ) {
            let text = input.join(" ");
            let mut folded = BlockWords::default();
            let mut lowered = BlockWords::default();
            let mut at = 0;
            for word in &input {
                folded.add_ascii_word(text.as_bytes(), at, at + word.len());
                lowered.add_lowercased(word);
                at += word.len() + 1;
            }
            prop_assert_eq!(folded.joined(), lowered.joined());
        }

        #[test]
        fn agrees_with_a_set(input in prop::collection::vec("[a-c]{1,3}|[ab]{15,18}", 0..200)) {
            let mut words = BlockWords::default();
            let mut expected = Vec::new();
            let mut seen = BTreeSet::new();
            for word in &input {
                words.add(word);
                if seen.insert(word.clone()) {
                    expected.push(word.clone());
                }
            }
            let got: Vec<&str> = words.joined().split_terminator(' ').collect();
            prop_assert_eq!(got, expected);
        }
    }
}
