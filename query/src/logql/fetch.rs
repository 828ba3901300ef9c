//! Reading log lines out of storage for a time range, newest (or oldest) first, with a
//! pushed-down service, trace and text filter and a row predicate on top.
//!
//! Each segment's candidate rows (from its full-text index) are read once; with a
//! limit, rows older (newer, forward) than the current page's last line are skipped
//! before a line is built.

use std::sync::Arc;

use proto::TenantId;
use storage::{LogScan, Storage};

use super::rows::{LogLine, read_batch};
use crate::{Error, Result};

/// Most lines one request may hold in memory before it fails as too large.
pub const MAX_LINES: usize = 2_000_000;

/// Order of the lines returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Newest first.
    #[default]
    Backward,
    /// Oldest first.
    Forward,
}

/// Reads the lines matching `scan` and `keep`, sorted in `direction` (ties broken by
/// [`order_key`]), at most `limit` of them (`None`: all, bounded by [`MAX_LINES`]).
pub async fn lines(
    storage: &Arc<Storage>,
    tenant: &TenantId,
    scan: &LogScan,
    keep: &(dyn Fn(&LogLine) -> bool + Send + Sync),
    limit: Option<usize>,
    direction: Direction,
) -> Result<Vec<LogLine>> {
    let in_range = |ts: i64| ts >= scan.start_ns && ts <= scan.end_ns;
    let Some(limit) = limit else {
        // Everything: one read per segment.
        let mut out = Vec::new();
        for batch in storage.scan_logs(tenant, scan).await? {
            let mut rows = Vec::new();
            read_batch(&batch, |ts, _| in_range(ts), &mut rows)?;
            out.extend(rows.into_iter().filter(|line| keep(line)));
            check_size(out.len())?;
        }
        sort(&mut out, direction);
        return Ok(out);
    };
    let mut out = Vec::new();
    // Lines beyond the current page's worst line can never make the page: skip
    // building them.
    for batch in storage.scan_logs(tenant, scan).await? {
        if out.len() >= limit {
            sort(&mut out, direction);
            out.truncate(limit);
        }
        let worst = (out.len() >= limit)
            .then(|| out.last().map(|l| l.ts_ns))
            .flatten();
        let could_make_page = |ts: i64| match (worst, direction) {
            (None, _) => true,
            (Some(w), Direction::Backward) => ts >= w,
            (Some(w), Direction::Forward) => ts <= w,
        };
        let mut rows = Vec::new();
        read_batch(
            &batch,
            |ts, _| in_range(ts) && could_make_page(ts),
            &mut rows,
        )?;
        out.extend(rows.into_iter().filter(|line| keep(line)));
        check_size(out.len())?;
    }
    sort(&mut out, direction);
    out.truncate(limit);
    Ok(out)
}

/// Calls `f(ts_ns, body)` for every row matching `scan` (no order), without building
/// lines: for counting.
pub async fn visit(
    storage: &Arc<Storage>,
    tenant: &TenantId,
    scan: &LogScan,
    mut f: impl FnMut(i64, &str),
) -> Result<()> {
    for batch in storage.scan_logs(tenant, scan).await? {
        let mut none = Vec::new();
        read_batch(
            &batch,
            |ts, body| {
                if ts >= scan.start_ns && ts <= scan.end_ns {
                    f(ts, body);
                }
                false
            },
            &mut none,
        )?;
    }
    Ok(())
}

fn check_size(lines: usize) -> Result<()> {
    if lines > MAX_LINES {
        return Err(Error::TooLarge(format!(
            "the query matches more than {MAX_LINES} log lines; narrow the time range or the filter"
        )));
    }
    Ok(())
}

/// Sorts lines by time in `direction`, ties by a hash of service and body (a total
/// order that cursors rely on).
pub fn sort(lines: &mut [LogLine], direction: Direction) {
    match direction {
        Direction::Backward => lines.sort_by_cached_key(|l| std::cmp::Reverse(order_key(l))),
        Direction::Forward => lines.sort_by_cached_key(order_key),
    }
}

/// The key lines are ordered by: time, then a hash of service and body.
pub fn order_key(line: &LogLine) -> (i64, u64) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    line.service.hash(&mut hasher);
    line.body.hash(&mut hasher);
    (line.ts_ns, hasher.finish())
}
