//! Loki push (json, already decompressed) through decode + mapping to log rows.
#![no_main]

use ingest::fuzzing::{loki_json, loki_stream_to_records};
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_NS, is_label_name};

fuzz_target!(|data: &[u8]| {
    let Ok(streams) = loki_json(data) else {
        return;
    };
    let mut records = Vec::new();
    let mut entries = 0;
    for stream in streams {
        assert!(!stream.labels.is_empty(), "stream accepted without labels");
        for (name, _) in &stream.labels {
            assert!(
                is_label_name(name),
                "invalid stream label name {name:?} accepted"
            );
        }
        entries += stream.entries.len();
        loki_stream_to_records(stream, NOW_NS, &mut records);
    }
    assert_eq!(records.len(), entries, "one log row per entry");
    for record in &records {
        assert!(!record.service.is_empty(), "log row without a service");
        if let Some(trace) = &record.trace_id {
            assert!(!trace.is_zero(), "log row with a zero trace id");
        }
    }
});
