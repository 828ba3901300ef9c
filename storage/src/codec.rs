//! Encoding of WAL record bodies.
//!
//! Metrics records use a compact hand-written layout (varints, raw f64 bits) because
//! they are the hottest path; logs and spans records are Arrow IPC streams with LZ4
//! frames, which cost little more than a copy.

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use proto::{SeriesId, SpanId, TraceId};

use crate::metrics::{Exemplar, MetricMetadata, MetricType};
use crate::series::Labels;
use crate::{Error, Result};

/// A metrics WAL record: new series first, then samples that may reference them.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MetricsRecord {
    pub new_series: Vec<(SeriesId, Labels)>,
    /// `(series, ts_ms, value)`.
    pub samples: Vec<(u64, i64, f64)>,
    pub exemplars: Vec<(u64, Exemplar)>,
    pub metadata: Vec<MetricMetadata>,
}

const MAX_DECODED_ITEMS: u64 = 1 << 28;

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }
    fn signed(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }
    fn str(&mut self, text: &str) {
        self.varint(text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }
    fn f64(&mut self, value: f64) {
        self.0.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    fn optional_bytes(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => {
                self.0.push(1);
                self.0.extend_from_slice(bytes);
            }
            None => self.0.push(0),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(reason: &str) -> Error {
        Error::Corrupt {
            what: "wal metrics record".to_string(),
            reason: reason.to_string(),
        }
    }
    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| Self::corrupt("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Self::corrupt("varint too long"))
    }
    fn count(&mut self) -> Result<usize> {
        let count = self.varint()?;
        if count > MAX_DECODED_ITEMS {
            return Err(Self::corrupt("count out of range"));
        }
        Ok(count as usize)
    }
    fn signed(&mut self) -> Result<i64> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| Self::corrupt("truncated field"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn str(&mut self) -> Result<String> {
        let len = self.count()?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Self::corrupt("invalid utf-8"))
    }
    fn f64(&mut self) -> Result<f64> {
        let bytes = self.take(8)?;
        Ok(f64::from_bits(u64::from_le_bytes(
            bytes.try_into().expect("took 8 bytes"),
        )))
    }
    fn optional_bytes(&mut self, len: usize) -> Result<Option<&'a [u8]>> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => self.take(len).map(Some),
            _ => Err(Self::corrupt("bad option tag")),
        }
    }
}

impl MetricsRecord {
    #[cfg(test)]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let new_series: Vec<(SeriesId, &Labels)> =
            self.new_series.iter().map(|(id, l)| (*id, l)).collect();
        self.encode_with_series(&new_series, out);
    }

    /// Encodes the record with `new_series` in place of `self.new_series`: the write
    /// path borrows the new label sets from the request instead of copying them.
    pub fn encode_with_series(&self, new_series: &[(SeriesId, &Labels)], out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.varint(new_series.len() as u64);
        for (id, labels) in new_series {
            w.varint(id.0);
            w.varint(labels.len() as u64);
            for (name, value) in labels.iter() {
                w.str(name);
                w.str(value);
            }
        }
        w.varint(self.samples.len() as u64);
        let mut previous_ts = 0i64;
        for (series, ts, value) in &self.samples {
            w.varint(*series);
            w.signed(ts.wrapping_sub(previous_ts));
            previous_ts = *ts;
            w.f64(*value);
        }
        w.varint(self.exemplars.len() as u64);
        for (series, exemplar) in &self.exemplars {
            w.varint(*series);
            w.signed(exemplar.ts_ms);
            w.f64(exemplar.value);
            w.optional_bytes(exemplar.trace_id.as_ref().map(|id| id.0.as_slice()));
            w.optional_bytes(exemplar.span_id.as_ref().map(|id| id.0.as_slice()));
            w.varint(exemplar.labels.len() as u64);
            for (name, value) in &exemplar.labels {
                w.str(name);
                w.str(value);
            }
        }
        w.varint(self.metadata.len() as u64);
        for metadata in &self.metadata {
            w.str(&metadata.metric);
            w.str(metadata.kind.as_str());
            w.str(&metadata.help);
            w.str(&metadata.unit);
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        let mut record = MetricsRecord::default();
        for _ in 0..r.count()? {
            let id = SeriesId(r.varint()?);
            let mut pairs = Vec::new();
            for _ in 0..r.count()? {
                pairs.push((r.str()?, r.str()?));
            }
            let labels = Labels::new(pairs).map_err(|e| Reader::corrupt(&e.to_string()))?;
            record.new_series.push((id, labels));
        }
        let samples = r.count()?;
        record.samples.reserve(samples.min(1 << 20));
        let mut ts = 0i64;
        for _ in 0..samples {
            let series = r.varint()?;
            ts = ts.wrapping_add(r.signed()?);
            record.samples.push((series, ts, r.f64()?));
        }
        for _ in 0..r.count()? {
            let series = r.varint()?;
            let mut exemplar = Exemplar {
                ts_ms: r.signed()?,
                value: r.f64()?,
                ..Exemplar::default()
            };
            exemplar.trace_id = r.optional_bytes(16)?.and_then(TraceId::from_slice);
            exemplar.span_id = r.optional_bytes(8)?.and_then(SpanId::from_slice);
            for _ in 0..r.count()? {
                exemplar.labels.insert(r.str()?, r.str()?);
            }
            record.exemplars.push((series, exemplar));
        }
        for _ in 0..r.count()? {
            record.metadata.push(MetricMetadata {
                metric: r.str()?,
                kind: MetricType::parse(&r.str()?),
                help: r.str()?,
                unit: r.str()?,
            });
        }
        if r.pos != bytes.len() {
            return Err(Reader::corrupt("trailing bytes"));
        }
        Ok(record)
    }
}

/// Appends one batch as an Arrow IPC stream (LZ4-framed buffers) to `out`.
pub(crate) fn encode_batch(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .map_err(|e| Error::arrow("ipc options", e))?;
    let mut writer = StreamWriter::try_new_with_options(out, &batch.schema(), options)
        .map_err(|e| Error::arrow("ipc encode", e))?;
    writer
        .write(batch)
        .map_err(|e| Error::arrow("ipc encode", e))?;
    writer.finish().map_err(|e| Error::arrow("ipc encode", e))?;
    Ok(())
}

/// Decodes the batches of an Arrow IPC stream written by [`encode_batch`].
pub(crate) fn decode_batches(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| Error::arrow("ipc decode", e))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow("ipc decode", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = MetricsRecord> {
        let labels = prop::collection::btree_map("[a-c_]{1,3}", "[x-z0-9]{1,4}", 1..4);
        let series = prop::collection::vec((0u64..1000, labels), 0..4);
        let samples = prop::collection::vec((0u64..1000, any::<i64>(), any::<f64>()), 0..20);
        let exemplars = prop::collection::vec(
            (
                0u64..1000,
                any::<i64>(),
                any::<f64>(),
                any::<Option<[u8; 16]>>(),
                any::<Option<[u8; 8]>>(),
            ),
            0..4,
        );
        (series, samples, exemplars).prop_map(|(series, samples, exemplars)| MetricsRecord {
            new_series: series
                .into_iter()
                .map(|(id, attrs)| (SeriesId(id), Labels::from_metric("m", &attrs).unwrap()))
                .collect(),
            samples,
            exemplars: exemplars
                .into_iter()
                .map(|(s, ts, value, trace, span)| {
                    (
                        s,
                        Exemplar {
                            ts_ms: ts,
                            value,
                            trace_id: trace.map(TraceId),
                            span_id: span.map(SpanId),
                            labels: [("k".to_string(), "v".to_string())].into(),
                        },
                    )
                })
                .collect(),
            metadata: vec![MetricMetadata {
                metric: "m".into(),
                kind: MetricType::Counter,
                help: "help".into(),
                unit: "".into(),
            }],
        })
    }

    fn bits(record: &MetricsRecord) -> Vec<(u64, i64, u64)> {
        record
            .samples
            .iter()
            .map(|(s, t, v)| (*s, *t, v.to_bits()))
            .collect()
    }

    proptest! {
        #[test]
        fn metrics_record_round_trips(record in arb_record()) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            let decoded = MetricsRecord::decode(&bytes).unwrap();
            prop_assert_eq!(bits(&decoded), bits(&record));
            prop_assert_eq!(&decoded.new_series, &record.new_series);
            prop_assert_eq!(decoded.exemplars.len(), record.exemplars.len());
            prop_assert_eq!(&decoded.metadata, &record.metadata);
        }

        #[test]
        fn truncated_records_fail_cleanly(record in arb_record(), cut in 0usize..200) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            if cut < bytes.len() {
                prop_assert!(MetricsRecord::decode(&bytes[..cut]).is_err());
            }
        }
    }
}
