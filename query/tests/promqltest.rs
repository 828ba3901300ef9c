//! Runs Prometheus' PromQL engine test scripts (`promqltest` DSL, shared/testdata) against
//! our engine over a real `storage::Storage`, prints the pass count per file and fails
//! on a regression below `promqltest_baseline.txt`.
//!
//! Every file in [`COMPLETE`] must pass completely, except the evals that depend on
//! native histograms (they expect histogram samples, or select a series that was loaded
//! with histogram samples or derived by `load_with_nhcb`): those are counted and
//! printed apart, as the engine does not support native histograms yet. The files in
//! [`EXPERIMENTAL`] exercise features Prometheus keeps behind feature flags; they are
//! held to their baseline only.
//!
//! An eval passes when its value and its annotations are as expected: `expect fail`
//! (with `msg:`/`regex:`), `expect ordered`, `expect string`, `expect range vector`,
//! and `expect warn|info|no_warn|no_info` (with `msg:`, the exact text, position
//! included) or `eval_warn|info`.
#![allow(clippy::print_stderr)]

#[path = "promqltest/runner.rs"]
mod runner;

use std::collections::BTreeMap;
use std::path::PathBuf;

use runner::{FileResult, run_file};

/// Files not counted at all: native histograms and `info()` are not supported.
const SKIPPED: &[&str] = &["native_histograms.test", "info.test"];

/// Files of experimental features (behind Prometheus feature flags), held to their
/// baseline only: duration arithmetic and `step()`/`range()` in durations (not parsed by
/// `promql-parser`), the `anchored`/`smoothed` modifiers and experimental functions,
/// and start timestamps.
const EXPERIMENTAL: &[&str] = &[
    "duration_expression.test",
    "extended_vectors.test",
    "start_timestamps.test",
];

/// Files every eval of which must pass, native histogram evals aside.
const COMPLETE: &[&str] = &[
    "aggregators.test",
    "at_modifier.test",
    "collision.test",
    "fill-modifier.test",
    "functions.test",
    "histograms.test",
    "limit.test",
    "literals.test",
    "name_label_dropping.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "subquery.test",
    "trig_functions.test",
    "type_and_unit.test",
];

/// The scripts' directory, found from the package directory the test runs in (set by
/// cargo and nextest at run time; the build-time one when run by hand): a binary reused
/// from a build cache of another checkout still reads this checkout's data.
fn testdata() -> PathBuf {
    let package = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    PathBuf::from(package).join("../../shared/testdata/promqltest/testdata")
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
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "promqltest: {} not readable ({e}): the shared test data must sit beside the repository",
            dir.display()
        )
    });
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
        let note = if SKIPPED.contains(&name.as_str()) {
            " (skipped: not counted)"
        } else if EXPERIMENTAL.contains(&name.as_str()) {
            " (experimental: baseline only)"
        } else {
            ""
        };
        eprintln!(
            "promqltest {name}: {}/{} passed ({} with annotations), {} failing on native \
             histograms, {} other failures{note}",
            result.passed,
            result.total,
            result.annotated,
            result.native_histogram,
            result.failures.len(),
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
        if COMPLETE.contains(&name.as_str()) && !result.failures.is_empty() {
            regressions.push(format!(
                "{name} must pass completely; failing (line, query): {:?}",
                result.failures
            ));
        }
    }
    let (passed, total) = results
        .iter()
        .filter(|(n, _)| !SKIPPED.contains(&n.as_str()))
        .fold((0, 0), |(p, t), (_, r)| (p + r.passed, t + r.total));
    eprintln!("promqltest total (without skipped files): {passed}/{total}");
    assert!(regressions.is_empty(), "regressions: {regressions:#?}");
}
