//! Parquet encoding of segments, and the row-group pruning reader.
//!
//! Each table has its own writer settings, chosen for its reads (PERF-NOTES §3, §5, §6):
//! samples are sorted by (series, time) with delta-coded ids and times and
//! byte-stream-split values; logs by (service, time) with small body pages; spans by
//! (trace id, start) with a bloom filter on the trace id.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::metadata::{RowGroupMetaData, SortingColumn};
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
        Table::Spans => builder
            .set_column_dictionary_enabled(column("trace_id"), false)
            .set_column_dictionary_enabled(column("span_id"), false)
            .set_column_dictionary_enabled(column("parent_span_id"), false)
            .set_column_dictionary_enabled(column("start"), false)
            .set_column_encoding(column("start"), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(column("duration_ns"), false)
            .set_column_encoding(column("duration_ns"), Encoding::DELTA_BINARY_PACKED)
            .set_column_bloom_filter_enabled(column("trace_id"), true)
            .set_column_bloom_filter_max_ndv(column("trace_id"), distinct_traces.max(64))
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
    Ok(read_inner(store, segment, keep, rows).await?.0)
}

/// Like [`read`] with a row list, and also returns the numbers of the rows read, in order.
pub(crate) async fn read_rows(
    store: &SegmentStore,
    segment: &SegmentMeta,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: &[u32],
) -> Result<(Vec<RecordBatch>, Vec<u32>)> {
    read_inner(store, segment, keep, Some(rows)).await
}

async fn read_inner(
    store: &SegmentStore,
    segment: &SegmentMeta,
    keep: impl Fn(&RowGroupMetaData) -> bool,
    rows: Option<&[u32]>,
) -> Result<(Vec<RecordBatch>, Vec<u32>)> {
    let context = || format!("reading segment {}", segment.path);
    let reader = SegmentReader::new(store, segment);
    let metadata = match store.cached_metadata(segment.id) {
        Some(metadata) => metadata,
        None => {
            let mut reader = SegmentReader::new(store, segment);
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            let metadata = ArrowReaderMetadata::load_async(&mut reader, options)
                .await
                .map_err(|e| Error::parquet(context(), e))?;
            store.cache_metadata(segment.id, metadata.clone());
            metadata
        }
    };
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
    let mut read_rows = Vec::new();
    let mut builder = builder.with_row_groups(groups.clone());
    if let Some(rows) = rows {
        for group in &groups {
            let range = &offsets[*group];
            read_rows.extend(
                rows.iter()
                    .copied()
                    .filter(|r| range.contains(&u64::from(*r))),
            );
        }
        builder = builder.with_row_selection(selection_for(rows, &groups, &offsets));
    }
    let stream = builder.build().map_err(|e| Error::parquet(context(), e))?;
    let batches: Vec<RecordBatch> = stream
        .try_collect()
        .await
        .map_err(|e| Error::parquet(context(), e))?;
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
            }
            selectors.push(RowSelector::select(1));
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
