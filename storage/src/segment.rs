//! Parquet encoding of segments, and the row-group pruning reader.
//!
//! Each table has its own writer settings, chosen for its reads (PERF-NOTES §3, §5, §6):
//! samples are grouped by time window, then metric, then series, in time order (see
//! `sample_codec`), times and decimal values delta-coded inside each run, small pages,
//! and a run index in the footer, so a read decodes about the rows it selects;
//! logs by (service, time) with small body pages; spans by (trace id, start) with a
//! bloom filter on the trace id.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use arrow::array::{Array, BooleanArray, Float64Array, Int8Array, Int64Array, RecordBatch};
use arrow::compute::{SortColumn, filter_record_batch, lexsort_to_indices};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::metadata::{RowGroupMetaData, SortingColumn};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::manifest::{SegmentMeta, Table};
use crate::sample_codec::{
    DELTA_FILE_SCHEMA, DeltaColumns, DeltaState, GROUP_TIMES_KEY, RUNS_KEY, SampleRuns,
    SampleWindows, TS_DELTA_COLUMN,
};
use crate::store::SegmentStore;
use crate::{Error, Result};

/// Sample rows are four narrow columns: their row groups hold this many times the
/// configured rows. Every column chunk a read opens costs a codec (a zstd context pair)
/// and its page headers, and a narrow read opens every row group its series reach.
const SAMPLE_GROUP_FACTOR: usize = 4;

/// Writer settings for one table.
pub(crate) fn writer_properties(
    table: Table,
    zstd_level: i32,
    row_group_rows: usize,
    distinct_traces: u64,
) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(zstd_level).map_err(|e| Error::parquet("zstd level", e))?;
    let column = |name: &str| ColumnPath::from(name);
    let sorting = |columns: &[i32]| {
        Some(
            columns
                .iter()
                .map(|c| SortingColumn {
                    column_idx: *c,
                    descending: false,
                    nulls_first: false,
                })
                .collect(),
        )
    };
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows));
    builder = match table {
        Table::Samples => builder
            .set_max_row_group_row_count(Some(row_group_rows.saturating_mul(SAMPLE_GROUP_FACTOR)))
            .set_dictionary_enabled(false)
            // Reads find rows through the run index and the footer's row-group times, so
            // no column needs page statistics (a column index entry per page per column).
            .set_statistics_enabled(EnabledStatistics::Chunk)
            // Mostly one repeated scrape interval: zstd takes it to almost nothing.
            .set_column_encoding(column(TS_DELTA_COLUMN), Encoding::PLAIN)
            // Small zigzag deltas: their high bytes, split out, are runs of zeros.
            .set_column_encoding(column("mantissa_delta"), Encoding::BYTE_STREAM_SPLIT)
            .set_column_encoding(column("scale"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(column("value"), Encoding::BYTE_STREAM_SPLIT)
            // Small pages: a read of a few series decodes little more than their rows
            // (pages not selected are neither fetched nor decoded).
            .set_data_page_row_count_limit(SAMPLE_PAGE_ROWS)
            .set_write_batch_size(SAMPLE_PAGE_ROWS),
        Table::Exemplars => builder
            .set_column_dictionary_enabled(column("ts_ms"), false)
            .set_column_encoding(column("ts_ms"), Encoding::DELTA_BINARY_PACKED)
            .set_sorting_columns(sorting(&[0, 1])),
        Table::Series => builder.set_sorting_columns(sorting(&[0])),
        Table::Metadata => builder,
        Table::Logs => builder
            .set_data_page_row_count_limit(2048)
            .set_column_dictionary_enabled(column("timestamp"), false)
            .set_column_encoding(column("timestamp"), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(column("observed_timestamp"), false)
            .set_column_encoding(column("observed_timestamp"), Encoding::DELTA_BINARY_PACKED)
            // Lengths then bytes: zstd finds the repeats of a line's text better than in
            // DELTA_BYTE_ARRAY's prefix-stripped suffixes, and it encodes faster (31.1
            // → 30.4 MB, 0.32 → 0.31 s per 937 k lines).
            .set_column_dictionary_enabled(column("body"), false)
            .set_column_encoding(column("body"), Encoding::DELTA_LENGTH_BYTE_ARRAY)
            // The resource repeats on every row of a replica: interning each of its keys
            // and values in a page dictionary was most of the map's encoding time, and
            // zstd takes the plain repeats almost as far (0.15 → 0.11 s, 1.65 → 1.74 MB
            // per 937 k lines).
            .set_column_dictionary_enabled(leaf("resource.entries.keys"), false)
            .set_column_encoding(leaf("resource.entries.keys"), Encoding::PLAIN)
            .set_column_dictionary_enabled(leaf("resource.entries.values"), false)
            .set_column_encoding(leaf("resource.entries.values"), Encoding::PLAIN)
            .set_column_dictionary_enabled(column("trace_id"), false)
            .set_column_dictionary_enabled(column("span_id"), false)
            // Rows are in (service, time) order, so a page's least and greatest body or
            // id span almost everything: no read prunes on them, and keeping them cost
            // a comparison of every value (trace ids go through the index's table).
            .set_column_statistics_enabled(column("body"), EnabledStatistics::None)
            .set_column_statistics_enabled(column("trace_id"), EnabledStatistics::None)
            .set_column_statistics_enabled(column("span_id"), EnabledStatistics::None)
            .set_sorting_columns(sorting(&[2, 0])),
        // Small pages: a trace-id lookup reads the one page (per column) whose trace-id
        // range holds the id, found through the page index.
        Table::Spans => builder
            .set_data_page_row_count_limit(4096)
            .set_column_dictionary_enabled(column("trace_id"), false)
            .set_column_dictionary_enabled(column("span_id"), false)
            .set_column_dictionary_enabled(column("parent_span_id"), false)
            .set_column_dictionary_enabled(column("start"), false)
            .set_column_encoding(column("start"), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(column("duration_ns"), false)
            .set_column_encoding(column("duration_ns"), Encoding::DELTA_BINARY_PACKED)
            .set_column_bloom_filter_enabled(column("trace_id"), true)
            // One bloom filter per row group: sized for the traces a group can hold, not
            // the whole file's (which made every group's filter file-sized).
            .set_column_bloom_filter_max_ndv(
                column("trace_id"),
                distinct_traces.min(row_group_rows as u64).max(64),
            )
            .set_column_bloom_filter_fpp(column("trace_id"), 0.01)
            .set_sorting_columns(sorting(&[0, 7])),
    };
    if matches!(table, Table::Logs | Table::Spans) {
        // No read prunes on a page's least and greatest attribute key or value, and
        // keeping them cost a comparison of every entry (most of a logs flush's Parquet
        // time went to comparing resource and attribute strings).
        for path in MAP_LEAF_COLUMNS {
            builder = builder.set_column_statistics_enabled(leaf(path), EnabledStatistics::None);
        }
    }
    Ok(builder.build())
}

/// The path of a nested leaf column written with dots (`resource.entries.keys`).
/// `ColumnPath::from` would take the whole string as one name, which matches nothing.
fn leaf(dotted: &str) -> ColumnPath {
    ColumnPath::new(dotted.split('.').map(str::to_string).collect())
}

/// The leaf columns of the logs and spans attribute maps, as Parquet names them.
const MAP_LEAF_COLUMNS: [&str; 4] = [
    "attributes.entries.keys",
    "attributes.entries.values",
    "resource.entries.keys",
    "resource.entries.values",
];

/// Encodes sorted batches as one Parquet file.
pub(crate) fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    properties: WriterProperties,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(properties))
        .map_err(|e| Error::parquet("creating parquet writer", e))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::parquet("writing parquet", e))?;
    }
    writer
        .close()
        .map_err(|e| Error::parquet("closing parquet writer", e))?;
    Ok(out)
}

/// Rows per data page of samples files.
const SAMPLE_PAGE_ROWS: usize = 1024;

/// About this many samples rows are converted to the file layout at a time.
const SAMPLE_ENCODE_ROWS: usize = 64 * 1024;

/// Encodes a samples file window by window, in the delta-coded layout: each time window
/// as its own row groups (cut here, so the stretches end where the groups do), the run
/// index and the row groups' time ranges in the footer.
pub(crate) fn encode_samples(
    mut windows: SampleWindows<'_>,
    properties: WriterProperties,
) -> Result<Vec<u8>> {
    let group_rows = properties
        .max_row_group_row_count()
        .unwrap_or(usize::MAX)
        .max(1);
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, DELTA_FILE_SCHEMA.clone(), Some(properties))
        .map_err(|e| Error::parquet("creating parquet writer", e))?;
    let mut group_times = Vec::new();
    let mut stretches = Vec::new();
    while windows.next_chunk(group_rows, &mut stretches) {
        let rows: usize = stretches.iter().map(|s| s.len()).sum();
        // Encoded a few stretches at a time (a batch never cuts a stretch), so only a
        // small batch is held beside the row group's pages.
        let mut from = 0;
        while from < stretches.len() {
            let mut to = from;
            let mut batch_rows = 0;
            while to < stretches.len() && batch_rows < SAMPLE_ENCODE_ROWS {
                batch_rows += stretches[to].len();
                to += 1;
            }
            let batch = crate::sample_codec::to_delta_file(&stretches[from..to])?;
            writer
                .write(&batch)
                .map_err(|e| Error::parquet("writing parquet", e))?;
            from = to;
        }
        writer
            .flush()
            .map_err(|e| Error::parquet("writing parquet", e))?;
        // Decoding restarts at row-group starts: each chunk must be exactly one group.
        let flushed = writer.flushed_row_groups();
        if flushed.len() != group_times.len() + 1
            || flushed.last().map(|g| g.num_rows()) != Some(rows as i64)
        {
            return Err(Error::Task(
                "parquet writer cut a samples row group where the encoder did not".into(),
            ));
        }
        // Each stretch is in time order.
        let lo = stretches
            .iter()
            .filter_map(|s| s.first())
            .map(|p| p.0)
            .min();
        let hi = stretches.iter().filter_map(|s| s.last()).map(|p| p.0).max();
        group_times.push((lo.unwrap_or(0), hi.unwrap_or(0)));
    }
    let runs = windows.runs.finish()?;
    writer.append_key_value_metadata(KeyValue::new(RUNS_KEY.to_string(), runs));
    writer.append_key_value_metadata(KeyValue::new(
        GROUP_TIMES_KEY.to_string(),
        crate::sample_codec::encode_group_times(&group_times),
    ));
    writer
        .close()
        .map_err(|e| Error::parquet("closing parquet writer", e))?;
    Ok(out)
}

/// The time ranges of a delta-coded samples file's row groups, from its footer; `None`
/// when missing or malformed (every group is then read).
fn group_times(metadata: &ParquetMetaData) -> Option<Vec<(i64, i64)>> {
    let text = metadata
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == GROUP_TIMES_KEY)?
        .value
        .as_deref()?;
    crate::sample_codec::decode_group_times(text, metadata.num_row_groups())
}

/// Sorts the rows of `batches` by the given columns, ascending, into one batch.
pub(crate) fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[usize],
) -> Result<RecordBatch> {
    let order = sort_order(batches, columns)?;
    gather(schema, batches, &order.rows)
}

/// The order that sorts the rows of a set of batches.
pub(crate) struct SortedRows {
    /// `(batch, row)` of each row, in sorted order.
    pub rows: Vec<(usize, usize)>,
    /// How many distinct values the leading sort column holds.
    pub distinct_leading: u64,
}

/// The order of the rows of `batches` sorted by the given columns, ascending (rows with
/// equal keys stay in arrival order when the fast path takes them).
pub(crate) fn sort_order(batches: &[RecordBatch], columns: &[usize]) -> Result<SortedRows> {
    if let Some(keys) = sort_keys(batches, columns)? {
        let distinct_leading = keys.chunk_by(|a, b| a.0 == b.0).count() as u64;
        let rows = keys
            .into_iter()
            .map(|(_, _, batch, row)| (batch as usize, row as usize))
            .collect();
        return Ok(SortedRows {
            rows,
            distinct_leading,
        });
    }
    general_sort_order(batches, columns)
}

/// [`sort_order`] for any key types: concatenates the key columns only, and sorts them.
fn general_sort_order(batches: &[RecordBatch], columns: &[usize]) -> Result<SortedRows> {
    let mut places = Vec::new();
    for (batch_index, batch) in batches.iter().enumerate() {
        places.extend((0..batch.num_rows()).map(|row| (batch_index, row)));
    }
    let mut sort_columns = Vec::with_capacity(columns.len());
    for column in columns {
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(*column).as_ref()).collect();
        let values = if parts.is_empty() {
            arrow::array::new_empty_array(&arrow::datatypes::DataType::Null)
        } else {
            arrow::compute::concat(&parts).map_err(|e| Error::arrow("concatenating keys", e))?
        };
        sort_columns.push(SortColumn {
            values,
            options: None,
        });
    }
    if places.len() <= 1 {
        let distinct_leading = places.len() as u64;
        return Ok(SortedRows {
            rows: places,
            distinct_leading,
        });
    }
    let indices =
        lexsort_to_indices(&sort_columns, None).map_err(|e| Error::arrow("sorting batch", e))?;
    let leading = arrow::compute::take(&sort_columns[0].values, &indices, None)
        .map_err(|e| Error::arrow("sorting batch", e))?;
    let distinct_leading = arrow::compute::kernels::partition::partition(&[leading])
        .map_err(|e| Error::arrow("counting sort keys", e))?
        .len() as u64;
    Ok(SortedRows {
        rows: indices
            .values()
            .iter()
            .map(|i| places[*i as usize])
            .collect(),
        distinct_leading,
    })
}

/// Gathers the rows of `batches` in `order` into one batch.
pub(crate) fn gather(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    order: &[(usize, usize)],
) -> Result<RecordBatch> {
    if order.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    arrow::compute::interleave_record_batch(&refs, order)
        .map_err(|e| Error::arrow("reordering batches", e))
}

/// Encodes the rows of `batches` in `order` as one Parquet file, gathering
/// `chunk_rows` rows at a time and handing each gathered chunk to `each` as well, so a
/// flush never holds a sorted copy of all its rows.
pub(crate) fn encode_in_order(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    order: &[(usize, usize)],
    properties: WriterProperties,
    chunk_rows: usize,
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<Vec<u8>> {
    // Room for the whole file at once: growing it by doubling copied it and touched
    // twice its size in fresh pages. Pages never written cost nothing.
    let input: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut out = Vec::with_capacity(input / OUTPUT_RESERVE_DIVISOR);
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(properties))
        .map_err(|e| Error::parquet("creating parquet writer", e))?;
    for chunk in order.chunks(chunk_rows.max(1)) {
        let batch = gather(schema, batches, chunk)?;
        writer
            .write(&batch)
            .map_err(|e| Error::parquet("writing parquet", e))?;
        each(&batch)?;
    }
    writer
        .close()
        .map_err(|e| Error::parquet("closing parquet writer", e))?;
    Ok(out)
}

/// A sorted segment's file is reserved at this fraction of its rows' size in memory
/// (compressed logs and spans come to about a fourteenth).
const OUTPUT_RESERVE_DIVISOR: usize = 8;

/// One row's place in the sort: the leading column as an order-preserving integer, the
/// second as an `i64`, then where the row is (ties keep arrival order).
type SortKey = (u128, i64, u32, u32);

/// Integer sort keys of every row, when the sort columns allow them: a leading text
/// column (ranked among its distinct values), id (fixed-size binary up to 16 bytes, read
/// big-endian) or unsigned integer, then an `i64` or timestamp column, neither with
/// nulls. `None` sends the caller to the general (concatenate, sort, take) path.
///
/// Sorting these and gathering rows straight from the source batches copies each row
/// once, where concatenating first copied it twice; for a logs flush that second copy was
/// hundreds of megabytes of fresh pages.
fn sort_keys(batches: &[RecordBatch], columns: &[usize]) -> Result<Option<Vec<SortKey>>> {
    use arrow::array::{AsArray, FixedSizeBinaryArray, StringArray};
    use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampNanosecondType, UInt64Type};
    let &[lead, second] = columns else {
        return Ok(None);
    };
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let (lead_type, second_type) = (
        first.column(lead).data_type().clone(),
        first.column(second).data_type().clone(),
    );
    let usable = batches.iter().all(|b| {
        b.column(lead).null_count() == 0
            && b.column(second).null_count() == 0
            && *b.column(lead).data_type() == lead_type
            && *b.column(second).data_type() == second_type
            && u32::try_from(b.num_rows()).is_ok()
    }) && u32::try_from(batches.len()).is_ok()
        && matches!(
            second_type,
            DataType::Int64 | DataType::Timestamp(TimeUnit::Nanosecond, _)
        )
        && match lead_type {
            DataType::Utf8 | DataType::UInt64 => true,
            DataType::FixedSizeBinary(width) => (1..=16).contains(&width),
            _ => false,
        };
    if !usable {
        return Ok(None);
    }
    let text_ranks: HashMap<&str, u128> = if lead_type == DataType::Utf8 {
        let mut distinct: Vec<&str> = batches
            .iter()
            .flat_map(|b| b.column(lead).as_string::<i32>().iter().flatten())
            .collect::<std::collections::HashSet<&str>>()
            .into_iter()
            .collect();
        distinct.sort_unstable();
        distinct
            .into_iter()
            .enumerate()
            .map(|(rank, text)| (text, rank as u128))
            .collect()
    } else {
        HashMap::new()
    };
    let text_ranks = &text_ranks;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut keys: Vec<SortKey> = Vec::with_capacity(rows);
    for (batch_index, batch) in batches.iter().enumerate() {
        let seconds: &[i64] = match second_type {
            DataType::Int64 => batch.column(second).as_primitive::<Int64Type>().values(),
            _ => batch
                .column(second)
                .as_primitive::<TimestampNanosecondType>()
                .values(),
        };
        let lead_column = batch.column(lead);
        let leads: Box<dyn Fn(usize) -> u128 + '_> = match &lead_type {
            DataType::Utf8 => {
                let texts: &StringArray = lead_column.as_string::<i32>();
                Box::new(move |row| text_ranks[texts.value(row)])
            }
            DataType::UInt64 => {
                let values = lead_column.as_primitive::<UInt64Type>().values();
                Box::new(move |row| u128::from(values[row]))
            }
            _ => {
                let ids: &FixedSizeBinaryArray = lead_column.as_fixed_size_binary();
                Box::new(move |row| {
                    ids.value(row)
                        .iter()
                        .fold(0u128, |key, byte| (key << 8) | u128::from(*byte))
                })
            }
        };
        for (row, second) in seconds.iter().enumerate().take(batch.num_rows()) {
            keys.push((leads(row), *second, batch_index as u32, row as u32));
        }
    }
    keys.sort_unstable();
    Ok(Some(keys))
}

/// Reads the rows of a segment, keeping only the row groups `keep` accepts and,
/// optionally, only the given sorted row numbers.
pub(crate) async fn read(
    store: &SegmentStore,
    segment: &SegmentMeta,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: Option<&[u32]>,
) -> Result<Vec<RecordBatch>> {
    Ok(read_inner(store, segment, keep, rows, None).await?.0)
}

/// Like [`read`] with a row list, and also returns the numbers of the rows read, in order.
pub(crate) async fn read_rows(
    store: &SegmentStore,
    segment: &SegmentMeta,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: &[u32],
) -> Result<(Vec<RecordBatch>, Vec<u32>)> {
    read_inner(store, segment, keep, Some(rows), None).await
}

/// Reads only the first `columns` columns of the schema (so column positions stay those
/// of the table schema) of the given sorted rows (`None`: every row of the kept row
/// groups), and returns the numbers of the rows read, in order. This is the cheap first
/// pass of a late-materialised read: e.g. the timestamps of the candidate rows alone.
pub(crate) async fn read_leading_columns(
    store: &SegmentStore,
    segment: &SegmentMeta,
    columns: usize,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: Option<&[u32]>,
) -> Result<(Vec<RecordBatch>, Vec<u32>)> {
    let columns: Vec<usize> = (0..columns).collect();
    read_inner(store, segment, keep, rows, Some(&columns)).await
}

/// Like [`read_leading_columns`] with any set of columns (positions in the table
/// schema): the returned batches hold those columns only, in schema order, under their
/// schema names.
pub(crate) async fn read_columns(
    store: &SegmentStore,
    segment: &SegmentMeta,
    columns: &[usize],
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: Option<&[u32]>,
) -> Result<(Vec<RecordBatch>, Vec<u32>)> {
    read_inner(store, segment, keep, rows, Some(columns)).await
}

/// The parsed footer of a segment (with its page index), from the cache or the file.
pub(crate) async fn metadata(
    store: &SegmentStore,
    segment: &SegmentMeta,
) -> Result<ArrowReaderMetadata> {
    if let Some(metadata) = store.cached_metadata(segment.id) {
        return Ok(metadata);
    }
    let mut reader = SegmentReader::new(store, segment);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let metadata = ArrowReaderMetadata::load_async(&mut reader, options)
        .await
        .map_err(|e| Error::parquet(format!("reading segment {}", segment.path), e))?;
    store.cache_metadata(segment.id, metadata.clone());
    Ok(metadata)
}

/// The rows (ascending, numbered across the file) of the pages of `column` whose
/// min/max statistics may hold `key`, in the row groups `keep` accepts: a point lookup on
/// a sorted binary column (the trace id of spans) reads these pages only. `None` when the
/// file has no page index (every row of the kept groups is a candidate).
pub(crate) async fn rows_in_pages_with(
    store: &SegmentStore,
    segment: &SegmentMeta,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    column: usize,
    key: &[u8],
) -> Result<Option<Vec<u32>>> {
    let metadata = metadata(store, segment).await?;
    let metadata = metadata.metadata();
    let (Some(column_index), Some(offset_index)) =
        (metadata.column_index(), metadata.offset_index())
    else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    let mut group_start = 0u64;
    for (group_number, group) in metadata.row_groups().iter().enumerate() {
        let group_rows = group.num_rows() as u64;
        let start = group_start;
        group_start += group_rows;
        if !keep(group) {
            continue;
        }
        let pages = column_index
            .get(group_number)
            .and_then(|c| c.get(column))
            .zip(offset_index.get(group_number).and_then(|o| o.get(column)));
        let Some((ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(pages), offsets)) = pages else {
            // No usable statistics for this group: all its rows are candidates.
            rows.extend((start..start + group_rows).map(|r| r as u32));
            continue;
        };
        let locations = offsets.page_locations();
        for page in 0..locations.len() {
            let may_hold = match (pages.min_value(page), pages.max_value(page)) {
                (Some(min), Some(max)) => min <= key && key <= max,
                _ => false,
            };
            if !may_hold {
                continue;
            }
            let first = locations[page].first_row_index as u64;
            let end = locations
                .get(page + 1)
                .map_or(group_rows, |next| next.first_row_index as u64);
            rows.extend((start + first..start + end.min(group_rows)).map(|r| r as u32));
        }
    }
    Ok(Some(rows))
}

/// Above this share of a row group's rows, a row list is read by decoding the whole
/// group and dropping the other rows: cheaper than a selection of many small runs.
const DENSE_SELECTION: u64 = 8;

async fn read_inner(
    store: &SegmentStore,
    segment: &SegmentMeta,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: Option<&[u32]>,
    projection: Option<&[usize]>,
) -> Result<(Vec<RecordBatch>, Vec<u32>)> {
    let context = || format!("reading segment {}", segment.path);
    let reader = SegmentReader::new(store, segment);
    let metadata = metadata(store, segment).await?;
    // Delta-coded samples decode from stretch starts: whole row groups, every column, and
    // a row list applied after decoding.
    let delta_runs = if segment.table == Table::Samples
        && crate::sample_codec::is_delta_coded(metadata.schema())
    {
        Some(sample_runs(&metadata).ok_or_else(|| Error::Corrupt {
            what: segment.path.clone(),
            reason: "delta-coded samples without a valid run index".into(),
        })?)
    } else {
        None
    };
    let projection = projection.filter(|_| delta_runs.is_none());
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
    let metadata = builder.metadata().clone();
    let mut offsets = Vec::with_capacity(metadata.num_row_groups());
    let mut start = 0u64;
    for group in metadata.row_groups() {
        offsets.push(start..start + group.num_rows() as u64);
        start += group.num_rows() as u64;
    }
    let groups: Vec<usize> = (0..metadata.num_row_groups())
        .filter(|i| keep(metadata.row_group(*i)))
        .filter(|i| rows.is_none_or(|rows| any_row_in(rows, &offsets[*i])))
        .collect();
    if groups.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut builder = builder.with_row_groups(groups.clone());
    if let Some(columns) = projection {
        let width = builder.schema().fields().len();
        let mask = ProjectionMask::roots(
            metadata.file_metadata().schema_descr(),
            columns.iter().copied().filter(|c| *c < width),
        );
        builder = builder.with_projection(mask);
    }
    let mut read_rows = Vec::new();
    // With a dense row list, every row of the groups is read and the list applied after.
    let mut dense_filter: Option<Vec<bool>> = None;
    if let Some(rows) = rows {
        let mut group_rows = 0u64;
        for group in &groups {
            let range = &offsets[*group];
            group_rows += range.end - range.start;
            read_rows.extend(
                rows.iter()
                    .copied()
                    .filter(|r| range.contains(&u64::from(*r))),
            );
        }
        if delta_runs.is_some()
            || (read_rows.len() as u64).saturating_mul(DENSE_SELECTION) > group_rows
        {
            let mut wanted = Vec::with_capacity(group_rows as usize);
            let mut next = read_rows.iter().peekable();
            for group in &groups {
                for row in offsets[*group].clone() {
                    let hit = next.peek().is_some_and(|r| u64::from(**r) == row);
                    if hit {
                        next.next();
                    }
                    wanted.push(hit);
                }
            }
            dense_filter = Some(wanted);
        } else {
            builder = builder.with_row_selection(selection_for(rows, &groups, &offsets));
        }
    } else {
        for group in &groups {
            read_rows.extend(offsets[*group].clone().map(|r| r as u32));
        }
    }
    let stream = builder.build().map_err(|e| Error::parquet(context(), e))?;
    let mut batches: Vec<RecordBatch> = stream
        .try_collect()
        .await
        .map_err(|e| Error::parquet(context(), e))?;
    if let Some(runs) = &delta_runs {
        // Stretches, counted from the first row read: each group's first row (inside the
        // run holding it) and every run start inside the group.
        let mut stretches = Vec::new();
        let mut position = 0u64;
        for group in &groups {
            let range = &offsets[*group];
            let mut run = runs
                .starts
                .partition_point(|s| *s <= range.start)
                .saturating_sub(1);
            while run < runs.ids.len() && runs.starts[run] < range.end {
                let start = runs.starts[run].max(range.start);
                stretches.push((position + (start - range.start), runs.ids[run]));
                run += 1;
            }
            position += range.end - range.start;
        }
        batches = crate::sample_codec::from_delta_file(&batches, &stretches)?;
    }
    if let Some(wanted) = dense_filter {
        let mut position = 0usize;
        let mut kept = Vec::with_capacity(batches.len());
        for batch in &batches {
            let end = position + batch.num_rows();
            let mask = BooleanArray::from(wanted.get(position..end).unwrap_or_default().to_vec());
            position = end;
            if mask.len() != batch.num_rows() {
                return Err(Error::Corrupt {
                    what: segment.path.clone(),
                    reason: "row groups hold fewer rows than their metadata says".into(),
                });
            }
            if mask.true_count() > 0 {
                kept.push(
                    filter_record_batch(batch, &mask)
                        .map_err(|e| Error::arrow("selecting rows", e))?,
                );
            }
        }
        batches = kept;
    }
    if segment.table == Table::Samples && delta_runs.is_none() {
        let decoded = batches
            .iter()
            .map(crate::sample_codec::from_file)
            .collect::<Result<Vec<_>>>()?;
        return Ok((decoded, read_rows));
    }
    Ok((batches, read_rows))
}

/// A planned read of some series' samples in a samples file with a run index: the row
/// groups, the rows of the wanted series in them, and which series each piece is.
#[derive(Debug, Default)]
pub(crate) struct SamplePlan {
    groups: Vec<GroupPlan>,
}

/// The part of a [`SamplePlan`] in one row group.
#[derive(Debug)]
struct GroupPlan {
    number: usize,
    /// Rows selected and skipped, covering the whole group.
    selectors: Vec<RowSelector>,
    /// `(series id, rows)` of each piece of selected rows, in file order.
    pieces: Vec<(u64, usize)>,
    /// Rows selected.
    rows: usize,
}

impl SamplePlan {
    /// Rows the plan selects.
    pub(crate) fn rows(&self) -> usize {
        self.groups.iter().map(|g| g.rows).sum()
    }

    /// Splits the plan into at most `parts` plans of whole row groups, in file order, of
    /// about as many selected rows each: reads that can run at once.
    pub(crate) fn split(self, parts: usize) -> Vec<SamplePlan> {
        let total = self.rows();
        let parts = parts.clamp(1, self.groups.len().max(1));
        let target = total.div_ceil(parts).max(1);
        let mut out = Vec::with_capacity(parts);
        let mut current = SamplePlan::default();
        let mut rows = 0;
        for group in self.groups {
            rows += group.rows;
            current.groups.push(group);
            if rows >= target * (out.len() + 1) && out.len() + 1 < parts {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.groups.is_empty() {
            out.push(current);
        }
        out
    }
}

/// Parsed run indexes, by the footer they were parsed from. An entry is valid while
/// that footer is alive (the weak pointer upgrades to the same allocation), so this
/// holds no more than the footers cached by the segment store, and a stale entry is
/// never used for another file.
#[allow(clippy::type_complexity)]
static RUN_INDEXES: LazyLock<Mutex<HashMap<usize, (Weak<ParquetMetaData>, Arc<SampleRuns>)>>> =
    LazyLock::new(Mutex::default);

/// The run index of a samples file, parsed once per footer; `None` for files written
/// before it existed (or with an index that does not match the file).
fn sample_runs(metadata: &ArrowReaderMetadata) -> Option<Arc<SampleRuns>> {
    let footer = metadata.metadata();
    let key = Arc::as_ptr(footer) as usize;
    let mut cache = RUN_INDEXES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, runs)) = cache.get(&key)
        && owner.upgrade().is_some_and(|o| Arc::ptr_eq(&o, footer))
    {
        return Some(runs.clone());
    }
    let file = footer.file_metadata();
    let text = file
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == RUNS_KEY)?
        .value
        .as_deref()?;
    let runs = match crate::sample_codec::decode_runs(text, file.num_rows() as u64) {
        Some(runs) => Arc::new(runs),
        None => {
            tracing::warn!("samples segment with a malformed run index; reading every row");
            return None;
        }
    };
    cache.retain(|_, (owner, _)| owner.strong_count() > 0);
    cache.insert(key, (Arc::downgrade(footer), runs.clone()));
    Some(runs)
}

/// A series list this much shorter than the runs of the row groups read is planned from
/// the series (their runs found by binary search) rather than by walking every run.
const FEW_SERIES_FACTOR: usize = 8;

/// Plans the read of the samples in `[start_ms, end_ms]` of the series `wanted` accepts:
/// row groups pruned on their time statistics, then only the runs of wanted series in
/// them. `wanted_ids`, when given, are those series sorted; when they are few next to the
/// runs of the row groups kept, their runs are looked up by series, so a narrow read costs
/// what it selects and not the size of the file. `None` when the file has no run index
/// (the caller decodes it whole).
pub(crate) async fn plan_sample_read(
    store: &SegmentStore,
    segment: &SegmentMeta,
    start_ms: i64,
    end_ms: i64,
    wanted_ids: Option<&[u64]>,
    wanted: impl Fn(u64) -> bool,
) -> Result<Option<SamplePlan>> {
    let metadata = metadata(store, segment).await?;
    let Some(runs) = sample_runs(&metadata) else {
        return Ok(None);
    };
    // A delta-coded file's time statistics are of deltas: its footer has the ranges.
    let footer_times = crate::sample_codec::is_delta_coded(metadata.schema())
        .then(|| group_times(metadata.metadata()));
    // (number, first row, end row) of the row groups whose time range overlaps.
    let mut kept = Vec::new();
    let mut group_start = 0u64;
    for (number, group) in metadata.metadata().row_groups().iter().enumerate() {
        let (start, end) = (group_start, group_start + group.num_rows() as u64);
        group_start = end;
        let range = match &footer_times {
            Some(times) => times.as_ref().map(|t| t[number]),
            None => i64_range(group, 1),
        };
        if range.is_none_or(|(lo, hi)| lo <= end_ms && hi >= start_ms) {
            kept.push((number, start, end));
        }
    }
    // The run holding a row: the last run starting at or before it.
    let run_at = |row: u64| runs.starts.partition_point(|s| *s <= row).saturating_sub(1);
    let kept_runs: usize = kept
        .iter()
        .map(|(_, start, end)| {
            runs.starts
                .partition_point(|s| *s < *end)
                .saturating_sub(run_at(*start))
        })
        .sum();
    // Pieces `(first row, end row, series)` of each kept group, in row order.
    let mut pieces_of: Vec<Vec<(u64, u64, u64)>> = vec![Vec::new(); kept.len()];
    match wanted_ids.filter(|ids| ids.len().saturating_mul(FEW_SERIES_FACTOR) < kept_runs) {
        Some(ids) => {
            for &id in ids {
                for &run in runs.runs_of(id) {
                    let (from, to) = (runs.starts[run as usize], runs.starts[run as usize + 1]);
                    // A run may cross row groups: one piece per kept group it reaches.
                    let mut group = kept.partition_point(|(_, _, end)| *end <= from);
                    while let Some(&(_, start, end)) = kept.get(group) {
                        if start >= to {
                            break;
                        }
                        let (a, b) = (from.max(start), to.min(end));
                        if a < b {
                            pieces_of[group].push((a, b, id));
                        }
                        group += 1;
                    }
                }
            }
            for pieces in &mut pieces_of {
                pieces.sort_unstable();
            }
        }
        None => {
            for (group, &(_, start, end)) in kept.iter().enumerate() {
                // The run holding the group's first row, then every run starting in it.
                let mut run = run_at(start);
                while run < runs.ids.len() && runs.starts[run] < end {
                    let id = runs.ids[run];
                    let (from, to) = (runs.starts[run].max(start), runs.starts[run + 1].min(end));
                    run += 1;
                    if from < to && wanted(id) {
                        pieces_of[group].push((from, to, id));
                    }
                }
            }
        }
    }
    let mut groups = Vec::new();
    for (&(number, start, end), group_pieces) in kept.iter().zip(&pieces_of) {
        if group_pieces.is_empty() {
            continue;
        }
        let mut group = GroupPlan {
            number,
            selectors: Vec::new(),
            pieces: Vec::with_capacity(group_pieces.len()),
            rows: 0,
        };
        let mut cursor = start;
        for &(from, to, id) in group_pieces {
            if from > cursor {
                group
                    .selectors
                    .push(RowSelector::skip((from - cursor) as usize));
            }
            let rows = (to - from) as usize;
            group.selectors.push(RowSelector::select(rows));
            group.pieces.push((id, rows));
            group.rows += rows;
            cursor = to;
        }
        if end > cursor {
            group
                .selectors
                .push(RowSelector::skip((end - cursor) as usize));
        }
        groups.push(group);
    }
    Ok(Some(SamplePlan { groups }))
}

/// Reads a planned selection (time, not series id: the plan knows the series) and hands
/// each piece's samples in `[start_ms, end_ms]` to `sink`, in file order; only those
/// rows' values are decoded. Returns false as soon as `sink` does.
pub(crate) async fn read_planned_samples(
    store: &SegmentStore,
    segment: &SegmentMeta,
    plan: SamplePlan,
    start_ms: i64,
    end_ms: i64,
    mut sink: impl FnMut(u64, &[i64], &[f64]) -> bool,
) -> Result<bool> {
    if plan.groups.is_empty() {
        return Ok(true);
    }
    let numbers: Vec<usize> = plan.groups.iter().map(|g| g.number).collect();
    let mut selectors = Vec::new();
    let mut all_pieces = Vec::new();
    for group in plan.groups {
        selectors.extend(group.selectors);
        all_pieces.extend(group.pieces);
    }
    let context = || format!("reading segment {}", segment.path);
    let corrupt = |reason: &str| Error::Corrupt {
        what: segment.path.clone(),
        reason: reason.to_string(),
    };
    let metadata = metadata(store, segment).await?;
    let delta = crate::sample_codec::is_delta_coded(metadata.schema());
    // Times and the three value columns (a delta-coded file has no series column).
    let columns = if delta { 0..4 } else { 1..5 };
    let mask = ProjectionMask::roots(metadata.metadata().file_metadata().schema_descr(), columns);
    let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
        SegmentReader::new(store, segment),
        metadata,
    )
    .with_row_groups(numbers)
    .with_row_selection(RowSelection::from(selectors))
    .with_projection(mask)
    .with_batch_size(SAMPLE_READ_BATCH)
    .build()
    .map_err(|e| Error::parquet(context(), e))?;
    let mut pieces = all_pieces.iter();
    let mut current = pieces.next().copied();
    let mut values = Vec::new();
    if delta {
        // Every piece starts a stretch (a run start or a row-group start).
        let (mut state, mut fresh) = (DeltaState::default(), true);
        let mut times = Vec::new();
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| Error::parquet(context(), e))?
        {
            let columns = DeltaColumns::of(&batch)?;
            let mut position = 0;
            while position < batch.num_rows() {
                let Some((id, left)) = current.as_mut() else {
                    return Err(corrupt("more rows than its run index says"));
                };
                if fresh {
                    state = DeltaState::default();
                    fresh = false;
                }
                let take = (*left).min(batch.num_rows() - position);
                times.clear();
                values.clear();
                columns.decode(
                    position..position + take,
                    &mut state,
                    &mut times,
                    &mut values,
                )?;
                let from = times.partition_point(|t| *t < start_ms);
                let to = times.partition_point(|t| *t <= end_ms);
                if from < to && !sink(*id, &times[from..to], &values[from..to]) {
                    return Ok(false);
                }
                position += take;
                *left -= take;
                if *left == 0 {
                    current = pieces.next().copied();
                    fresh = true;
                }
            }
        }
        if current.is_some() {
            return Err(corrupt("fewer rows than its run index says"));
        }
        return Ok(true);
    }
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| Error::parquet(context(), e))?
    {
        let columns = (
            batch.column(0).as_any().downcast_ref::<Int64Array>(),
            batch.column(1).as_any().downcast_ref::<Int64Array>(),
            batch.column(2).as_any().downcast_ref::<Int8Array>(),
            batch.column(3).as_any().downcast_ref::<Float64Array>(),
        );
        let (Some(ts), Some(mantissas), Some(scales), Some(floats)) = columns else {
            return Err(corrupt("unexpected column types"));
        };
        let times = ts.values();
        let mut position = 0;
        while position < batch.num_rows() {
            let Some((id, left)) = current.as_mut() else {
                return Err(corrupt("more rows than its run index says"));
            };
            let take = (*left).min(batch.num_rows() - position);
            let chunk = &times[position..position + take];
            let from = position + chunk.partition_point(|t| *t < start_ms);
            let to = position + chunk.partition_point(|t| *t <= end_ms);
            if from < to {
                values.clear();
                crate::sample_codec::decode_values(
                    mantissas,
                    scales,
                    floats,
                    from..to,
                    &mut values,
                )?;
                if !sink(*id, &times[from..to], &values) {
                    return Ok(false);
                }
            }
            position += take;
            *left -= take;
            if *left == 0 {
                current = pieces.next().copied();
            }
        }
    }
    if current.is_some() {
        return Err(corrupt("fewer rows than its run index says"));
    }
    Ok(true)
}

/// Rows per batch of a planned samples read.
const SAMPLE_READ_BATCH: usize = 64 * 1024;

/// Reads one segment file through the segment store (and its read cache, when the
/// store is remote) with range requests: the footer, then only the chunks a read needs.
struct SegmentReader {
    store: SegmentStore,
    path: object_store::path::Path,
    size: u64,
}

impl SegmentReader {
    fn new(store: &SegmentStore, segment: &SegmentMeta) -> Self {
        SegmentReader {
            store: store.clone(),
            path: segment.object_path(),
            size: segment.parquet_bytes,
        }
    }
}

impl AsyncFileReader for SegmentReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let mut parts = self
                .store
                .get_ranges(&self.path, std::slice::from_ref(&range))
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            parts
                .pop()
                .ok_or_else(|| ParquetError::General("empty range read".to_string()))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let policy = options
                .map(|o| o.column_index_policy())
                .unwrap_or(PageIndexPolicy::Skip);
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(policy)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn any_row_in(rows: &[u32], range: &Range<u64>) -> bool {
    let first = rows.partition_point(|r| u64::from(*r) < range.start);
    rows.get(first).is_some_and(|r| u64::from(*r) < range.end)
}

/// A selection over the chosen row groups (concatenated) that keeps exactly `rows`.
fn selection_for(rows: &[u32], groups: &[usize], offsets: &[Range<u64>]) -> RowSelection {
    let mut selectors = Vec::new();
    for group in groups {
        let range = &offsets[*group];
        let mut cursor = range.start;
        let first = rows.partition_point(|r| u64::from(*r) < range.start);
        for row in rows[first..]
            .iter()
            .map(|r| u64::from(*r))
            .take_while(|r| *r < range.end)
        {
            if row > cursor {
                selectors.push(RowSelector::skip((row - cursor) as usize));
                selectors.push(RowSelector::select(1));
            } else {
                // Right after the previous selected row (rows of the chosen groups are
                // numbered consecutively in the selection): extend its run.
                match selectors.last_mut() {
                    Some(last) if !last.skip => last.row_count += 1,
                    _ => selectors.push(RowSelector::select(1)),
                }
            }
            cursor = row + 1;
        }
        if range.end > cursor {
            selectors.push(RowSelector::skip((range.end - cursor) as usize));
        }
    }
    RowSelection::from(selectors)
}

/// The min/max statistics of an integer column in a row group, as i64.
pub(crate) fn i64_range(group: &RowGroupMetaData, column: usize) -> Option<(i64, i64)> {
    let stats = group.column(column).statistics()?;
    let min = stats.min_bytes_opt()?;
    let max = stats.max_bytes_opt()?;
    Some((
        i64::from_le_bytes(min.try_into().ok()?),
        i64::from_le_bytes(max.try_into().ok()?),
    ))
}

/// The min/max statistics of a binary column in a row group.
pub(crate) fn bytes_range(group: &RowGroupMetaData, column: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let stats = group.column(column).statistics()?;
    Some((
        stats.min_bytes_opt()?.to_vec(),
        stats.max_bytes_opt()?.to_vec(),
    ))
}

/// Shared handle on a schema, for callers that build empty results.
pub(crate) fn empty(schema: &SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(Arc::clone(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map columns whose statistics are off are named as Parquet names them (a wrong
    /// path would be ignored silently).
    #[test]
    fn map_leaf_columns_exist_in_logs_and_spans() {
        use crate::model::{LOGS_SCHEMA, SPANS_SCHEMA};
        for schema in [&*LOGS_SCHEMA, &*SPANS_SCHEMA] {
            let parquet = parquet::arrow::ArrowSchemaConverter::new()
                .convert(schema)
                .unwrap();
            let paths: Vec<String> = parquet
                .columns()
                .iter()
                .map(|c| c.path().string())
                .collect();
            for leaf in MAP_LEAF_COLUMNS {
                assert!(paths.iter().any(|p| p == leaf), "{leaf} not in {paths:?}");
            }
        }
        // Looked up by the paths the writer uses for the leaves: a setting made under any
        // other path is silently ignored.
        for (table, schema) in [(Table::Logs, &*LOGS_SCHEMA), (Table::Spans, &*SPANS_SCHEMA)] {
            let properties = writer_properties(table, 1, 1024, 0).unwrap();
            let parquet = parquet::arrow::ArrowSchemaConverter::new()
                .convert(schema)
                .unwrap();
            let mut off = 0;
            for column in parquet.columns() {
                let expected = if MAP_LEAF_COLUMNS.contains(&column.path().string().as_str()) {
                    off += 1;
                    EnabledStatistics::None
                } else if column.path().string() == "service" {
                    EnabledStatistics::Page
                } else {
                    continue;
                };
                assert_eq!(
                    properties.statistics_enabled(column.path()),
                    expected,
                    "{table:?} {}",
                    column.path()
                );
            }
            assert_eq!(off, MAP_LEAF_COLUMNS.len(), "{table:?}");
        }
    }

    /// The fast path (integer keys, rows gathered from the sources) orders rows as the
    /// general path does, for each kind of leading column it takes.
    #[test]
    fn sorting_by_keys_matches_the_general_sort() {
        use crate::model::{
            LOGS_SCHEMA, LogRecord, SPANS_SCHEMA, SpanRecord, log_col, logs_batch, span_col,
        };
        use arrow::compute::{concat_batches, take_record_batch};
        use proto::{SpanId, TraceId};
        let services = ["mail", "asset", "funding", "资产", "gateway"];
        // Distinct (service, time) pairs in a scrambled order, over three batches.
        let logs: Vec<LogRecord> = (0..300i64)
            .map(|i| LogRecord {
                service: services[(i * 7 % 5) as usize].to_string(),
                timestamp_ns: (i * 7919) % 1000 - 500,
                body: format!("line {i}"),
                ..LogRecord::default()
            })
            .collect();
        let batches: Vec<RecordBatch> = logs.chunks(100).map(|c| logs_batch(c).unwrap()).collect();
        let spans: Vec<SpanRecord> = (0..300u32)
            .map(|i| SpanRecord {
                trace_id: TraceId(
                    ((i * 7919 % 97) as u128)
                        .wrapping_mul(0x0123_4567_89ab_cdef_u128 << 40)
                        .to_be_bytes(),
                ),
                span_id: SpanId(u64::from(i).to_be_bytes()),
                start_ns: i64::from(i % 13),
                service: "asset".into(),
                ..SpanRecord::default()
            })
            .collect();
        let span_batches: Vec<RecordBatch> = spans
            .chunks(120)
            .map(|c| crate::model::spans_batch(c).unwrap())
            .collect();
        let cases = [
            // Every (service, time) differs: the whole rows must come out alike.
            (
                LOGS_SCHEMA.clone(),
                batches,
                vec![log_col::SERVICE, log_col::TIMESTAMP],
                true,
            ),
            (
                SPANS_SCHEMA.clone(),
                span_batches,
                vec![span_col::TRACE_ID, span_col::START],
                false,
            ),
        ];
        for (schema, batches, columns, unique) in cases {
            assert!(sort_keys(&batches, &columns).unwrap().is_some());
            let (fast, general) = (
                sort_order(&batches, &columns).unwrap(),
                general_sort_order(&batches, &columns).unwrap(),
            );
            assert_eq!(fast.distinct_leading, general.distinct_leading);
            if unique {
                assert_eq!(fast.rows, general.rows);
            }
            let fast = sort_batches(&schema, &batches, &columns).unwrap();
            let all = concat_batches(&schema, &batches).unwrap();
            let sort_columns: Vec<SortColumn> = columns
                .iter()
                .map(|c| SortColumn {
                    values: all.column(*c).clone(),
                    options: None,
                })
                .collect();
            let indices = lexsort_to_indices(&sort_columns, None).unwrap();
            let general = take_record_batch(&all, &indices).unwrap();
            if unique {
                assert_eq!(fast, general);
            } else {
                // Keys tie: rows with equal keys may come out in either order.
                for column in &columns {
                    assert_eq!(fast.column(*column), general.column(*column));
                }
            }
        }
    }

    /// Encoding in gathered chunks writes the rows of the one-batch sort, in its order,
    /// and hands every row to the callback once, in that order.
    #[test]
    fn encoding_in_chunks_writes_the_sorted_rows() {
        use crate::model::{LOGS_SCHEMA, LogRecord, log_col, logs_batch};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let logs: Vec<LogRecord> = (0..50i64)
            .map(|i| LogRecord {
                service: ["b", "a", "c"][(i % 3) as usize].to_string(),
                timestamp_ns: 100 - i,
                body: format!("line {i}"),
                ..LogRecord::default()
            })
            .collect();
        let batches: Vec<RecordBatch> = logs.chunks(9).map(|c| logs_batch(c).unwrap()).collect();
        let columns = [log_col::SERVICE, log_col::TIMESTAMP];
        let sorted = sort_batches(&LOGS_SCHEMA, &batches, &columns).unwrap();
        let order = sort_order(&batches, &columns).unwrap();
        assert_eq!(order.distinct_leading, 3);
        let properties = writer_properties(Table::Logs, 1, 1024, 0).unwrap();
        let mut seen = Vec::new();
        let bytes = encode_in_order(
            &LOGS_SCHEMA,
            &batches,
            &order.rows,
            properties,
            7,
            |chunk| {
                assert!(chunk.num_rows() <= 7);
                seen.push(chunk.clone());
                Ok(())
            },
        )
        .unwrap();
        let seen = arrow::compute::concat_batches(&LOGS_SCHEMA, &seen).unwrap();
        assert_eq!(seen, sorted);
        let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        assert_eq!(read.column(log_col::BODY), sorted.column(log_col::BODY));
        assert_eq!(
            read.column(log_col::SERVICE),
            sorted.column(log_col::SERVICE)
        );
    }

    #[test]
    fn selection_keeps_exactly_the_rows() {
        let offsets = vec![0..10, 10..20, 20..30];
        let selection = selection_for(&[3, 4, 25], &[0, 2], &offsets);
        let selected: Vec<usize> = selection
            .iter()
            .scan(0usize, |pos, s| {
                let start = *pos;
                *pos += s.row_count;
                Some((start, s.row_count, s.skip))
            })
            .filter(|(_, _, skip)| !skip)
            .flat_map(|(start, count, _)| start..start + count)
            .collect();
        // Rows of group 2 are numbered from 10 in the concatenated selection.
        assert_eq!(selected, vec![3, 4, 15]);
        assert!(any_row_in(&[3, 25], &(20..30)));
        assert!(!any_row_in(&[3, 25], &(10..20)));
    }
}
