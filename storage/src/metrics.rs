//! The metrics write model: what ingest hands to [`crate::Storage::append_metrics`].

use proto::{SpanId, TraceId};

use crate::model::Attributes;
use crate::series::Labels;

/// One metric sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Sample time, Unix milliseconds.
    pub ts_ms: i64,
    /// Sample value (NaN, ±Inf and the Prometheus staleness marker are kept bit-exact).
    pub value: f64,
}

/// An exemplar: one sample of a series tied to the trace that produced it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exemplar {
    /// Exemplar time, Unix milliseconds.
    pub ts_ms: i64,
    /// Exemplar value.
    pub value: f64,
    /// The trace the exemplar points to.
    pub trace_id: Option<TraceId>,
    /// The span the exemplar points to.
    pub span_id: Option<SpanId>,
    /// Other exemplar labels.
    pub labels: Attributes,
}

/// Samples and exemplars of one series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesWrite {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// Its samples, in any order.
    pub samples: Vec<Sample>,
    /// Its exemplars.
    pub exemplars: Vec<Exemplar>,
}

/// The type of a metric, as Prometheus metadata names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `gaugehistogram`
    GaugeHistogram,
    /// `summary`
    Summary,
    /// `info`
    Info,
    /// `stateset`
    StateSet,
    /// `unknown`
    #[default]
    Unknown,
}

impl MetricType {
    /// Returns the Prometheus name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// Parses a Prometheus type name; anything else is `Unknown`.
    pub fn parse(text: &str) -> Self {
        match text {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }
}

/// Type, help and unit of one metric name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricMetadata {
    /// The metric family name.
    pub metric: String,
    /// Its type.
    pub kind: MetricType,
    /// Its help text.
    pub help: String,
    /// Its unit.
    pub unit: String,
}

/// One metrics write: series with samples and exemplars, plus metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsWrite {
    /// The series written.
    pub series: Vec<SeriesWrite>,
    /// Metadata updates.
    pub metadata: Vec<MetricMetadata>,
}

impl MetricsWrite {
    /// Number of samples in the write.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}
