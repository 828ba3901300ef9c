//! Zipkin v2 spans (proto) through decode + mapping to span rows.
#![no_main]

use ingest::fuzzing::zipkin_spans;
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_NS, check_span};

fuzz_target!(|data: &[u8]| {
    let Ok(records) = zipkin_spans("application/x-protobuf", data, NOW_NS) else {
        return;
    };
    for span in &records {
        check_span(span, NOW_NS);
        assert!(!span.service.is_empty(), "span kept without a service");
    }
});
