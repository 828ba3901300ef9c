//! remote_write 1.0: the zero-copy decoder against prost. Both must accept the same
//! bodies and convert them to the same write (float values compared bit for bit).
#![no_main]

use ingest::fuzzing::{RemoteWrite, remote_write_v1, remote_write_v1_prost};
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::NOW_MS;

/// The write with every float as its bits, so NaN payloads compare too.
fn render(converted: &RemoteWrite) -> String {
    let mut out = format!("{} {}\n", converted.samples, converted.exemplars);
    for series in &converted.write.series {
        out += &format!("{:?}\n", series.labels);
        for sample in &series.samples {
            out += &format!(" {} {:x}\n", sample.ts_ms, sample.value.to_bits());
        }
        for e in &series.exemplars {
            out += &format!(
                " e {} {:x} {:?} {:?} {:?}\n",
                e.ts_ms,
                e.value.to_bits(),
                e.trace_id,
                e.span_id,
                e.labels
            );
        }
    }
    out + &format!("{:?}", converted.write.metadata)
}

fuzz_target!(|data: &[u8]| {
    match (
        remote_write_v1(data, NOW_MS),
        remote_write_v1_prost(data, NOW_MS),
    ) {
        (Ok(fast), Ok(reference)) => assert_eq!(render(&fast), render(&reference)),
        (Err(_), Err(_)) => {}
        (fast, reference) => panic!(
            "decoders disagree: zero-copy {:?}, prost {:?}",
            fast.map(|c| render(&c)),
            reference.map(|c| render(&c))
        ),
    }
});
