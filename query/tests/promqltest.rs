//! Runs Prometheus' PromQL engine test scripts (`promqltest` DSL, shared/testdata) against
//! our engine over a real `storage::Storage`, prints the pass count per file and fails
//! on a regression below `promqltest_baseline.txt`.
//!
//! Annotation expectations (`expect warn|info|no_warn|no_info`) are not checked; `expect
//! fail` (with `msg:`/`regex:`), `expect ordered`, `expect string` and `expect range
//! vector` are.
#![allow(clippy::print_stderr)]

#[path = "promqltest/runner.rs"]
mod runner;

use std::collections::BTreeMap;
use std::path::PathBuf;

use runner::{FileResult, run_file};

const SKIPPED: &[&str] = &[
    // Native histograms and info() are not supported by the engine.
    "native_histograms.test",
    "info.test",
];

fn testdata() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/promqltest/testdata"
    ))
}

fn baseline() -> BTreeMap<String, usize> {
    let text = include_str!("promqltest_baseline.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promqltest_scripts() {
    let dir = testdata();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("promqltest: {} not found, skipping", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    let only = std::env::var("PROMQLTEST_FILE").ok();
    let verbose = std::env::var("PROMQLTEST_VERBOSE").is_ok();
    let baseline = baseline();
    let mut results: BTreeMap<String, FileResult> = BTreeMap::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let result = run_file(&text, verbose).await;
        let skipped = if SKIPPED.contains(&name.as_str()) {
            " (skipped: not counted)"
        } else {
            ""
        };
        eprintln!(
            "promqltest {name}: {}/{}{skipped}",
            result.passed, result.total
        );
        results.insert(name, result);
    }
    let mut regressions = Vec::new();
    for (name, result) in &results {
        if SKIPPED.contains(&name.as_str()) {
            continue;
        }
        let want = baseline.get(name).copied().unwrap_or(0);
        if result.passed < want {
            regressions.push(format!("{name}: {} < baseline {want}", result.passed));
        }
    }
    let (passed, total) = results
        .iter()
        .filter(|(n, _)| !SKIPPED.contains(&n.as_str()))
        .fold((0, 0), |(p, t), (_, r)| (p + r.passed, t + r.total));
    eprintln!("promqltest total (without skipped files): {passed}/{total}");
    assert!(regressions.is_empty(), "regressions: {regressions:#?}");
}
