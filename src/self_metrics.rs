//! The server's own metrics in the Prometheus text exposition format (version 0.0.4).
//!
//! Every metric is declared once below as a [`Metric`] constant; nothing else spells
//! a metric name. Storage figures come from `storage::StorageStats`, destructured
//! exhaustively so that a new field there fails to compile here until it is exported.

use std::fmt::{Display, Write as _};
use std::time::Duration;

use proto::Signal;
use storage::StorageStats;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its name, help text and type.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Full metric name, `sightline_` prefixed (or `process_` for the standard process metrics).
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl Metric {
    const fn counter(name: &'static str, help: &'static str) -> Self {
        Metric {
            name,
            help,
            kind: Kind::Counter,
        }
    }

    const fn gauge(name: &'static str, help: &'static str) -> Self {
        Metric {
            name,
            help,
            kind: Kind::Gauge,
        }
    }
}

/// Always 1; the labels carry the build.
pub const BUILD_INFO: Metric = Metric::gauge(
    "sightline_build_info",
    "Build information of the running server, always 1.",
);
/// Seconds since the server started.
pub const UPTIME_SECONDS: Metric = Metric::gauge(
    "sightline_uptime_seconds",
    "Seconds since the server started.",
);
/// 1 once storage has opened and the server accepts writes and queries.
pub const READY: Metric = Metric::gauge(
    "sightline_ready",
    "1 once storage has opened (WAL replayed) and the server accepts writes and queries, else 0.",
);
/// Resident set size of the process (standard Prometheus process metric name).
pub const RESIDENT_MEMORY_BYTES: Metric = Metric::gauge(
    "process_resident_memory_bytes",
    "Resident memory size of the server process in bytes.",
);
/// `StorageStats::wal_bytes_written`.
pub const WAL_WRITTEN_BYTES: Metric = Metric::counter(
    "sightline_wal_written_bytes_total",
    "Bytes appended to the write-ahead log since start.",
);
/// `StorageStats::wal_fsyncs`.
pub const WAL_FSYNCS: Metric = Metric::counter(
    "sightline_wal_fsyncs_total",
    "fsync calls made by the write-ahead log writer since start.",
);
/// `StorageStats::wal_records`.
pub const WAL_RECORDS: Metric = Metric::counter(
    "sightline_wal_records_total",
    "Records appended to the write-ahead log since start.",
);
/// `StorageStats::memtable_bytes`.
pub const MEMTABLE_BYTES: Metric = Metric::gauge(
    "sightline_memtable_bytes",
    "Bytes held in memtables, active and being flushed.",
);
/// `StorageStats::series`.
pub const SERIES: Metric = Metric::gauge(
    "sightline_series",
    "Metric series known to storage, over all tenants.",
);
/// `StorageStats::segments`.
pub const SEGMENTS: Metric =
    Metric::gauge("sightline_segments", "Segments in the storage manifest.");
/// `StorageStats::segment_bytes`.
pub const SEGMENT_BYTES: Metric = Metric::gauge(
    "sightline_segment_bytes",
    "Bytes of the segments in the storage manifest.",
);
/// `StorageStats::flushes`.
pub const FLUSHES: Metric = Metric::counter(
    "sightline_flushes_total",
    "Memtable flushes completed since start.",
);
/// `StorageStats::compactions`.
pub const COMPACTIONS: Metric = Metric::counter(
    "sightline_compactions_total",
    "Segment compactions completed since start.",
);
/// `StorageStats::retention_deleted_segments`.
pub const RETENTION_DELETED_SEGMENTS: Metric = Metric::counter(
    "sightline_retention_deleted_segments_total",
    "Segments deleted by retention since start.",
);
/// `StorageStats::backpressure_rejections`.
pub const BACKPRESSURE_REJECTIONS: Metric = Metric::counter(
    "sightline_backpressure_rejections_total",
    "Writes refused because memtables were over the memory limit, since start.",
);
/// `StorageStats::appended_rows`, labelled by `signal`.
pub const STORAGE_APPENDED_ROWS: Metric = Metric::counter(
    "sightline_storage_appended_rows_total",
    "Rows appended to storage since start, by signal (metric samples, log records, spans).",
);
/// `StorageStats::fanout.ingesters`.
pub const FANOUT_INGESTERS: Metric = Metric::gauge(
    "sightline_fanout_ingesters",
    "Ingesters a querier asks for rows they have not flushed yet.",
);
/// `StorageStats::fanout.requests`.
pub const FANOUT_REQUESTS: Metric = Metric::counter(
    "sightline_fanout_requests_total",
    "Requests a querier made to ingesters for unflushed rows, since start.",
);
/// `StorageStats::fanout.partial`.
pub const FANOUT_PARTIAL: Metric = Metric::counter(
    "sightline_fanout_partial_total",
    "Reads answered without some ingester's unflushed rows (timeout, error, or rows it no longer held), since start.",
);

/// Rows acknowledged by ingest, labelled by `protocol` (ARCHITECTURE.md public contract).
pub const INGESTED_SAMPLES: Metric = Metric::counter(
    "sightline_ingested_samples_total",
    "Metric samples acknowledged (durable) since start, by write protocol.",
);
/// Log records acknowledged by ingest, labelled by `protocol`.
pub const INGESTED_LOG_RECORDS: Metric = Metric::counter(
    "sightline_ingested_log_records_total",
    "Log records acknowledged (durable) since start, by write protocol.",
);
/// Spans acknowledged by ingest, labelled by `protocol`.
pub const INGESTED_SPANS: Metric = Metric::counter(
    "sightline_ingested_spans_total",
    "Spans acknowledged (durable) since start, by write protocol.",
);

/// What one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Time since the server started.
    pub uptime: Duration,
    /// Whether `/ready` answers 200.
    pub ready: bool,
    /// Storage counters, once storage has opened.
    pub storage: Option<StorageStats>,
    /// Resident memory of the process, where the platform tells it.
    pub resident_memory_bytes: Option<u64>,
    /// Acknowledged rows per signal and protocol.
    pub ingested: Vec<(Signal, ingest::Protocol, u64)>,
}

/// Renders a snapshot in the Prometheus text format.
pub fn render(snapshot: &Snapshot) -> String {
    let mut exposition = Exposition::default();
    exposition.labelled(&BUILD_INFO, "version", [(env!("CARGO_PKG_VERSION"), 1)]);
    exposition.single(&UPTIME_SECONDS, snapshot.uptime.as_secs_f64());
    exposition.single(&READY, u8::from(snapshot.ready));
    if let Some(bytes) = snapshot.resident_memory_bytes {
        exposition.single(&RESIDENT_MEMORY_BYTES, bytes);
    }
    for (metric, signal) in [
        (&INGESTED_SAMPLES, Signal::Metrics),
        (&INGESTED_LOG_RECORDS, Signal::Logs),
        (&INGESTED_SPANS, Signal::Spans),
    ] {
        let rows = snapshot
            .ingested
            .iter()
            .filter(|(s, _, _)| *s == signal)
            .map(|(_, protocol, rows)| (protocol.as_str(), *rows));
        exposition.labelled(metric, "protocol", rows);
    }
    if let Some(stats) = &snapshot.storage {
        write_storage_stats(&mut exposition, stats);
    }
    exposition.text
}

fn write_storage_stats(exposition: &mut Exposition, stats: &StorageStats) {
    // Exhaustive on purpose: a field added to StorageStats must be exported here.
    let StorageStats {
        wal_bytes_written,
        wal_fsyncs,
        wal_records,
        memtable_bytes,
        series,
        segments,
        segment_bytes,
        flushes,
        compactions,
        retention_deleted_segments,
        backpressure_rejections,
        appended_rows,
        fanout,
    } = stats;
    exposition.single(&WAL_WRITTEN_BYTES, wal_bytes_written);
    exposition.single(&WAL_FSYNCS, wal_fsyncs);
    exposition.single(&WAL_RECORDS, wal_records);
    exposition.single(&MEMTABLE_BYTES, memtable_bytes);
    exposition.single(&SERIES, series);
    exposition.single(&SEGMENTS, segments);
    exposition.single(&SEGMENT_BYTES, segment_bytes);
    exposition.single(&FLUSHES, flushes);
    exposition.single(&COMPACTIONS, compactions);
    exposition.single(&RETENTION_DELETED_SEGMENTS, retention_deleted_segments);
    exposition.single(&BACKPRESSURE_REJECTIONS, backpressure_rejections);
    exposition.single(&FANOUT_INGESTERS, fanout.ingesters);
    exposition.single(&FANOUT_REQUESTS, fanout.requests);
    exposition.single(&FANOUT_PARTIAL, fanout.partial);
    exposition.labelled(
        &STORAGE_APPENDED_ROWS,
        "signal",
        Signal::ALL
            .iter()
            .zip(appended_rows)
            .map(|(signal, rows)| (signal.as_str(), rows)),
    );
}

/// Reads the resident set size from `/proc/self/status` (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, metric: &Metric) {
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(self.text, "# TYPE {} {kind}", metric.name);
    }

    fn single(&mut self, metric: &Metric, value: impl Display) {
        self.header(metric);
        let _ = writeln!(self.text, "{} {value}", metric.name);
    }

    fn labelled<'a, V: Display>(
        &mut self,
        metric: &Metric,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, V)>,
    ) {
        self.header(metric);
        for (label_value, value) in samples {
            let _ = writeln!(
                self.text,
                "{}{{{label}=\"{}\"}} {value}",
                metric.name,
                escape_label_value(label_value)
            );
        }
    }
}

/// Escapes a label value as the text format requires: backslash, double quote, newline.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_stat_is_exported() {
        let snapshot = Snapshot {
            uptime: Duration::from_millis(1500),
            ready: true,
            storage: Some(StorageStats {
                wal_bytes_written: 4096,
                appended_rows: [10, 20, 30],
                ..StorageStats::default()
            }),
            resident_memory_bytes: Some(1 << 20),
            ingested: vec![(Signal::Spans, ingest::Protocol::Zipkin, 7)],
        };
        let text = render(&snapshot);
        for metric in [
            WAL_WRITTEN_BYTES,
            WAL_FSYNCS,
            WAL_RECORDS,
            MEMTABLE_BYTES,
            SERIES,
            SEGMENTS,
            SEGMENT_BYTES,
            FLUSHES,
            COMPACTIONS,
            RETENTION_DELETED_SEGMENTS,
            BACKPRESSURE_REJECTIONS,
            STORAGE_APPENDED_ROWS,
            FANOUT_INGESTERS,
            FANOUT_REQUESTS,
            FANOUT_PARTIAL,
        ] {
            assert!(text.contains(&format!("# TYPE {} ", metric.name)), "{text}");
        }
        assert!(text.contains("sightline_wal_written_bytes_total 4096\n"));
        assert!(text.contains("sightline_storage_appended_rows_total{signal=\"logs\"} 20\n"));
        assert!(text.contains("sightline_uptime_seconds 1.5\n"));
        assert!(text.contains("sightline_ready 1\n"));
        assert!(text.contains("process_resident_memory_bytes 1048576\n"));
        assert!(
            text.contains("sightline_ingested_spans_total{protocol=\"zipkin\"} 7\n"),
            "{text}"
        );
    }

    #[test]
    fn storage_stats_are_left_out_until_storage_opens() {
        let text = render(&Snapshot::default());
        assert!(text.contains("sightline_ready 0\n"));
        assert!(text.contains("sightline_build_info{version=\""));
        assert!(!text.contains(WAL_RECORDS.name));
    }

    #[test]
    fn counters_end_in_total_and_names_are_unique() {
        let all = [
            BUILD_INFO,
            UPTIME_SECONDS,
            READY,
            RESIDENT_MEMORY_BYTES,
            WAL_WRITTEN_BYTES,
            WAL_FSYNCS,
            WAL_RECORDS,
            MEMTABLE_BYTES,
            SERIES,
            SEGMENTS,
            SEGMENT_BYTES,
            FLUSHES,
            COMPACTIONS,
            RETENTION_DELETED_SEGMENTS,
            BACKPRESSURE_REJECTIONS,
            STORAGE_APPENDED_ROWS,
        ];
        let mut names: Vec<_> = all.iter().map(|metric| metric.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for metric in all {
            let is_counter = matches!(metric.kind, Kind::Counter);
            assert_eq!(
                metric.name.ends_with("_total"),
                is_counter,
                "{}",
                metric.name
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
