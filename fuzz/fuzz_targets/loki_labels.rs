//! Loki's stream label text (`{name="value", …}`): parse, then print and parse again.
#![no_main]

use ingest::fuzzing::loki_labels;
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::is_label_name;

/// Prints pairs back as a selector, with the escapes the parser understands.
fn print(pairs: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pairs) = loki_labels(text) else {
        return;
    };
    for (name, _) in &pairs {
        assert!(is_label_name(name), "invalid label name {name:?} accepted");
    }
    let printed = print(&pairs);
    let again = loki_labels(&printed)
        .unwrap_or_else(|e| panic!("printed labels {printed:?} do not parse again: {e}"));
    assert_eq!(again, pairs, "labels changed through print + parse");
});
