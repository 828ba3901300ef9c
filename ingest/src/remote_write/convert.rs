//! remote_write 1.0 and 2.0 messages → one validated [`MetricsWrite`].
//!
//! The whole request is validated before anything is returned, so a rejected request
//! stores nothing. Samples of the same series inside one request are grouped into one
//! [`SeriesWrite`]. Native histograms are not stored yet: they are counted and skipped.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use proto::prometheus::{v1, v2};
use proto::{SpanId, TraceId};
use storage::metrics::{Exemplar, MetricMetadata, MetricType, MetricsWrite, Sample, SeriesWrite};
use storage::model::Attributes;
use storage::series::{Labels, METRIC_NAME_LABEL};

use super::cache::{LabelCache, PassThrough};
use super::decode::{WireFields, decode_message};
use super::wire::{self, Fields, RECURSION_LIMIT, SeriesV1, WireError};
use crate::{Config, Error, Result};

/// How far ahead of the server clock a timestamp may be.
pub(crate) const MAX_FUTURE_MS: i64 = 60 * 60 * 1000;

/// Exemplar label holding the trace id.
const TRACE_ID_LABEL: &str = "trace_id";
/// Exemplar label holding the span id.
const SPAN_ID_LABEL: &str = "span_id";

/// Limits applied to every series of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most labels per series.
    pub max_labels: usize,
    /// Longest label value, bytes.
    pub max_value_length: usize,
    /// Latest timestamp accepted, Unix ms.
    pub max_timestamp_ms: i64,
}

impl Limits {
    /// The configured limits, with the clock at `now_ms`.
    pub(crate) fn new(config: &Config, now_ms: i64) -> Self {
        Limits {
            max_labels: config.max_labels_per_series,
            max_value_length: config.max_label_value_length,
            max_timestamp_ms: now_ms.saturating_add(MAX_FUTURE_MS),
        }
    }
}

/// A converted request and what it held.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    /// What goes to storage.
    pub write: MetricsWrite,
    /// Samples in `write`.
    pub samples: usize,
    /// Exemplars in `write`.
    pub exemplars: usize,
    /// Native histogram samples skipped (not supported yet).
    pub skipped_histograms: usize,
    /// Label sets to give (back) to the cache once the write is stored:
    /// (position in `write.series`, cache key).
    pub cached: Vec<(usize, u128)>,
}

/// Accumulates series, grouping repeated label sets without cloning them.
struct Builder {
    limits: Limits,
    converted: Converted,
    /// Label-set hash → index of the first series with that hash.
    first_by_hash: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
    /// Per series, the next series with the same hash (`usize::MAX` ends the chain).
    next_same_hash: Vec<usize>,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            converted: Converted::default(),
            first_by_hash: HashMap::default(),
            next_same_hash: Vec::new(),
        }
    }

    /// Validates raw label pairs and builds the label set of series `index`.
    fn labels(&self, index: usize, pairs: Vec<(String, String)>) -> Result<Labels> {
        check_pairs(&self.limits, "series", index, &pairs)?;
        self.checked_labels(index, pairs)
    }

    /// Builds the label set of series `index` from pairs that passed [`check_pairs`].
    fn checked_labels(&self, index: usize, pairs: Vec<(String, String)>) -> Result<Labels> {
        let labels =
            Labels::new(pairs).map_err(|e| Error::BadRequest(format!("series {index}: {e}")))?;
        if labels.metric_name().is_empty() {
            return Err(Error::BadRequest(format!(
                "series {index} has no {METRIC_NAME_LABEL} label"
            )));
        }
        Ok(labels)
    }

    fn check_timestamp(&self, index: usize, what: &str, ts_ms: i64) -> Result<()> {
        if ts_ms > self.limits.max_timestamp_ms {
            return Err(Error::BadRequest(format!(
                "{what} timestamp {ts_ms} of series {index} is more than 1h in the future"
            )));
        }
        Ok(())
    }

    /// The low half of the label set's fingerprint (remembered by the label set, so a
    /// cached one is not hashed again): groups a request's series.
    fn canonical_hash(&self, labels: &Labels) -> u64 {
        labels.fingerprint() as u64
    }

    /// Adds samples and exemplars to the series with `labels`, creating it if new.
    fn push(&mut self, labels: Labels, samples: Vec<Sample>, exemplars: Vec<Exemplar>) {
        let hash = self.canonical_hash(&labels);
        self.push_hashed(labels, hash, samples, exemplars);
    }

    /// [`Builder::push`] with the grouping hash known; returns the position of the
    /// series when this created it.
    fn push_hashed(
        &mut self,
        labels: Labels,
        hash: u64,
        samples: Vec<Sample>,
        exemplars: Vec<Exemplar>,
    ) -> Option<usize> {
        self.converted.samples += samples.len();
        self.converted.exemplars += exemplars.len();
        if samples.is_empty() && exemplars.is_empty() {
            return None;
        }
        let series = &mut self.converted.write.series;
        let mut cursor = self.first_by_hash.get(&hash).copied().unwrap_or(usize::MAX);
        let mut last = usize::MAX;
        while let Some(existing) = series.get_mut(cursor) {
            if existing.labels == labels {
                existing.samples.extend(samples);
                existing.exemplars.extend(exemplars);
                return None;
            }
            last = cursor;
            cursor = self
                .next_same_hash
                .get(cursor)
                .copied()
                .unwrap_or(usize::MAX);
        }
        let position = series.len();
        series.push(SeriesWrite {
            labels,
            samples,
            exemplars,
        });
        self.next_same_hash.push(usize::MAX);
        match self.next_same_hash.get_mut(last) {
            Some(link) => *link = position,
            None => {
                self.first_by_hash.insert(hash, position);
            }
        }
        Some(position)
    }
}

/// Checks count, names and value lengths of raw label pairs.
pub(crate) fn check_pairs<N: AsRef<str>, V: AsRef<str>>(
    limits: &Limits,
    what: &str,
    index: usize,
    pairs: &[(N, V)],
) -> Result<()> {
    if pairs.len() > limits.max_labels {
        return Err(Error::BadRequest(format!(
            "{what} {index} has {} labels, over the limit of {}",
            pairs.len(),
            limits.max_labels
        )));
    }
    for (name, value) in pairs {
        let (name, value): (&str, &str) = (name.as_ref(), value.as_ref());
        if name.is_empty() {
            return Err(Error::BadRequest(format!(
                "{what} {index} has a label with an empty name"
            )));
        }
        if value.len() > limits.max_value_length {
            return Err(Error::BadRequest(format!(
                "label {name:?} of {what} {index} has a value of {} bytes, over the limit of {}",
                value.len(),
                limits.max_value_length
            )));
        }
    }
    Ok(())
}

/// Builds an exemplar: `trace_id`/`span_id` become ids when they parse, other labels stay.
pub(crate) fn exemplar(
    limits: &Limits,
    index: usize,
    pairs: Vec<(String, String)>,
    value: f64,
    ts_ms: i64,
) -> Result<Exemplar> {
    check_pairs(limits, "exemplar of series", index, &pairs)?;
    if ts_ms > limits.max_timestamp_ms {
        return Err(Error::BadRequest(format!(
            "exemplar timestamp {ts_ms} of series {index} is more than 1h in the future"
        )));
    }
    let mut out = Exemplar {
        ts_ms,
        value,
        ..Exemplar::default()
    };
    let mut labels = Attributes::new();
    for (name, label_value) in pairs {
        match name.as_str() {
            TRACE_ID_LABEL if out.trace_id.is_none() => {
                if let Ok(id) = TraceId::parse_lenient(&label_value) {
                    out.trace_id = Some(id);
                    continue;
                }
            }
            SPAN_ID_LABEL if out.span_id.is_none() => {
                if let Ok(id) = label_value.parse::<SpanId>() {
                    out.span_id = Some(id);
                    continue;
                }
            }
            _ => {}
        }
        if labels.insert(name.clone(), label_value).is_some() {
            return Err(Error::BadRequest(format!(
                "exemplar of series {index} has duplicate label name {name:?}"
            )));
        }
    }
    out.labels = labels;
    Ok(out)
}

fn metric_type_v1(value: i32) -> MetricType {
    match v1::MetricType::try_from(value) {
        Ok(v1::MetricType::Counter) => MetricType::Counter,
        Ok(v1::MetricType::Gauge) => MetricType::Gauge,
        Ok(v1::MetricType::Histogram) => MetricType::Histogram,
        Ok(v1::MetricType::Gaugehistogram) => MetricType::GaugeHistogram,
        Ok(v1::MetricType::Summary) => MetricType::Summary,
        Ok(v1::MetricType::Info) => MetricType::Info,
        Ok(v1::MetricType::Stateset) => MetricType::StateSet,
        Ok(v1::MetricType::Unknown) | Err(_) => MetricType::Unknown,
    }
}

fn metric_type_v2(value: i32) -> MetricType {
    match v2::MetricType::try_from(value) {
        Ok(v2::MetricType::Counter) => MetricType::Counter,
        Ok(v2::MetricType::Gauge) => MetricType::Gauge,
        Ok(v2::MetricType::Histogram) => MetricType::Histogram,
        Ok(v2::MetricType::Gaugehistogram) => MetricType::GaugeHistogram,
        Ok(v2::MetricType::Summary) => MetricType::Summary,
        Ok(v2::MetricType::Info) => MetricType::Info,
        Ok(v2::MetricType::Stateset) => MetricType::StateSet,
        Ok(v2::MetricType::Unspecified) | Err(_) => MetricType::Unknown,
    }
}

fn wrong_wire_type(number: u32) -> Error {
    Error::BadRequest(format!(
        "invalid remote write protobuf: field {number} is not length-delimited"
    ))
}

/// Wraps a wire error of the top-level message.
fn malformed(error: WireError) -> Error {
    Error::BadRequest(format!("invalid remote write protobuf: {error}"))
}

/// Converts a 1.0 `WriteRequest` body with the zero-copy reader ([`super::wire`]):
/// labels are borrowed from `body` and copied once, into the series' label set.
/// Accepts and produces exactly what [`convert_v1_prost`] does.
pub(crate) fn convert_v1(body: &[u8], limits: Limits) -> Result<Converted> {
    convert_v1_cached(body, limits, None)
}

/// [`convert_v1`], taking the label sets of known series from `cache` (see
/// [`super::cache`]); give them back with [`give_back`] once the write is stored.
pub(crate) fn convert_v1_cached(
    body: &[u8],
    limits: Limits,
    cache: Option<&LabelCache>,
) -> Result<Converted> {
    let mut builder = Builder::new(limits);
    let mut metadata = Vec::new();
    let mut index = 0;
    let mut series = SeriesV1::default();
    let mut fields = Fields::new(body, RECURSION_LIMIT);
    while let Some((number, value)) = fields.next_field().map_err(malformed)? {
        match number {
            1 => {
                let payload = value.bytes(1).map_err(|_| wrong_wire_type(1))?;
                let budget = fields.nested_budget().map_err(malformed)?;
                series.read(payload, budget).map_err(|e| {
                    Error::BadRequest(format!(
                        "invalid remote write protobuf in series {index}: {e}"
                    ))
                })?;
                builder.add_borrowed_v1(index, &mut series, cache)?;
                index += 1;
            }
            3 => {
                let payload = value.bytes(3).map_err(|_| wrong_wire_type(3))?;
                let budget = fields.nested_budget().map_err(malformed)?;
                let entry = wire::metadata(payload, budget).map_err(|e| {
                    Error::BadRequest(format!(
                        "invalid remote write protobuf in metadata {}: {e}",
                        metadata.len()
                    ))
                })?;
                if !entry.family.is_empty() {
                    metadata.push(MetricMetadata {
                        kind: metric_type_v1(entry.kind),
                        metric: entry.family.to_owned(),
                        help: entry.help.to_owned(),
                        unit: entry.unit.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    let mut converted = builder.converted;
    converted.write.metadata = metadata;
    Ok(converted)
}

/// Converts a 1.0 `WriteRequest` body by decoding each series with prost: the
/// reference that [`convert_v1`] is tested (and fuzzed) against.
pub(crate) fn convert_v1_prost(body: &[u8], limits: Limits) -> Result<Converted> {
    use prost::Message;
    let request = v1::WriteRequest::decode(body)
        .map_err(|e| Error::BadRequest(format!("invalid remote write protobuf: {e}")))?;
    let mut builder = Builder::new(limits);
    for (index, series) in request.timeseries.into_iter().enumerate() {
        builder.add_v1(index, series)?;
    }
    let mut converted = builder.converted;
    converted.write.metadata = request
        .metadata
        .into_iter()
        .filter(|entry| !entry.metric_family_name.is_empty())
        .map(|entry| MetricMetadata {
            kind: metric_type_v1(entry.r#type),
            metric: entry.metric_family_name,
            help: entry.help,
            unit: entry.unit,
        })
        .collect();
    Ok(converted)
}

impl Builder {
    fn add_borrowed_v1(
        &mut self,
        index: usize,
        series: &mut SeriesV1<'_>,
        cache: Option<&LabelCache>,
    ) -> Result<()> {
        // The limits the label set was validated under are part of its key.
        let seed = self.limits.max_labels as u64 ^ ((self.limits.max_value_length as u64) << 32);
        let key = cache
            .and(series.raw_labels)
            .map(|raw| xxhash_rust::xxh3::xxh3_128_with_seed(raw, seed));
        let lent = match (cache, key) {
            (Some(cache), Some(key)) => cache.take(key),
            _ => None,
        };
        let (labels, hash) = match lent {
            Some(labels) => {
                let hash = self.canonical_hash(&labels);
                (labels, hash)
            }
            None => {
                // Not cached: the labels are read (and checked) only now.
                series.parse_labels().map_err(|e| {
                    Error::BadRequest(format!(
                        "invalid remote write protobuf in series {index}: {e}"
                    ))
                })?;
                check_pairs(&self.limits, "series", index, &series.labels)?;
                let pairs = series
                    .labels
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect();
                let labels = self.checked_labels(index, pairs)?;
                let hash = self.canonical_hash(&labels);
                (labels, hash)
            }
        };
        let mut samples = Vec::with_capacity(series.samples.len());
        for &(value, ts_ms) in &series.samples {
            self.check_timestamp(index, "sample", ts_ms)?;
            samples.push(Sample { ts_ms, value });
        }
        let mut exemplars = Vec::with_capacity(series.exemplars.len());
        for raw in &series.exemplars {
            let pairs = raw
                .labels
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            exemplars.push(exemplar(
                &self.limits,
                index,
                pairs,
                raw.value,
                raw.timestamp,
            )?);
        }
        self.converted.skipped_histograms += series.histograms;
        if let (Some(position), Some(key)) =
            (self.push_hashed(labels, hash, samples, exemplars), key)
        {
            self.converted.cached.push((position, key));
        }
        Ok(())
    }

    fn add_v1(&mut self, index: usize, series: v1::TimeSeries) -> Result<()> {
        let pairs = series
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        let labels = self.labels(index, pairs)?;
        let mut samples = Vec::with_capacity(series.samples.len());
        for sample in &series.samples {
            self.check_timestamp(index, "sample", sample.timestamp)?;
            samples.push(Sample {
                ts_ms: sample.timestamp,
                value: sample.value,
            });
        }
        let mut exemplars = Vec::with_capacity(series.exemplars.len());
        for raw in series.exemplars {
            let pairs = raw.labels.into_iter().map(|l| (l.name, l.value)).collect();
            exemplars.push(exemplar(
                &self.limits,
                index,
                pairs,
                raw.value,
                raw.timestamp,
            )?);
        }
        self.converted.skipped_histograms += series.histograms.len();
        self.push(labels, samples, exemplars);
        Ok(())
    }
}

/// Resolves a symbol reference; out of range is a 400.
fn symbol<'a>(symbols: &[&'a str], index: usize, reference: u32) -> Result<&'a str> {
    symbols.get(reference as usize).copied().ok_or_else(|| {
        Error::BadRequest(format!(
            "series {index} refers to symbol {reference}, but the table has {} symbols",
            symbols.len()
        ))
    })
}

/// Resolves flat `[name, value, …]` references into owned label pairs.
fn resolve_pairs(symbols: &[&str], index: usize, refs: &[u32]) -> Result<Vec<(String, String)>> {
    if !refs.len().is_multiple_of(2) {
        return Err(Error::BadRequest(format!(
            "series {index} has an odd number of label references ({})",
            refs.len()
        )));
    }
    refs.chunks_exact(2)
        .map(|pair| {
            Ok((
                symbol(symbols, index, pair[0])?.to_string(),
                symbol(symbols, index, pair[1])?.to_string(),
            ))
        })
        .collect()
}

/// Converts a 2.0 `Request` body: the symbol table first (borrowed from the body, not
/// copied), then one series at a time, every reference checked against the table.
pub(crate) fn convert_v2(body: &[u8], limits: Limits) -> Result<Converted> {
    let mut symbols: Vec<&str> = Vec::new();
    for field in WireFields::new(body) {
        match field? {
            (4, Some(payload)) => {
                let text = std::str::from_utf8(payload).map_err(|_| {
                    Error::BadRequest(format!("symbol {} is not valid UTF-8", symbols.len()))
                })?;
                symbols.push(text);
            }
            (number @ (4 | 5), None) => return Err(wrong_wire_type(number)),
            _ => {}
        }
    }
    if symbols.first().is_some_and(|first| !first.is_empty()) {
        return Err(Error::BadRequest(
            "symbols[0] must be the empty string".to_string(),
        ));
    }
    let mut builder = Builder::new(limits);
    let mut metadata = Vec::new();
    let mut seen_metadata = HashSet::new();
    let mut index = 0;
    for field in WireFields::new(body) {
        let (5, Some(payload)) = field? else {
            continue;
        };
        let series: v2::TimeSeries = decode_message(payload, "series", index)?;
        let labels = builder.labels(index, resolve_pairs(&symbols, index, &series.labels_refs)?)?;
        let mut samples = Vec::with_capacity(series.samples.len());
        for sample in &series.samples {
            builder.check_timestamp(index, "sample", sample.timestamp)?;
            samples.push(Sample {
                ts_ms: sample.timestamp,
                value: sample.value,
            });
        }
        let mut exemplars = Vec::with_capacity(series.exemplars.len());
        for raw in &series.exemplars {
            let pairs = resolve_pairs(&symbols, index, &raw.labels_refs)?;
            exemplars.push(exemplar(&limits, index, pairs, raw.value, raw.timestamp)?);
        }
        if let Some(meta) = series.metadata {
            let help = symbol(&symbols, index, meta.help_ref)?;
            let unit = symbol(&symbols, index, meta.unit_ref)?;
            let known = meta.r#type != 0 || !help.is_empty() || !unit.is_empty();
            let name = labels.metric_name();
            // The same name, type, help and unit repeat on every series of a family.
            if known
                && seen_metadata.insert((
                    name.to_string(),
                    meta.r#type,
                    meta.help_ref,
                    meta.unit_ref,
                ))
            {
                metadata.push(MetricMetadata {
                    metric: name.to_string(),
                    kind: metric_type_v2(meta.r#type),
                    help: help.to_string(),
                    unit: unit.to_string(),
                });
            }
        }
        builder.converted.skipped_histograms += series.histograms.len();
        builder.push(labels, samples, exemplars);
        index += 1;
    }
    let mut converted = builder.converted;
    converted.write.metadata = metadata;
    Ok(converted)
}

/// Gives the label sets a conversion took from (or built for) `cache` back to it.
pub(crate) fn give_back(cache: &LabelCache, converted: &mut Converted) {
    for (position, key) in converted.cached.drain(..) {
        if let Some(series) = converted.write.series.get_mut(position) {
            cache.put(key, std::mem::take(&mut series.labels));
        }
    }
}
