//! Reading log lines out of storage for a time range, newest (or oldest) first, with a
//! pushed-down service, trace and text filter and a row predicate on top.
//!
//! Without a limit, each segment's candidate rows (from its full-text index) are read
//! once. With a limit the read is late-materialised: storage first returns the time of
//! every candidate row (index + timestamp column), the best `limit`-ish rows by time
//! are read in full, and further rounds run only while a remaining candidate could
//! still make the page. Histograms need the times alone ([`times`]).

use std::sync::Arc;

use proto::TenantId;
use storage::{LogScan, Storage};

use super::rows::{LogLine, read_batch};
use crate::{Error, Result};

/// Most lines one request may hold in memory before it fails as too large.
pub const MAX_LINES: usize = 2_000_000;
/// Most rows one round of a late-materialised read fetches in full.
const MAX_ROUND: usize = 1 << 18;
/// Most candidate rows (time and row number only, 16 bytes each) one request may hold.
pub const MAX_CANDIDATES: usize = 64_000_000;

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
    let timeline = storage.log_timeline(tenant, scan, false).await?;
    check_candidates(timeline.len())?;
    // Candidates as (time, source, row), best first once sorted.
    let mut candidates: Vec<(i64, u32, u32)> = Vec::with_capacity(timeline.len());
    for (index, source) in timeline.sources.iter().enumerate() {
        candidates.extend(
            source
                .ts
                .iter()
                .zip(&source.rows)
                .map(|(ts, row)| (*ts, index as u32, *row)),
        );
    }
    let better = |a: &(i64, u32, u32), b: &(i64, u32, u32)| match direction {
        Direction::Backward => b.0.cmp(&a.0),
        Direction::Forward => a.0.cmp(&b.0),
    };
    let mut out: Vec<LogLine> = Vec::new();
    // Late materialisation: read the best-by-time candidates in growing rounds until
    // the page is full and no remaining candidate can displace its worst line.
    // Confirmed candidates all make lines: the first round reads just the page. Others
    // may fail the scan once read, so the first round reads some spare.
    let all_confirmed = timeline.sources.iter().all(|s| s.confirmed);
    let mut round = if all_confirmed {
        limit.clamp(1, MAX_ROUND)
    } else {
        limit.saturating_mul(2).clamp(256, MAX_ROUND)
    };
    while !candidates.is_empty() {
        if out.len() >= limit {
            sort(&mut out, direction);
            out.truncate(limit);
            let worst = out.last().map_or(i64::MIN, |l| l.ts_ns);
            let can_improve = candidates.iter().any(|c| match direction {
                Direction::Backward => c.0 >= worst,
                Direction::Forward => c.0 <= worst,
            });
            if !can_improve {
                break;
            }
        }
        let take = round.min(candidates.len());
        if take < candidates.len() {
            candidates.select_nth_unstable_by(take, better);
        }
        let mut chosen: Vec<(u32, u32)> = candidates.drain(..take).map(|c| (c.1, c.2)).collect();
        chosen.sort_unstable();
        for group in chosen.chunk_by(|a, b| a.0 == b.0) {
            let source = &timeline.sources[group[0].0 as usize];
            let rows: Vec<u32> = group.iter().map(|c| c.1).collect();
            for batch in storage.read_timeline_rows(source, &rows, scan).await? {
                let mut lines = Vec::new();
                read_batch(&batch, |ts, _| in_range(ts), &mut lines)?;
                out.extend(lines.into_iter().filter(|line| keep(line)));
            }
        }
        check_size(out.len())?;
        round = round.saturating_mul(4).min(MAX_ROUND);
    }
    sort(&mut out, direction);
    out.truncate(limit);
    Ok(out)
}

/// Returns the time of every row matching `scan` (no order), reading the timestamp
/// column only where the full-text index answers the scan exactly: for histograms.
pub async fn times(storage: &Arc<Storage>, tenant: &TenantId, scan: &LogScan) -> Result<Vec<i64>> {
    let timeline = storage.log_timeline(tenant, scan, true).await?;
    check_candidates(timeline.len())?;
    let mut out = Vec::with_capacity(timeline.len());
    for source in &timeline.sources {
        out.extend_from_slice(&source.ts);
    }
    Ok(out)
}

fn check_candidates(count: usize) -> Result<()> {
    if count > MAX_CANDIDATES {
        return Err(Error::TooLarge(format!(
            "the query matches more than {MAX_CANDIDATES} log lines; narrow the time range or the filter"
        )));
    }
    Ok(())
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
