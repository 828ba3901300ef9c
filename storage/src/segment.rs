//! Parquet encoding of segments, and the row-group pruning reader.
//!
//! Each table has its own writer settings, chosen for its reads (PERF-NOTES §3, §5, §6):
//! samples are sorted by (series, time) with delta-coded ids and times and
//! byte-stream-split values; logs by (service, time) with small body pages; spans by
//! (trace id, start) with a bloom filter on the trace id.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{
    SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
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
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::metadata::{RowGroupMetaData, SortingColumn};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::manifest::{SegmentMeta, Table};
use crate::store::SegmentStore;
use crate::{Error, Result};

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
            .set_dictionary_enabled(false)
            .set_column_encoding(column("series_id"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(column("ts_ms"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(column("mantissa"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(column("scale"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(column("value"), Encoding::BYTE_STREAM_SPLIT)
            .set_sorting_columns(sorting(&[0, 1])),
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
            .set_column_dictionary_enabled(column("body"), false)
            .set_column_dictionary_enabled(column("trace_id"), false)
            .set_column_dictionary_enabled(column("span_id"), false)
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
    Ok(builder.build())
}

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

/// Concatenates batches and sorts them by the given columns, ascending.
pub(crate) fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    columns: &[usize],
) -> Result<RecordBatch> {
    let batch =
        concat_batches(schema, batches).map_err(|e| Error::arrow("concatenating batches", e))?;
    if batch.num_rows() <= 1 {
        return Ok(batch);
    }
    let sort_columns: Vec<SortColumn> = columns
        .iter()
        .map(|c| SortColumn {
            values: batch.column(*c).clone(),
            options: None,
        })
        .collect();
    let indices =
        lexsort_to_indices(&sort_columns, None).map_err(|e| Error::arrow("sorting batch", e))?;
    take_record_batch(&batch, &indices).map_err(|e| Error::arrow("reordering batch", e))
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
        if (read_rows.len() as u64).saturating_mul(DENSE_SELECTION) > group_rows {
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
    if segment.table == Table::Samples {
        let decoded = batches
            .iter()
            .map(crate::sample_codec::from_file)
            .collect::<Result<Vec<_>>>()?;
        return Ok((decoded, read_rows));
    }
    Ok((batches, read_rows))
}

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
