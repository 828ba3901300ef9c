//! OTLP logs export (protobuf) through decode + conversion to log rows.
#![no_main]

use ingest::fuzzing::otlp_logs;
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_NS, check_log};

fuzz_target!(|data: &[u8]| {
    let Ok((request, records, rejected)) = otlp_logs(data, false, NOW_NS) else {
        return;
    };
    let total: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert_eq!(
        records.len() as u64 + rejected,
        total as u64,
        "every log record is either kept or counted as rejected"
    );
    for record in &records {
        check_log(record, NOW_NS);
    }
});
