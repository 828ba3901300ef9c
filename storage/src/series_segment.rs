//! Series segments: `(series id, metric name, other labels)` rows, written at flush
//! for the series no segment holds yet, merged by compaction, read back at start-up.
//!
//! A flush encodes straight from the interned series index, a bounded chunk of series
//! at a time (read lock held only while one chunk is copied into Arrow builders), so it
//! never holds a second copy of every new series' labels.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, MapArray, MapBuilder, RecordBatch, StringArray, StringBuilder, UInt64Array,
    UInt64Builder,
};
use parquet::arrow::ArrowWriter;
use proto::SeriesId;

use crate::engine::TenantCatalog;
use crate::flush::EncodedSegment;
use crate::manifest::Table;
use crate::model::SERIES_SCHEMA;
use crate::series::{Labels, METRIC_NAME_LABEL};
use crate::{Error, Result, segment};

/// Series copied out of the index per read-lock acquisition during a flush.
const SERIES_PER_CHUNK: usize = 8192;

/// Builds one series batch row by row, from owned or interned labels alike.
struct SeriesBatchBuilder {
    ids: UInt64Builder,
    metrics: StringBuilder,
    labels: MapBuilder<StringBuilder, StringBuilder>,
}

impl SeriesBatchBuilder {
    fn with_capacity(rows: usize) -> Self {
        SeriesBatchBuilder {
            ids: UInt64Builder::with_capacity(rows),
            metrics: StringBuilder::new(),
            labels: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
        }
    }

    /// Adds a series from its `(name, value)` pairs, `__name__` included.
    fn push<'a>(&mut self, id: u64, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<()> {
        let mut metric = "";
        for (name, value) in pairs {
            if name == METRIC_NAME_LABEL {
                metric = value;
                continue;
            }
            self.labels.keys().append_value(name);
            self.labels.values().append_value(value);
        }
        self.labels
            .append(true)
            .map_err(|e| Error::arrow("building labels", e))?;
        self.ids.append_value(id);
        self.metrics.append_value(metric);
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.metrics.finish()),
            Arc::new(self.labels.finish()),
        ];
        RecordBatch::try_new(SERIES_SCHEMA.clone(), columns)
            .map_err(|e| Error::arrow("building series", e))
    }
}

/// Writes a series segment one batch at a time.
struct SeriesSegmentWriter {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl SeriesSegmentWriter {
    fn new(config: &crate::Config) -> Result<Self> {
        let properties = segment::writer_properties(
            Table::Series,
            config.zstd_level_compacted,
            config.row_group_rows,
            0,
        )?;
        let writer = ArrowWriter::try_new(Vec::new(), SERIES_SCHEMA.clone(), Some(properties))
            .map_err(|e| Error::parquet("creating parquet writer", e))?;
        Ok(SeriesSegmentWriter { writer, rows: 0 })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .map_err(|e| Error::parquet("writing parquet", e))
    }

    fn finish(self) -> Result<EncodedSegment> {
        let parquet = self
            .writer
            .into_inner()
            .map_err(|e| Error::parquet("closing parquet writer", e))?;
        Ok(EncodedSegment {
            table: Table::Series,
            rows: self.rows,
            parquet,
            index: None,
            min_time_ns: 0,
            max_time_ns: 0,
        })
    }
}

/// Builds a series batch from owned label sets.
pub(crate) fn series_batch(series: &[(u64, Labels)]) -> Result<RecordBatch> {
    let mut builder = SeriesBatchBuilder::with_capacity(series.len());
    for (id, labels) in series {
        builder.push(*id, labels.iter())?;
    }
    builder.finish()
}

/// Encodes owned label sets as a series segment (compaction).
pub(crate) fn encode_series(
    series: &[(u64, Labels)],
    config: &crate::Config,
) -> Result<EncodedSegment> {
    let mut writer = SeriesSegmentWriter::new(config)?;
    for chunk in series.chunks(SERIES_PER_CHUNK) {
        writer.write(&series_batch(chunk)?)?;
    }
    writer.finish()
}

/// Encodes the series `ids` of a tenant's index as a series segment, reading labels
/// from the interned index a chunk at a time (a flush; runs on the blocking pool).
pub(crate) fn encode_index_series(
    catalog: &TenantCatalog,
    ids: &[u64],
    config: &crate::Config,
) -> Result<EncodedSegment> {
    let mut writer = SeriesSegmentWriter::new(config)?;
    for chunk in ids.chunks(SERIES_PER_CHUNK) {
        let batch = {
            let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
            let mut builder = SeriesBatchBuilder::with_capacity(chunk.len());
            for id in chunk {
                if let Some(labels) = index.view(SeriesId(*id)) {
                    builder.push(*id, labels.iter())?;
                }
            }
            builder.finish()?
        };
        writer.write(&batch)?;
    }
    writer.finish()
}

fn corrupt(reason: &str) -> Error {
    Error::Corrupt {
        what: "series segment".to_string(),
        reason: reason.to_string(),
    }
}

fn column<T: 'static>(batch: &RecordBatch, index: usize) -> Result<&T> {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| corrupt(&format!("unexpected type of column {index}")))
}

/// Reads `(id, labels)` back from series segment batches.
pub(crate) fn series_from_batches(batches: &[RecordBatch]) -> Result<Vec<(SeriesId, Labels)>> {
    let mut out = Vec::new();
    for batch in batches {
        let ids: &UInt64Array = column(batch, 0)?;
        let names: &StringArray = column(batch, 1)?;
        let labels: &MapArray = column(batch, 2)?;
        for row in 0..batch.num_rows() {
            let entries = labels.value(row);
            let keys = entries
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| corrupt("label keys"))?;
            let values = entries
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| corrupt("label values"))?;
            let mut pairs: Vec<(String, String)> = (0..keys.len())
                .map(|i| (keys.value(i).to_string(), values.value(i).to_string()))
                .collect();
            pairs.push((METRIC_NAME_LABEL.to_string(), names.value(row).to_string()));
            let labels = Labels::new(pairs).map_err(|e| corrupt(&e.to_string()))?;
            out.push((SeriesId(ids.value(row)), labels));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::series::test_labels as labels;

    #[test]
    fn index_and_owned_labels_encode_to_the_same_rows() {
        let catalog = TenantCatalog::default();
        let mut series = Vec::new();
        {
            let mut index = catalog.series.write().unwrap();
            for i in 0..(SERIES_PER_CHUNK + 10) {
                let l = labels(&[
                    ("__name__", "up"),
                    ("Zone", "a"),
                    ("job", &format!("job-{}", i % 3)),
                    ("instance", &format!("host-{i}")),
                ]);
                let (id, _) = index.get_or_create(&l, 0);
                series.push((id.0, l));
            }
        }
        let ids: Vec<u64> = series.iter().map(|(id, _)| *id).collect();
        let config = crate::Config::default();
        let from_index = encode_index_series(&catalog, &ids, &config).unwrap();
        let from_owned = encode_series(&series, &config).unwrap();
        assert_eq!(from_index.rows, series.len() as u64);
        assert_eq!(from_index.parquet, from_owned.parquet);
        let batches: Vec<RecordBatch> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(from_index.parquet),
            )
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let decoded: Vec<(u64, Labels)> = series_from_batches(&batches)
            .unwrap()
            .into_iter()
            .map(|(id, l)| (id.0, l))
            .collect();
        assert_eq!(decoded, series);
    }
}
