//! The full-text index of one log segment (tantivy), built alongside the Parquet file
//! from the same sorted rows in the same order.
//!
//! The index is a candidate filter: it may return rows that do not match, never miss one
//! that does. Every hit is confirmed against the body read from Parquet with
//! [`TextQuery::matches`].
//!
//! A document is a *block*: up to [`MAX_BLOCK_ROWS`] consecutive rows of one service (rows
//! are sorted by service, then time). It holds each distinct word of the block's bodies
//! once (doc ids only: no frequencies, positions or norms; nothing stored) and the
//! service as a raw term. A table of each block's first row travels in the pack, so a
//! matching block becomes its rows. Log lines repeat their date, level, logger, thread
//! and message template from one line to the next, so a block holds a fraction of its
//! rows' words, and indexing costs that fraction of a document per row. The price is
//! on the read side: a term narrows to blocks, not rows, and is confirmed on the bodies.
//! A service filter stays exact, since no block spans two services.
//!
//! Trace ids are not terms: the pack holds a table of rows by trace id beside the
//! tantivy files ([`crate::trace_rows`]), exact to the row.
//!
//! Words that are mostly noise — hex runs of 16+ digits (trace and span ids, which have
//! their own column), decimal runs of 9+ digits — are dropped; a word longer than 255
//! bytes marks its block with a catch-all term instead, so substring queries stay
//! exact.
//!
//! With `storage.log_index_block_rows = 1` (and in every index written before blocks) a
//! document is a row, with positions: a body token's position is the ordinal of its
//! alphanumeric run in the body, dropped runs included, so there a phrase query on
//! positions means exactly what [`TextQuery::Phrase`] means on the text, and whole-word
//! terms and phrases are answered without reading a body. The oldest row indexes hold
//! trace ids as `trace_id` terms, and no positions; they still open and answer.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use proto::TraceId;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::directory::RamDirectory;
use tantivy::query::{
    BooleanQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{Directory, Index, IndexReader, IndexSettings, ReloadPolicy, TantivyDocument, Term};

use crate::block_words::BlockWords;
use crate::model::log_col;
use crate::trace_rows::{TraceRows, TraceRowsBuilder};
use crate::{Error, Result};

/// The tokenizer of row-level indexes (one document per row, with positions).
const TOKENIZER: &str = "sightline_log";
/// The tokenizer of block documents: the block's distinct words, space-separated.
const WORDS_TOKENIZER: &str = "sightline_words";
/// Rows per block document at most (`storage.log_index_block_rows` may ask for fewer). A
/// block never spans two services.
pub(crate) const MAX_BLOCK_ROWS: usize = 64;
const LONG_TOKEN_MARK: &str = "\u{1}long";
const MAX_TOKEN_LEN: usize = 255;
const PACK_MAGIC: &[u8; 8] = b"SLTIDX01";
/// The pack entry holding the trace table ([`crate::trace_rows`]), not a tantivy file.
const TRACE_ROWS_FILE: &str = "sightline.trace_rows";
/// The pack entry holding the first row of each block document, then the row count (all
/// `u32`, little-endian). Indexes without it have a document per row.
const BLOCKS_FILE: &str = "sightline.blocks";

/// A text predicate over log bodies. [`TextQuery::matches`] is its exact meaning; the
/// index only narrows the rows to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextQuery {
    /// The body contains this exact substring (LogQL `|=`, case-sensitive).
    Contains(String),
    /// The body has this word (case-insensitive, whole token).
    Term(String),
    /// The body has a word starting with this prefix (case-insensitive).
    Prefix(String),
    /// Every sub-query matches.
    And(Vec<TextQuery>),
    /// At least one sub-query matches.
    Or(Vec<TextQuery>),
    /// The sub-query does not match (the index cannot narrow this).
    Not(Box<TextQuery>),
    /// The body has these words consecutively (case-insensitive, whole tokens).
    Phrase(Vec<String>),
    /// The body has a word within this Levenshtein distance of the given word
    /// (case-insensitive, whole token; distance 0 to 2).
    Fuzzy {
        /// The word.
        word: String,
        /// Most edits allowed.
        distance: u8,
    },
}

impl TextQuery {
    /// Returns true when `body` satisfies the query.
    pub fn matches(&self, body: &str) -> bool {
        match self {
            TextQuery::Contains(needle) => body.contains(needle.as_str()),
            TextQuery::Term(word) => {
                let word = lowercase(word);
                if body.is_ascii() && is_ascii_word(&word) {
                    return find_ascii_word(body.as_bytes(), word.as_bytes(), 0).is_some();
                }
                alnum_runs(body).any(|(_, run)| same_word(run, &word))
            }
            TextQuery::Prefix(prefix) => {
                let prefix = lowercase(prefix);
                alnum_runs(body).any(|(_, run)| {
                    if run.is_ascii() && prefix.is_ascii() {
                        run.len() >= prefix.len()
                            && run.as_bytes()[..prefix.len()]
                                .eq_ignore_ascii_case(prefix.as_bytes())
                    } else {
                        run.to_lowercase().starts_with(prefix.as_ref())
                    }
                })
            }
            TextQuery::And(parts) => parts.iter().all(|q| q.matches(body)),
            TextQuery::Or(parts) => parts.iter().any(|q| q.matches(body)),
            TextQuery::Not(inner) => !inner.matches(body),
            TextQuery::Phrase(words) => {
                if words.is_empty() {
                    return true;
                }
                let words: Vec<Cow<'_, str>> = words.iter().map(|w| lowercase(w)).collect();
                if body.is_ascii() && words.iter().all(|w| is_ascii_word(w)) {
                    return find_ascii_phrase(body, &words);
                }
                let runs: Vec<&str> = alnum_runs(body).map(|(_, r)| r).collect();
                runs.windows(words.len()).any(|window| {
                    window
                        .iter()
                        .zip(&words)
                        .all(|(run, word)| same_word(run, word))
                })
            }
            TextQuery::Fuzzy { word, distance } => {
                let word: Vec<char> = word.to_lowercase().chars().collect();
                let distance = usize::from(*distance);
                alnum_runs(body).any(|(_, run)| {
                    let run: Vec<char> = run.to_lowercase().chars().collect();
                    run.len().abs_diff(word.len()) <= distance
                        && levenshtein(&run, &word, distance) <= distance
                })
            }
        }
    }
}

/// `text` lowercased, borrowed when it already is (the usual query word).
fn lowercase(text: &str) -> Cow<'_, str> {
    if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// True when `word` is one whole ASCII alphanumeric run.
fn is_ascii_word(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where the first whole-word occurrence of `lower` (an ASCII word, lowercase) starts in
/// the ASCII text `body` at or after byte `from`, ignoring case.
///
/// On ASCII text, a whole-word occurrence (no alphanumeric byte on either side) is
/// exactly a maximal alphanumeric run equal to the word: what [`TextQuery::Term`] means.
fn find_ascii_word(body: &[u8], lower: &[u8], from: usize) -> Option<usize> {
    let first = lower[0];
    let mut at = from;
    while at < body.len() {
        let start = at + memchr::memchr2(first, first.to_ascii_uppercase(), &body[at..])?;
        let end = start + lower.len();
        if end <= body.len()
            && body[start..end].eq_ignore_ascii_case(lower)
            && (start == 0 || !body[start - 1].is_ascii_alphanumeric())
            && body.get(end).is_none_or(|b| !b.is_ascii_alphanumeric())
        {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// True when the ASCII text `body` has the ASCII words `words` (lowercase, at least one)
/// as consecutive alphanumeric runs, ignoring case.
fn find_ascii_phrase(body: &str, words: &[Cow<'_, str>]) -> bool {
    let mut from = 0;
    while let Some(start) = find_ascii_word(body.as_bytes(), words[0].as_bytes(), from) {
        let mut cursor = start + words[0].len();
        let rest_follows = words[1..].iter().all(|word| {
            next_run(body, &mut cursor)
                .is_some_and(|(from, to, _)| body[from..to].eq_ignore_ascii_case(word))
        });
        if rest_follows {
            return true;
        }
        from = start + 1;
    }
    false
}

/// True when `run` lowercased equals `lower` (already lowercase).
fn same_word(run: &str, lower: &str) -> bool {
    if run.is_ascii() && lower.is_ascii() {
        run.eq_ignore_ascii_case(lower)
    } else {
        run.to_lowercase() == lower
    }
}

/// Levenshtein distance between `a` and `b`, cut short once every path exceeds `limit`
/// (then any value above `limit` is returned).
fn levenshtein(a: &[char], b: &[char], limit: usize) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        let mut row_min = current[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            row_min = row_min.min(current[j + 1]);
        }
        if row_min > limit {
            return limit + 1;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Iterates over the maximal runs of alphanumeric characters, with their byte offsets.
fn alnum_runs(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut cursor = 0;
    std::iter::from_fn(move || {
        next_run(text, &mut cursor).map(|(start, end, _)| (start, &text[start..end]))
    })
}

/// Whether the character starting at byte `at` of `text` is alphanumeric, and its width.
#[inline]
fn char_at(text: &str, at: usize) -> (bool, usize) {
    let byte = text.as_bytes()[at];
    if byte.is_ascii() {
        (byte.is_ascii_alphanumeric(), 1)
    } else {
        text[at..]
            .chars()
            .next()
            .map_or((false, 1), |c| (c.is_alphanumeric(), c.len_utf8()))
    }
}

/// The next maximal run of alphanumeric characters at or after byte `*cursor`: its byte
/// range and whether it is all ASCII. Moves `*cursor` past it.
///
/// ASCII bytes are judged one byte at a time; a multi-byte character is decoded and
/// judged by [`char::is_alphanumeric`] (which agrees with the ASCII test on ASCII).
#[inline]
fn next_run(text: &str, cursor: &mut usize) -> Option<(usize, usize, bool)> {
    let bytes = text.as_bytes();
    let mut at = *cursor;
    loop {
        if at >= bytes.len() {
            *cursor = bytes.len();
            return None;
        }
        let (word, width) = char_at(text, at);
        if word {
            break;
        }
        at += width;
    }
    let start = at;
    let mut ascii = true;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte.is_ascii() {
            if !byte.is_ascii_alphanumeric() {
                break;
            }
            at += 1;
        } else {
            let (word, width) = char_at(text, at);
            if !word {
                break;
            }
            ascii = false;
            at += width;
        }
    }
    *cursor = at;
    Some((start, at, ascii))
}

/// Why a token is not indexed as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenFate {
    Indexed,
    /// An id or long number: could hide any hex/digit substring.
    DroppedIdLike,
    /// Longer than the term limit: its document carries the catch-all mark.
    TooLong,
}

fn token_fate(token: &str) -> TokenFate {
    if token.len() > MAX_TOKEN_LEN {
        TokenFate::TooLong
    } else if (token.len() >= 16 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        || (token.len() >= 9 && token.bytes().all(|b| b.is_ascii_digit()))
    {
        TokenFate::DroppedIdLike
    } else {
        TokenFate::Indexed
    }
}

fn could_hide_in_dropped_token(fragment: &str) -> bool {
    fragment.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Adds the indexed words of a log body to `words`: its alphanumeric runs, lowercased,
/// with id-like runs dropped and too-long runs standing as the catch-all mark.
///
/// An ASCII run is scanned once, judging on the way whether it is all hex or all digits
/// ([`token_fate`]'s rules); a run that meets a non-ASCII byte is taken again by
/// [`next_run`], which judges characters.
fn gather_words(body: &str, words: &mut BlockWords) {
    let bytes = body.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if BYTE_CLASSES[usize::from(byte)] == 0 && byte.is_ascii() {
            at += 1;
            continue;
        }
        let start = at;
        let mut all = HEX | DIGIT;
        while at < bytes.len() {
            let class = BYTE_CLASSES[usize::from(bytes[at])];
            if class == 0 {
                break;
            }
            all &= class;
            at += 1;
        }
        if at < bytes.len() && !bytes[at].is_ascii() {
            // A non-ASCII character inside or right after the run: judge it by characters.
            let mut cursor = start;
            let Some((from, to, ascii)) = next_run(body, &mut cursor) else {
                break;
            };
            at = cursor;
            let run = &body[from..to];
            match token_fate(run) {
                TokenFate::Indexed if ascii => words.add_ascii_word(bytes, from, to),
                TokenFate::Indexed => words.add_lowercased(run),
                TokenFate::TooLong => words.add(LONG_TOKEN_MARK),
                TokenFate::DroppedIdLike => {}
            }
            continue;
        }
        let len = at - start;
        if len > MAX_TOKEN_LEN {
            words.add(LONG_TOKEN_MARK);
        } else if !((len >= 16 && all & HEX != 0) || (len >= 9 && all & DIGIT != 0)) {
            words.add_ascii_word(bytes, start, at);
        }
    }
}

/// [`BYTE_CLASSES`]: an ASCII letter or digit.
const WORD_BYTE: u8 = 1;
/// [`BYTE_CLASSES`]: an ASCII hex digit.
const HEX: u8 = 2;
/// [`BYTE_CLASSES`]: an ASCII decimal digit.
const DIGIT: u8 = 4;

/// What each byte is to [`gather_words`]: 0 for anything but an ASCII letter or digit.
static BYTE_CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 128 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric() {
            classes[byte] = WORD_BYTE
                | if b.is_ascii_hexdigit() { HEX } else { 0 }
                | if b.is_ascii_digit() { DIGIT } else { 0 };
        }
        byte += 1;
    }
    classes
};

/// The tokenizer of block documents: the words [`BlockWords`] joined, split on spaces.
#[derive(Clone, Default)]
struct WordsTokenizer {
    token: Token,
}

struct WordsTokenStream<'a> {
    text: &'a str,
    cursor: usize,
    token: &'a mut Token,
}

impl Tokenizer for WordsTokenizer {
    type TokenStream<'a> = WordsTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordsTokenStream<'a> {
        self.token.reset();
        WordsTokenStream {
            text,
            cursor: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for WordsTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while self.cursor < self.text.len() {
            let start = self.cursor;
            let rest = &self.text[start..];
            let len = rest.find(' ').unwrap_or(rest.len());
            self.cursor = start + len + 1;
            if len == 0 {
                continue;
            }
            self.token.text.clear();
            self.token.text.push_str(&rest[..len]);
            self.token.offset_from = start;
            self.token.offset_to = start + len;
            self.token.position = self.token.position.wrapping_add(1);
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// The tokenizer of row-level indexes: alphanumeric runs, lowercased, noise dropped,
/// each at the ordinal of its run as position.
#[derive(Clone, Default)]
struct LogTokenizer {
    token: Token,
}

struct LogTokenStream<'a> {
    text: &'a str,
    /// Byte offset where the search for the next run starts.
    cursor: usize,
    token: &'a mut Token,
    long_mark_done: bool,
    /// Ordinal of the next alphanumeric run (dropped runs count too).
    next_position: usize,
}

impl Tokenizer for LogTokenizer {
    type TokenStream<'a> = LogTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> LogTokenStream<'a> {
        self.token.reset();
        LogTokenStream {
            text,
            cursor: 0,
            token: &mut self.token,
            long_mark_done: false,
            next_position: 0,
        }
    }
}

impl TokenStream for LogTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while let Some((start, end, ascii)) = next_run(self.text, &mut self.cursor) {
            let run = &self.text[start..end];
            let position = self.next_position;
            self.next_position += 1;
            self.token.text.clear();
            match token_fate(run) {
                TokenFate::Indexed if ascii => {
                    self.token.text.push_str(run);
                    self.token.text.make_ascii_lowercase();
                }
                TokenFate::Indexed => {
                    self.token
                        .text
                        .extend(run.chars().flat_map(char::to_lowercase));
                }
                TokenFate::TooLong if !self.long_mark_done => {
                    self.long_mark_done = true;
                    self.token.text.push_str(LONG_TOKEN_MARK);
                }
                TokenFate::TooLong | TokenFate::DroppedIdLike => continue,
            }
            self.token.offset_from = start;
            self.token.offset_to = end;
            self.token.position = position;
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

struct Fields {
    body: Field,
    service: Field,
    trace_id: Field,
}

/// How a document's body words are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Documents {
    /// One document per block of rows, each distinct word once, doc ids only.
    Blocks,
    /// One document per row, with positions.
    Rows,
}

fn schema(documents: Documents) -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |tokenizer: &str, record: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(record)
                .set_fieldnorms(false),
        )
    };
    let basic = IndexRecordOption::Basic;
    let body = match documents {
        Documents::Blocks => text(WORDS_TOKENIZER, basic),
        Documents::Rows => text(TOKENIZER, IndexRecordOption::WithFreqsAndPositions),
    };
    let body = builder.add_text_field("body", body);
    let service = builder.add_text_field("service", text("raw", basic));
    // `severity` stays in the schema, so that field numbers match those of older indexes
    // (which filled it); nothing writes or queries it.
    builder.add_text_field("severity", text("raw", basic));
    let trace_id = builder.add_text_field("trace_id", text("raw", basic));
    let fields = Fields {
        body,
        service,
        trace_id,
    };
    (builder.build(), fields)
}

fn tokenizers() -> tantivy::tokenizer::TokenizerManager {
    let tokenizers = tantivy::tokenizer::TokenizerManager::default();
    tokenizers.register(TOKENIZER, TextAnalyzer::from(LogTokenizer::default()));
    tokenizers.register(
        WORDS_TOKENIZER,
        TextAnalyzer::from(WordsTokenizer::default()),
    );
    tokenizers
}

fn index_error(context: &str) -> impl FnOnce(tantivy::TantivyError) -> Error + '_ {
    move |source| Error::Index {
        context: context.to_string(),
        source,
    }
}

/// Builds the index of a sorted logs batch and returns its files packed into one blob.
#[cfg(test)]
pub(crate) fn build(batch: &RecordBatch, memory_budget: usize) -> Result<Vec<u8>> {
    let mut builder = IndexBuilder::new(memory_budget, MAX_BLOCK_ROWS)?;
    builder.add(batch)?;
    builder.finish()
}

/// Builds the index of a log segment from its rows, batch by batch in row order: one
/// document per block of up to `block_rows` rows of one service, holding each distinct
/// word of the block's bodies once and the service; or, when `block_rows` is 1, one
/// document per row with positions. The trace table goes beside it.
pub(crate) struct IndexBuilder {
    writer: tantivy::SingleSegmentIndexWriter,
    directory: RamDirectory,
    fields: Fields,
    traces: TraceRowsBuilder,
    /// Rows per block at most; 1 means a document per row, with positions.
    max_block_rows: usize,
    /// The open block's distinct words.
    words: BlockWords,
    /// The open block's service.
    service: String,
    /// Rows in the open block.
    block_rows: usize,
    /// The first row of each block.
    starts: Vec<u32>,
    /// Rows added so far.
    rows: u32,
}

impl IndexBuilder {
    /// A builder whose tantivy writer may use `memory_budget` bytes, with documents of
    /// up to `block_rows` rows (1 to [`MAX_BLOCK_ROWS`]).
    pub fn new(memory_budget: usize, block_rows: usize) -> Result<IndexBuilder> {
        let max_block_rows = block_rows.clamp(1, MAX_BLOCK_ROWS);
        let documents = if max_block_rows == 1 {
            Documents::Rows
        } else {
            Documents::Blocks
        };
        let (schema, fields) = schema(documents);
        let directory = RamDirectory::create();
        let writer = tantivy::IndexBuilder::new()
            .schema(schema)
            .settings(IndexSettings::default())
            .tokenizers(tokenizers())
            .single_segment_index_writer(directory.clone(), memory_budget)
            .map_err(index_error("creating log index writer"))?;
        Ok(IndexBuilder {
            writer,
            directory,
            fields,
            traces: TraceRowsBuilder::default(),
            max_block_rows,
            words: BlockWords::default(),
            service: String::new(),
            block_rows: 0,
            starts: Vec::new(),
            rows: 0,
        })
    }

    /// Makes room for `rows` more rows, when the caller knows how many will come.
    pub fn reserve(&mut self, rows: usize) {
        self.traces.reserve(rows);
        self.starts.reserve(rows.div_ceil(self.max_block_rows));
    }

    /// Indexes the next rows ([`crate::model::LOGS_SCHEMA`]).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let body = string_column(batch, log_col::BODY)?;
        let service = string_column(batch, log_col::SERVICE)?;
        let trace = batch
            .column(log_col::TRACE_ID)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| Error::Corrupt {
                what: "logs batch".into(),
                reason: "trace_id column is not binary".into(),
            })?;
        self.traces.add(trace)?;
        if self.max_block_rows == 1 {
            for row in 0..batch.num_rows() {
                let mut doc = TantivyDocument::default();
                doc.add_text(self.fields.body, body.value(row));
                doc.add_text(self.fields.service, service.value(row));
                self.writer
                    .add_document(doc)
                    .map_err(index_error("indexing a log row"))?;
            }
            return Ok(());
        }
        for row in 0..batch.num_rows() {
            let name = service.value(row);
            if self.block_rows == self.max_block_rows
                || (self.block_rows > 0 && name != self.service)
            {
                self.close_block()?;
            }
            if self.block_rows == 0 {
                self.starts.push(self.rows);
                self.service.clear();
                self.service.push_str(name);
            }
            gather_words(body.value(row), &mut self.words);
            self.block_rows += 1;
            self.rows = self.rows.checked_add(1).ok_or_else(|| {
                Error::InvalidWrite("a log segment holds at most 2^32 - 1 rows".into())
            })?;
        }
        Ok(())
    }

    fn close_block(&mut self) -> Result<()> {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.fields.body, self.words.joined());
        doc.add_text(self.fields.service, &self.service);
        self.writer
            .add_document(doc)
            .map_err(index_error("indexing a block of log rows"))?;
        self.words.clear();
        self.block_rows = 0;
        Ok(())
    }

    /// Finishes the index and returns its files packed into one blob.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.block_rows > 0 {
            self.close_block()?;
        }
        let index = self
            .writer
            .finalize()
            .map_err(index_error("finalizing log index"))?;
        let mut extra = vec![(TRACE_ROWS_FILE, self.traces.finish())];
        if self.max_block_rows > 1 {
            let mut blocks = Vec::with_capacity((self.starts.len() + 1) * 4);
            for start in self.starts.iter().chain([&self.rows]) {
                blocks.extend_from_slice(&start.to_le_bytes());
            }
            extra.push((BLOCKS_FILE, blocks));
        }
        pack(&index, &self.directory, extra)
    }
}

fn string_column(batch: &RecordBatch, column: usize) -> Result<StringArray> {
    let array = cast(batch.column(column), &DataType::Utf8)
        .map_err(|e| Error::arrow("log index column", e))?;
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::Corrupt {
            what: "logs batch".into(),
            reason: format!("column {column} is not text"),
        })
}

/// Packs the index files and `extra` entries (name, bytes) into one blob.
fn pack(index: &Index, directory: &RamDirectory, extra: Vec<(&str, Vec<u8>)>) -> Result<Vec<u8>> {
    let metas = index
        .load_metas()
        .map_err(index_error("reading log index metas"))?;
    let mut files: Vec<PathBuf> = metas.list_segment_files().into_iter().collect();
    files.push(PathBuf::from("meta.json"));
    files.sort();
    let mut out = Vec::new();
    out.extend_from_slice(PACK_MAGIC);
    let mut entries = Vec::new();
    for path in files {
        if !directory.exists(&path).unwrap_or(false) {
            continue;
        }
        let data = directory.atomic_read(&path).map_err(|e| Error::Index {
            context: format!("reading {}", path.display()),
            source: e.into(),
        })?;
        entries.push((path, data));
    }
    entries.extend(
        extra
            .into_iter()
            .map(|(name, data)| (PathBuf::from(name), data)),
    );
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (path, data) in entries {
        let name = path.to_string_lossy();
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// An opened log segment index.
pub(crate) struct LogIndex {
    reader: IndexReader,
    fields: Fields,
    /// The body field records token positions (indexes written since phrases are
    /// answered by the index).
    positions: bool,
    /// Rows by trace id (indexes written before it was kept apart hold trace ids as
    /// terms of the `trace_id` field instead).
    traces: Option<TraceRows>,
    /// For an index of block documents: the first row of each block, then the row count.
    /// `None` for an index with a document per row.
    blocks: Option<Vec<u32>>,
}

impl LogIndex {
    /// Opens a packed index blob.
    pub fn open(blob: &[u8]) -> Result<LogIndex> {
        let corrupt = |reason: &str| Error::Corrupt {
            what: "log index".into(),
            reason: reason.to_string(),
        };
        if blob.len() < 12 || &blob[..8] != PACK_MAGIC {
            return Err(corrupt("bad magic"));
        }
        let directory = RamDirectory::create();
        let count = u32::from_le_bytes(blob[8..12].try_into().expect("4 bytes"));
        let mut pos = 12usize;
        let mut traces = None;
        let mut blocks = None;
        let mut take = |len: usize| -> Result<&[u8]> {
            let end = pos
                .checked_add(len)
                .filter(|end| *end <= blob.len())
                .ok_or_else(|| corrupt("truncated"))?;
            let slice = &blob[pos..end];
            pos = end;
            Ok(slice)
        };
        for _ in 0..count {
            let name_len = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
            let name = std::str::from_utf8(take(name_len)?)
                .map_err(|_| corrupt("bad file name"))?
                .to_string();
            let data_len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
            let data = take(data_len)?;
            if name == TRACE_ROWS_FILE {
                traces = Some(TraceRows::open(data.to_vec())?);
                continue;
            }
            if name == BLOCKS_FILE {
                blocks = Some(block_starts(data)?);
                continue;
            }
            directory
                .atomic_write(Path::new(&name), data)
                .map_err(|e| Error::io(&name, e))?;
        }
        let index = Index::open(directory).map_err(index_error("opening log index"))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error("opening log index reader"))?;
        let (_, fields) = schema(Documents::Blocks);
        let positions = index
            .schema()
            .get_field_entry(fields.body)
            .field_type()
            .get_index_record_option()
            .is_some_and(|record| record.has_positions());
        Ok(LogIndex {
            reader,
            fields,
            positions,
            traces,
            blocks,
        })
    }

    /// True when this index's candidates for `query` are exactly the matching rows (no
    /// confirmation on the body needed).
    pub fn answers_exactly(&self, query: &TextQuery) -> bool {
        self.blocks.is_none() && query.index_is_exact(self.positions)
    }

    /// Returns the rows that may match, sorted; `None` when the index cannot narrow the
    /// search (every row is a candidate).
    pub fn candidates(&self, filter: &IndexFilter<'_>) -> Result<Option<Vec<u32>>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(text) = filter.text
            && let Some(query) = self.text_query(text)?
        {
            clauses.push((Occur::Must, query));
        }
        if let Some(service) = filter.service {
            clauses.push((Occur::Must, self.term(self.fields.service, service)));
        }
        let trace_rows = match (filter.trace_id, &self.traces) {
            (Some(id), Some(table)) => Some(table.rows(&id.0)),
            (Some(id), None) => {
                let hex = id.to_string();
                clauses.push((Occur::Must, self.term(self.fields.trace_id, &hex)));
                None
            }
            (None, _) => None,
        };
        if clauses.is_empty() || trace_rows.as_ref().is_some_and(Vec::is_empty) {
            return Ok(trace_rows);
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let mut docs = searcher
            .search(&query, &RowCollector)
            .map_err(index_error("searching log index"))?;
        // One index segment (doc ids already ascending); sort anyway in case of several.
        if !docs.is_sorted() {
            docs.sort_unstable();
        }
        let mut rows = match &self.blocks {
            Some(starts) => block_rows(starts, &docs)?,
            None => docs,
        };
        if let Some(trace_rows) = trace_rows {
            rows.retain(|row| trace_rows.binary_search(row).is_ok());
        }
        Ok(Some(rows))
    }

    fn term(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    }

    fn regex(&self, pattern: &str) -> Result<Box<dyn Query>> {
        let regex = RegexQuery::from_pattern(pattern, self.fields.body)
            .map_err(index_error("building a log index regex"))?;
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Should, Box::new(regex) as Box<dyn Query>),
            (Occur::Should, self.term(self.fields.body, LONG_TOKEN_MARK)),
        ])))
    }

    /// Translates a text predicate into an index query; `None` means "no narrowing".
    fn text_query(&self, query: &TextQuery) -> Result<Option<Box<dyn Query>>> {
        Ok(match query {
            TextQuery::Contains(needle) => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for (offset, run) in alnum_runs(needle) {
                    let open_left = offset == 0;
                    let open_right = offset + run.len() == needle.len();
                    let lower = run.to_lowercase();
                    let clause = match (open_left, open_right) {
                        (false, false) => match token_fate(run) {
                            TokenFate::Indexed => Some(self.term(self.fields.body, &lower)),
                            TokenFate::DroppedIdLike | TokenFate::TooLong => None,
                        },
                        _ if could_hide_in_dropped_token(run) || run.len() > MAX_TOKEN_LEN => None,
                        (true, true) => Some(self.regex(&format!(".*{}.*", regex_escape(&lower)))?),
                        (true, false) => Some(self.regex(&format!(".*{}", regex_escape(&lower)))?),
                        (false, true) => Some(self.regex(&format!("{}.*", regex_escape(&lower)))?),
                    };
                    if let Some(clause) = clause {
                        clauses.push((Occur::Must, clause));
                    }
                }
                (!clauses.is_empty())
                    .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
            }
            TextQuery::Term(word) => match token_fate(word) {
                TokenFate::Indexed => Some(self.term(self.fields.body, &word.to_lowercase())),
                _ => None,
            },
            TextQuery::Prefix(prefix) => {
                if could_hide_in_dropped_token(prefix) || prefix.len() > MAX_TOKEN_LEN {
                    None
                } else {
                    Some(self.regex(&format!("{}.*", regex_escape(&prefix.to_lowercase())))?)
                }
            }
            TextQuery::And(parts) => {
                let mut clauses = Vec::new();
                for part in parts {
                    if let Some(query) = self.text_query(part)? {
                        clauses.push((Occur::Must, query));
                    }
                }
                (!clauses.is_empty())
                    .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
            }
            TextQuery::Or(parts) => {
                let mut clauses = Vec::new();
                for part in parts {
                    match self.text_query(part)? {
                        Some(query) => clauses.push((Occur::Should, query)),
                        // One branch that cannot be narrowed makes the whole union unnarrowable.
                        None => return Ok(None),
                    }
                }
                (!clauses.is_empty())
                    .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
            }
            TextQuery::Not(_) => None,
            TextQuery::Phrase(words) if self.positions => {
                // Positions are run ordinals: the indexed words at their offsets in the
                // phrase (a dropped id-like word leaves its slot free).
                let mut terms: Vec<(usize, Term)> = words
                    .iter()
                    .enumerate()
                    .filter(|(_, word)| token_fate(word) == TokenFate::Indexed)
                    .map(|(offset, word)| {
                        (
                            offset,
                            Term::from_field_text(self.fields.body, &word.to_lowercase()),
                        )
                    })
                    .collect();
                match terms.len() {
                    0 => None,
                    1 => Some(
                        Box::new(TermQuery::new(terms.remove(0).1, IndexRecordOption::Basic))
                            as Box<dyn Query>,
                    ),
                    _ => Some(Box::new(PhraseQuery::new_with_offset(terms)) as Box<dyn Query>),
                }
            }
            TextQuery::Phrase(words) => {
                // No positions are indexed: every word must be there; order is confirmed.
                let clauses: Vec<(Occur, Box<dyn Query>)> = words
                    .iter()
                    .filter(|word| token_fate(word) == TokenFate::Indexed)
                    .map(|word| {
                        (
                            Occur::Must,
                            self.term(self.fields.body, &word.to_lowercase()),
                        )
                    })
                    .collect();
                (!clauses.is_empty())
                    .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
            }
            TextQuery::Fuzzy { word, distance } => {
                let lower = word.to_lowercase();
                let non_hex = lower.chars().filter(|c| !c.is_ascii_hexdigit()).count();
                // A word within reach of a dropped (all-hex) or too-long token cannot be
                // narrowed: such tokens are not in the index as themselves.
                if *distance > 2
                    || non_hex <= usize::from(*distance)
                    || lower.len() + usize::from(*distance) > MAX_TOKEN_LEN
                {
                    None
                } else {
                    Some(Box::new(FuzzyTermQuery::new(
                        Term::from_field_text(self.fields.body, &lower),
                        *distance,
                        false,
                    )) as Box<dyn Query>)
                }
            }
        })
    }
}

/// Reads the block table of an index ([`BLOCKS_FILE`]): ascending first rows, then the
/// row count.
fn block_starts(data: &[u8]) -> Result<Vec<u32>> {
    let corrupt = |reason: &str| Error::Corrupt {
        what: "log index block table".into(),
        reason: reason.to_string(),
    };
    if data.len() < 4 || !data.len().is_multiple_of(4) {
        return Err(corrupt("length is not a positive multiple of 4"));
    }
    let starts: Vec<u32> = data
        .chunks_exact(4)
        .map(|word| u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
        .collect();
    if starts.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(corrupt("block starts do not ascend"));
    }
    Ok(starts)
}

/// The rows of the given block documents (ascending), in order.
fn block_rows(starts: &[u32], blocks: &[u32]) -> Result<Vec<u32>> {
    let mut rows = Vec::new();
    for block in blocks {
        let block = *block as usize;
        match (starts.get(block), starts.get(block + 1)) {
            (Some(from), Some(to)) => rows.extend(*from..*to),
            _ => {
                return Err(Error::Corrupt {
                    what: "log index".into(),
                    reason: format!("document {block} is past the block table"),
                });
            }
        }
    }
    Ok(rows)
}

/// Collects matching doc ids (= Parquet row numbers, or block numbers) in a plain vector,
/// in doc order.
struct RowCollector;

struct SegmentRows(Vec<u32>);

impl Collector for RowCollector {
    type Fruit = Vec<u32>;
    type Child = SegmentRows;

    fn for_segment(
        &self,
        _segment_local_id: tantivy::SegmentOrdinal,
        _segment: &tantivy::SegmentReader,
    ) -> tantivy::Result<SegmentRows> {
        Ok(SegmentRows(Vec::new()))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u32>>) -> tantivy::Result<Vec<u32>> {
        Ok(fruits.concat())
    }
}

impl SegmentCollector for SegmentRows {
    type Fruit = Vec<u32>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        self.0.push(doc);
    }

    fn collect_block(&mut self, docs: &[tantivy::DocId]) {
        self.0.extend_from_slice(docs);
    }

    fn harvest(self) -> Vec<u32> {
        self.0
    }
}

impl TextQuery {
    /// True when the index answers this query exactly (its candidates are the matching
    /// rows, no confirmation on the body needed): whole ASCII words that the tokenizer
    /// indexes as themselves, phrases of such words when the index has `positions`,
    /// combined with AND / OR.
    pub(crate) fn index_is_exact(&self, positions: bool) -> bool {
        match self {
            TextQuery::Term(word) => exact_word(word),
            TextQuery::Phrase(words) => {
                positions && !words.is_empty() && words.iter().all(|w| exact_word(w))
            }
            TextQuery::And(parts) | TextQuery::Or(parts) => {
                !parts.is_empty() && parts.iter().all(|q| q.index_is_exact(positions))
            }
            _ => false,
        }
    }
}

/// True when the index holds `word` exactly as [`TextQuery::Term`] means it.
fn exact_word(word: &str) -> bool {
    // A non-ASCII run can lowercase to an ASCII word (the Kelvin sign to `k`) with up to 3
    // bytes per character: keep such runs under the term length limit.
    word.is_ascii() && word.len() * 3 <= MAX_TOKEN_LEN && token_fate(word) == TokenFate::Indexed
}

/// What a log index lookup can narrow on.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IndexFilter<'a> {
    pub text: Option<&'a TextQuery>,
    pub service: Option<&'a str>,
    pub trace_id: Option<&'a TraceId>,
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogRecord, logs_batch};
    use proptest::prelude::*;

    fn batch(bodies: &[&str]) -> RecordBatch {
        let records: Vec<LogRecord> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| LogRecord {
                timestamp_ns: i as i64,
                service: if i % 2 == 0 { "funding" } else { "asset" }.to_string(),
                severity_text: Some("ERROR".into()),
                body: body.to_string(),
                ..LogRecord::default()
            })
            .collect();
        logs_batch(&records).unwrap()
    }

    /// Writes an index with a document per row and positions.
    fn build_rows(batch: &RecordBatch) -> Vec<u8> {
        let mut builder = IndexBuilder::new(16 << 20, 1).unwrap();
        builder.add(batch).unwrap();
        builder.finish().unwrap()
    }

    fn tokens(text: &str) -> Vec<String> {
        let mut tokenizer = LogTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn tokenizer_drops_ids_and_lowercases() {
        assert_eq!(
            tokens("GET /api/v1 took 12ms trace=4bf92f3577b34da6a3ce929d0e0e4736 order 1234567890"),
            vec!["get", "api", "v1", "took", "12ms", "trace", "order"]
        );
        assert_eq!(tokens(&"x".repeat(300)), vec![LONG_TOKEN_MARK]);
        let mut words = BlockWords::default();
        gather_words(
            "GET /api/v1 took 12ms trace=4bf92f3577b34da6a3ce929d0e0e4736 order 1234567890",
            &mut words,
        );
        gather_words("get ORDER 支付超时", &mut words);
        gather_words(
            &format!("{} {}", "x".repeat(300), "y".repeat(256)),
            &mut words,
        );
        assert_eq!(
            words.joined(),
            format!("get api v1 took 12ms trace order 支付超时 {LONG_TOKEN_MARK} ")
        );
    }

    #[test]
    fn index_narrows_and_never_misses() {
        let bodies = [
            "connection timeout to mysql",
            "request ok",
            "ReadTimeoutException: timed out",
            "user 4bf92f3577b34da6 logged in",
            "支付超时 payment failed",
        ];
        let blob = build(&batch(&bodies), 16 << 20).unwrap();
        let index = LogIndex::open(&blob).unwrap();
        let check = |query: TextQuery| {
            let filter = IndexFilter {
                text: Some(&query),
                ..IndexFilter::default()
            };
            let candidates = index.candidates(&filter).unwrap();
            let expected: Vec<u32> = (0..bodies.len() as u32)
                .filter(|row| query.matches(bodies[*row as usize]))
                .collect();
            if let Some(rows) = &candidates {
                for row in &expected {
                    assert!(rows.contains(row), "{query:?} missed row {row}");
                }
            }
            candidates
        };
        assert_eq!(
            check(TextQuery::Contains("timeout to".into())),
            Some(vec![0])
        );
        assert_eq!(
            check(TextQuery::Contains("imeout".into())),
            Some(vec![0, 2])
        );
        assert_eq!(check(TextQuery::Term("request".into())), Some(vec![1]));
        assert_eq!(check(TextQuery::Contains("f92f35".into())), None);
        assert_eq!(check(TextQuery::Contains("超时".into())), Some(vec![4]));
        check(TextQuery::Or(vec![
            TextQuery::Term("ok".into()),
            TextQuery::Prefix("pay".into()),
        ]));
        let service = IndexFilter {
            service: Some("asset"),
            ..IndexFilter::default()
        };
        assert_eq!(index.candidates(&service).unwrap(), Some(vec![1, 3]));
    }

    fn traced_batch(traces: &[Option<u8>]) -> RecordBatch {
        let records: Vec<LogRecord> = traces
            .iter()
            .enumerate()
            .map(|(i, trace)| LogRecord {
                timestamp_ns: i as i64,
                service: "funding".to_string(),
                body: format!("{} request {i}", if i % 2 == 0 { "slow" } else { "fast" }),
                trace_id: trace.map(|n| TraceId([n; 16])),
                ..LogRecord::default()
            })
            .collect();
        logs_batch(&records).unwrap()
    }

    fn trace_candidates(index: &LogIndex, trace: u8, text: Option<&TextQuery>) -> Option<Vec<u32>> {
        let id = TraceId([trace; 16]);
        let filter = IndexFilter {
            text,
            trace_id: Some(&id),
            ..IndexFilter::default()
        };
        index.candidates(&filter).unwrap()
    }

    #[test]
    fn trace_ids_narrow_exactly() {
        let traces = [Some(3), None, Some(9), Some(3), Some(3), Some(9)];
        let index = LogIndex::open(&build(&traced_batch(&traces), 16 << 20).unwrap()).unwrap();
        assert!(index.traces.is_some());
        assert_eq!(trace_candidates(&index, 3, None), Some(vec![0, 3, 4]));
        assert_eq!(trace_candidates(&index, 9, None), Some(vec![2, 5]));
        assert_eq!(trace_candidates(&index, 1, None), Some(vec![]));
        // The text narrows to the one block (all six rows are one service's), the trace
        // table to the rows.
        let slow = TextQuery::Term("slow".into());
        assert_eq!(
            trace_candidates(&index, 3, Some(&slow)),
            Some(vec![0, 3, 4])
        );
        assert_eq!(trace_candidates(&index, 1, Some(&slow)), Some(vec![]));
        let absent = TextQuery::Term("absent".into());
        assert_eq!(trace_candidates(&index, 3, Some(&absent)), Some(vec![]));
        // A row-level index answers the same lookups to the row.
        let rows = LogIndex::open(&build_rows(&traced_batch(&traces))).unwrap();
        assert_eq!(trace_candidates(&rows, 3, None), Some(vec![0, 3, 4]));
        assert_eq!(trace_candidates(&rows, 3, Some(&slow)), Some(vec![0, 4]));
    }

    /// Rows added in several batches are numbered on from one batch to the next, in the
    /// text postings and in the trace table alike.
    #[test]
    fn rows_number_on_across_batches() {
        let traces = [Some(3), None, Some(9), Some(3), Some(3), Some(9), None];
        let whole = traced_batch(&traces);
        let mut builder = IndexBuilder::new(16 << 20, MAX_BLOCK_ROWS).unwrap();
        for (offset, length) in [(0, 2), (2, 0), (2, 4), (6, 1)] {
            builder.add(&whole.slice(offset, length)).unwrap();
        }
        let index = LogIndex::open(&builder.finish().unwrap()).unwrap();
        assert_eq!(trace_candidates(&index, 3, None), Some(vec![0, 3, 4]));
        assert_eq!(index.blocks, Some(vec![0, 7]));
        let slow = TextQuery::Term("slow".into());
        let filter = IndexFilter {
            text: Some(&slow),
            ..IndexFilter::default()
        };
        assert_eq!(
            index.candidates(&filter).unwrap(),
            Some((0..7).collect::<Vec<u32>>())
        );
    }

    /// A block holds at most [`MAX_BLOCK_ROWS`] rows of one service; a word narrows to its
    /// blocks, a service to its rows exactly.
    #[test]
    fn blocks_hold_one_service_and_at_most_their_rows() {
        let records: Vec<LogRecord> = (0..200)
            .map(|i| LogRecord {
                timestamp_ns: i,
                service: if i < 150 { "funding" } else { "asset" }.to_string(),
                body: if i == 100 || i == 170 {
                    "Kaboom: disk FULL".to_string()
                } else {
                    format!("request {i} served in {}ms", i % 7)
                },
                ..LogRecord::default()
            })
            .collect();
        let whole = logs_batch(&records).unwrap();
        let mut builder = IndexBuilder::new(16 << 20, MAX_BLOCK_ROWS).unwrap();
        // Batch edges fall inside blocks: blocks run on from one batch to the next.
        for (offset, length) in [(0, 30), (30, 100), (130, 70)] {
            builder.add(&whole.slice(offset, length)).unwrap();
        }
        let index = LogIndex::open(&builder.finish().unwrap()).unwrap();
        assert_eq!(index.blocks, Some(vec![0, 64, 128, 150, 200]));
        let rows = |text: Option<&TextQuery>, service: Option<&str>| {
            index
                .candidates(&IndexFilter {
                    text,
                    service,
                    ..IndexFilter::default()
                })
                .unwrap()
        };
        let kaboom = TextQuery::Term("kaboom".into());
        let expected: Vec<u32> = (64..128).chain(150..200).collect();
        assert_eq!(rows(Some(&kaboom), None), Some(expected));
        assert!(!index.answers_exactly(&kaboom));
        assert_eq!(
            rows(Some(&kaboom), Some("asset")),
            Some((150..200).collect())
        );
        assert_eq!(rows(None, Some("asset")), Some((150..200).collect()));
        assert_eq!(rows(None, Some("billing")), Some(vec![]));
        let full = TextQuery::Contains("disk FULL".into());
        assert_eq!(
            rows(Some(&full), Some("funding")),
            Some((64..128).collect())
        );
        assert_eq!(
            rows(Some(&TextQuery::Term("nowhere".into())), None),
            Some(vec![])
        );
    }

    #[test]
    fn a_damaged_block_table_is_refused() {
        assert!(block_starts(&[]).is_err());
        assert!(block_starts(&[1, 0, 0]).is_err());
        let words =
            |values: &[u32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
        assert!(block_starts(&words(&[0, 64, 64])).is_err());
        assert!(block_starts(&words(&[0, 64, 30])).is_err());
        assert_eq!(block_starts(&words(&[0, 64, 70])).unwrap(), vec![0, 64, 70]);
        assert!(block_rows(&[0, 64, 70], &[2]).is_err());
        assert_eq!(
            block_rows(&[0, 2, 5], &[0, 1]).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
    }

    /// Indexes written before the trace table kept trace ids as `trace_id` terms; they
    /// still answer trace lookups.
    #[test]
    fn trace_terms_of_older_indexes_still_answer() {
        let traces = [Some(3), None, Some(9), Some(3)];
        let batch = traced_batch(&traces);
        let (schema, fields) = schema(Documents::Rows);
        let directory = RamDirectory::create();
        let tokenizers = tantivy::tokenizer::TokenizerManager::default();
        tokenizers.register(TOKENIZER, TextAnalyzer::from(LogTokenizer::default()));
        let mut writer = tantivy::IndexBuilder::new()
            .schema(schema)
            .tokenizers(tokenizers)
            .single_segment_index_writer(directory.clone(), 16 << 20)
            .unwrap();
        let body = string_column(&batch, log_col::BODY).unwrap();
        for (row, trace) in traces.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_text(fields.body, body.value(row));
            if let Some(n) = trace {
                doc.add_text(fields.trace_id, TraceId([*n; 16]).to_string());
            }
            writer.add_document(doc).unwrap();
        }
        let index = writer.finalize().unwrap();
        let index = LogIndex::open(&pack(&index, &directory, vec![]).unwrap()).unwrap();
        assert!(index.traces.is_none());
        assert_eq!(trace_candidates(&index, 3, None), Some(vec![0, 3]));
        let slow = TextQuery::Term("slow".into());
        assert_eq!(trace_candidates(&index, 3, Some(&slow)), Some(vec![0]));
        assert_eq!(trace_candidates(&index, 1, None), Some(vec![]));
    }

    #[test]
    fn phrase_fuzzy_and_not() {
        let bodies = [
            "connection timeout to mysql",
            "timeout connection refused",
            "payment declined",
            "paymnet declined",
        ];
        let blob = build(&batch(&bodies), 16 << 20).unwrap();
        let index = LogIndex::open(&blob).unwrap();
        let run = |query: TextQuery| {
            let filter = IndexFilter {
                text: Some(&query),
                ..IndexFilter::default()
            };
            let candidates = index.candidates(&filter).unwrap();
            let confirmed: Vec<u32> = (0..bodies.len() as u32)
                .filter(|row| query.matches(bodies[*row as usize]))
                .filter(|row| candidates.as_ref().is_none_or(|c| c.contains(row)))
                .collect();
            confirmed
        };
        let phrase = TextQuery::Phrase(vec!["Connection".into(), "timeout".into()]);
        assert_eq!(run(phrase), vec![0]);
        let fuzzy = TextQuery::Fuzzy {
            word: "payment".into(),
            distance: 2,
        };
        assert_eq!(run(fuzzy), vec![2, 3]);
        let exact = TextQuery::Fuzzy {
            word: "payment".into(),
            distance: 0,
        };
        assert_eq!(run(exact), vec![2]);
        let not = TextQuery::And(vec![
            TextQuery::Term("declined".into()),
            TextQuery::Not(Box::new(TextQuery::Term("paymnet".into()))),
        ]);
        assert_eq!(run(not), vec![2]);
        assert_eq!(levenshtein(&['a', 'b'], &['b', 'a'], 2), 2);
    }

    #[test]
    fn positions_are_run_ordinals() {
        let mut tokenizer = LogTokenizer::default();
        let mut stream =
            tokenizer.token_stream("GET 4bf92f3577b34da6a3ce929d0e0e4736 took 1234567890 12ms");
        let mut positions = Vec::new();
        while stream.advance() {
            positions.push((stream.token().text.clone(), stream.token().position));
        }
        assert_eq!(
            positions,
            vec![
                ("get".to_string(), 0),
                ("took".to_string(), 2),
                ("12ms".to_string(), 4)
            ]
        );
    }

    /// The rows of `bodies` the index returns for `query`, and whether it says they are
    /// exact.
    fn index_rows(index: &LogIndex, query: &TextQuery) -> (Option<Vec<u32>>, bool) {
        let filter = IndexFilter {
            text: Some(query),
            ..IndexFilter::default()
        };
        (
            index.candidates(&filter).unwrap(),
            index.answers_exactly(query),
        )
    }

    const WORDS: [&str; 9] = [
        "connection",
        "Refused",
        "refused",
        "to",
        "db",
        "4bf92f3577b34da6",
        "1234567890",
        "k",
        "\u{212A}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// With positions, a phrase of indexed ASCII words is answered exactly by the
        /// index; any other phrase still gets a superset of the matching rows.
        #[test]
        fn phrases_match_brute_force(
            bodies in prop::collection::vec(
                prop::collection::vec((0..WORDS.len(), prop::sample::select(vec![" ", "-", ", ", "="])), 0..10),
                1..24,
            ),
            phrase in prop::collection::vec(0..WORDS.len(), 1..4),
        ) {
            let bodies: Vec<String> = bodies
                .iter()
                .map(|words| words.iter().map(|(w, sep)| format!("{}{sep}", WORDS[*w])).collect())
                .collect();
            let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
            let index = LogIndex::open(&build_rows(&batch(&refs))).unwrap();
            prop_assert!(index.positions);
            let query = TextQuery::Phrase(phrase.iter().map(|w| WORDS[*w].to_string()).collect());
            let expected: Vec<u32> = (0..refs.len() as u32)
                .filter(|row| query.matches(refs[*row as usize]))
                .collect();
            let (rows, exact) = index_rows(&index, &query);
            let ascii_indexed = phrase.iter().all(|w| exact_word(WORDS[*w]));
            prop_assert_eq!(exact, ascii_indexed);
            match rows {
                Some(rows) if exact => prop_assert_eq!(&rows, &expected),
                Some(rows) => {
                    for row in &expected {
                        prop_assert!(rows.contains(row), "{:?} missed row {}", query, row);
                    }
                }
                None => prop_assert!(!exact),
            }
            // A block index never answers exactly, and its candidates hold every match.
            let blocks = LogIndex::open(&build(&batch(&refs), 16 << 20).unwrap()).unwrap();
            let (rows, exact) = index_rows(&blocks, &query);
            prop_assert!(!exact);
            if let Some(rows) = rows {
                for row in &expected {
                    prop_assert!(rows.contains(row), "{:?} missed row {}", query, row);
                }
            }
        }
    }

    /// The definition the tokenizer's byte scanning must agree with: maximal runs of
    /// alphanumeric characters, lowercased by `char::to_lowercase`.
    fn reference_runs(text: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut current: Option<(usize, String)> = None;
        for (offset, c) in text.char_indices() {
            if c.is_alphanumeric() {
                current
                    .get_or_insert_with(|| (offset, String::new()))
                    .1
                    .push(c);
            } else if let Some(run) = current.take() {
                out.push(run);
            }
        }
        out.extend(current);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn tokenizer_agrees_with_char_definition(text in "(\\PC|[a-zA-Z0-9 ,.=\\[\\]-]){0,60}") {
            let runs: Vec<(usize, String)> = alnum_runs(&text).map(|(o, r)| (o, r.to_string())).collect();
            let expected = reference_runs(&text);
            prop_assert_eq!(&runs, &expected);
            let mut tokenizer = LogTokenizer::default();
            let mut stream = tokenizer.token_stream(&text);
            let mut tokens = Vec::new();
            while stream.advance() {
                let token = stream.token();
                tokens.push((token.position, token.offset_from, token.text.clone()));
            }
            let mut long_marked = false;
            let expected: Vec<(usize, usize, String)> = expected
                .iter()
                .enumerate()
                .filter_map(|(position, (offset, run))| match token_fate(run) {
                    TokenFate::Indexed => Some((position, *offset, run.chars().flat_map(char::to_lowercase).collect())),
                    TokenFate::TooLong if !long_marked => {
                        long_marked = true;
                        Some((position, *offset, LONG_TOKEN_MARK.to_string()))
                    }
                    _ => None,
                })
                .collect();
            // A block gathers the same words, each once, in first-seen order.
            let mut distinct: Vec<String> = Vec::new();
            for (_, _, word) in &expected {
                if !distinct.contains(word) {
                    distinct.push(word.clone());
                }
            }
            prop_assert_eq!(tokens, expected);
            let mut words = BlockWords::default();
            gather_words(&text, &mut words);
            let gathered: Vec<&str> = words.joined().split_terminator(' ').collect();
            prop_assert_eq!(gathered, distinct);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Terms and phrases on ASCII text take a byte-search path; it agrees with the
        /// definition on alphanumeric runs, on ASCII and other text alike.
        #[test]
        fn word_search_agrees_with_runs(
            body in "([aAbB1]{1,3}|[ ,.=_-]|ab|Ab|\u{212A}|é){0,16}",
            words in prop::collection::vec("([aAbB1]{1,3}|ab|k|a-b|é)", 1..4),
        ) {
            let runs: Vec<String> = reference_runs(&body)
                .into_iter()
                .map(|(_, run)| run.to_lowercase())
                .collect();
            let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
            let term = TextQuery::Term(words[0].clone());
            prop_assert_eq!(term.matches(&body), runs.contains(&lower[0]), "{:?}", term);
            let phrase = TextQuery::Phrase(words.clone());
            let expected = runs.windows(lower.len()).any(|window| window == lower.as_slice());
            prop_assert_eq!(phrase.matches(&body), expected, "{:?}", phrase);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn substring_candidates_are_a_superset(
            bodies in prop::collection::vec("[a-f0-9 xyzXYZ:=._-]{0,40}", 1..12),
            needle in "[a-f0-9 xyzXYZ:=._-]{1,8}",
        ) {
            let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
            let blob = build(&batch(&refs), 16 << 20).unwrap();
            let index = LogIndex::open(&blob).unwrap();
            let query = TextQuery::Contains(needle);
            let filter = IndexFilter { text: Some(&query), ..IndexFilter::default() };
            if let Some(rows) = index.candidates(&filter).unwrap() {
                for (row, body) in refs.iter().enumerate() {
                    if query.matches(body) {
                        prop_assert!(rows.contains(&(row as u32)), "missed {:?} in {:?}", query, body);
                    }
                }
            }
        }
    }
}
