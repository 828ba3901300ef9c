//! remote_write 2.0: an uncompressed `io.prometheus.write.v2.Request` through decode + convert + validate.
#![no_main]

use ingest::fuzzing::{max_label_value_length, max_labels_per_series, remote_write_v2};
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_MS, check_metrics_write};

fuzz_target!(|data: &[u8]| {
    let Ok(converted) = remote_write_v2(data, NOW_MS) else {
        return;
    };
    let write = &converted.write;
    check_metrics_write(
        write,
        Some(max_labels_per_series()),
        Some(max_label_value_length()),
    );
    let samples: usize = write.series.iter().map(|s| s.samples.len()).sum();
    let exemplars: usize = write.series.iter().map(|s| s.exemplars.len()).sum();
    assert_eq!(samples, converted.samples, "sample count reported wrongly");
    assert_eq!(
        exemplars, converted.exemplars,
        "exemplar count reported wrongly"
    );
    for series in &write.series {
        for sample in &series.samples {
            assert!(sample.ts_ms <= NOW_MS + 3_600_000, "future sample kept");
        }
    }
});
