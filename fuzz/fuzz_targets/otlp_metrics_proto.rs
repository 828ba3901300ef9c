//! OTLP metrics export (protobuf) through decode + conversion to Prometheus series.
#![no_main]

use ingest::fuzzing::otlp_metrics;
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_NS, check_metrics_write};

fuzz_target!(|data: &[u8]| {
    let Ok((write, _rejected)) = otlp_metrics(data, false, NOW_NS) else {
        return;
    };
    check_metrics_write(&write, None, None);
});
