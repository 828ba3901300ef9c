//! OTLP traces export (json) through decode + conversion to span rows.
#![no_main]

use ingest::fuzzing::otlp_traces;
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_NS, check_span};

fuzz_target!(|data: &[u8]| {
    let Ok((request, records, rejected)) = otlp_traces(data, true, NOW_NS) else {
        return;
    };
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(
        records.len() as u64 + rejected,
        total as u64,
        "every span is either kept or counted as rejected"
    );
    for span in &records {
        check_span(span, NOW_NS);
        assert!(!span.span_id.is_zero(), "span kept with a zero span id");
        assert!((0..=2).contains(&span.status_code));
    }
});
