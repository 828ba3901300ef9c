//! Elasticsearch `_bulk` NDJSON: first byte picks whether the path names an index.
#![no_main]

use ingest::fuzzing::es_bulk;
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::{NOW_NS, check_log};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let default_index = (selector & 1 == 1).then_some("logs-fuzz");
    let Ok(parsed) = es_bulk(body, default_index, NOW_NS) else {
        return;
    };
    assert!(!parsed.items.is_empty(), "a parsed bulk request has items");
    let mut next = 0;
    for item in &parsed.items {
        assert!(
            matches!(
                item.action.as_str(),
                "index" | "create" | "delete" | "update"
            ),
            "unknown action {:?} reported",
            item.action
        );
        if let Ok(position) = item.outcome {
            assert_eq!(position, next, "accepted items map to records in order");
            next += 1;
            assert!(!item.id.is_empty(), "accepted item without an id");
        }
    }
    assert_eq!(next, parsed.records.len(), "one record per accepted item");
    for record in &parsed.records {
        check_log(record, NOW_NS);
    }
});
