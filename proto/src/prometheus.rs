//! Prometheus remote_write wire messages, 1.0 (package `prometheus`) and 2.0
//! (package `io.prometheus.write.v2`), written by hand with prost derives.
//!
//! Field numbers follow `prompb/types.proto`, `prompb/remote.proto` and
//! `prompb/io/prometheus/write/v2/types.proto` (see `PROTOCOLS.md` §2.2, §2.3). Types only:
//! decoding, validation and conversion live in `ingest::remote_write`.

/// remote_write 1.0 (`prometheus.WriteRequest`).
pub mod v1 {
    /// The body of a 1.0 write: series and metadata. Field 2 is reserved.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// The series written, each with its own labels.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Type, help and unit per metric family.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// One series: its labels (with `__name__`) and its samples, exemplars, histograms.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Labels, sorted by name, names unique.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Float samples, in timestamp order.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Exemplars.
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    /// A label pair.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Label name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Label value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// A float sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value (the staleness marker is the NaN `0x7ff0000000000002`).
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// An exemplar: its labels (typically `trace_id`, `span_id`), value and time.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Exemplar labels.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// The value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// Metadata of one metric family.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// The type ([`MetricType`]).
        #[prost(enumeration = "MetricType", tag = "1")]
        pub r#type: i32,
        /// The family name.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Help text.
        #[prost(string, tag = "4")]
        pub help: String,
        /// Unit.
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    /// Metric types of 1.0 metadata.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        /// `UNKNOWN`
        Unknown = 0,
        /// `COUNTER`
        Counter = 1,
        /// `GAUGE`
        Gauge = 2,
        /// `HISTOGRAM`
        Histogram = 3,
        /// `GAUGEHISTOGRAM`
        Gaugehistogram = 4,
        /// `SUMMARY`
        Summary = 5,
        /// `INFO`
        Info = 6,
        /// `STATESET`
        Stateset = 7,
    }

    pub use super::{BucketSpan, Histogram, HistogramCount, HistogramZeroCount};
}

/// remote_write 2.0 (`io.prometheus.write.v2.Request`): strings interned in `symbols`.
pub mod v2 {
    /// The body of a 2.0 write. Fields 1 to 3 are reserved, so a 1.0 body decodes as an
    /// empty 2.0 request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// The symbol table; `symbols[0]` must be `""`.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        /// The series written.
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// One series. Its labels are pairs of indexes into [`Request::symbols`].
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Flat `[name, value, name, value, …]` symbol indexes (even length).
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Float samples, in timestamp order.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        /// Exemplars.
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        /// Type, help and unit of the series' metric.
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// Creation time of a counter/histogram series, ms (released 2.0-rc schema; 0 = unset).
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// A float sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value (the staleness marker is the NaN `0x7ff0000000000002`).
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
        /// Start time of a cumulative series, ms (newer schema; 0 = unset).
        #[prost(int64, tag = "3")]
        pub start_timestamp: i64,
    }

    /// An exemplar with labels as symbol-index pairs.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Flat `[name, value, …]` symbol indexes.
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// The value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// Metadata of a series' metric; help and unit are symbol indexes (0 ⇒ "").
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Metadata {
        /// The type ([`MetricType`]).
        #[prost(enumeration = "MetricType", tag = "1")]
        pub r#type: i32,
        /// Symbol index of the help text.
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        /// Symbol index of the unit.
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }

    /// Metric types of 2.0 metadata (`METRIC_TYPE_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        /// `METRIC_TYPE_UNSPECIFIED`
        Unspecified = 0,
        /// `METRIC_TYPE_COUNTER`
        Counter = 1,
        /// `METRIC_TYPE_GAUGE`
        Gauge = 2,
        /// `METRIC_TYPE_HISTOGRAM`
        Histogram = 3,
        /// `METRIC_TYPE_GAUGEHISTOGRAM`
        Gaugehistogram = 4,
        /// `METRIC_TYPE_SUMMARY`
        Summary = 5,
        /// `METRIC_TYPE_INFO`
        Info = 6,
        /// `METRIC_TYPE_STATESET`
        Stateset = 7,
    }

    pub use super::{BucketSpan, Histogram, HistogramCount, HistogramZeroCount};
}

/// A native histogram sample (same field numbers in 1.0 and 2.0; 2.0 adds field 17).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observation count, integer or float histogram.
    #[prost(oneof = "HistogramCount", tags = "1, 2")]
    pub count: Option<HistogramCount>,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket schema (resolution); -53 means custom buckets.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Width of the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    #[prost(oneof = "HistogramZeroCount", tags = "6, 7")]
    pub zero_count: Option<HistogramZeroCount>,
    /// Negative bucket spans.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Negative bucket counts as deltas (integer histograms).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Positive bucket spans.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Positive bucket counts as deltas (integer histograms).
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// Counter-reset hint (`UNKNOWN`/`YES`/`NO`/`GAUGE` = 0..3).
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Custom bucket bounds (schema -53).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
    /// Start time, ms (2.0, newer schema; 0 = unset).
    #[prost(int64, tag = "17")]
    pub start_timestamp: i64,
}

/// The `count` oneof of [`Histogram`].
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum HistogramCount {
    /// Integer histogram count.
    #[prost(uint64, tag = "1")]
    CountInt(u64),
    /// Float histogram count.
    #[prost(double, tag = "2")]
    CountFloat(f64),
}

/// The `zero_count` oneof of [`Histogram`].
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum HistogramZeroCount {
    /// Integer zero-bucket count.
    #[prost(uint64, tag = "6")]
    ZeroCountInt(u64),
    /// Float zero-bucket count.
    #[prost(double, tag = "7")]
    ZeroCountFloat(f64),
}

/// A run of consecutive buckets after `offset` empty ones.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the start index of the first).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}
