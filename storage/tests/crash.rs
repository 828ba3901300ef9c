//! Crash safety: a child process appends and reports each acknowledgement on stdout;
//! the parent SIGKILLs it at random points, reopens the store, and checks that every
//! acknowledged record is there, once, and whole. Also: corrupted WAL tails.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use storage::model::{logs_batch, spans_batch};
use storage::{LogScan, SpanScan};

const CHILD_ENV: &str = "SIGHTLINE_CRASH_CHILD_DIR";

/// Not a test on its own: the body of the child process the crash test starts.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var("SIGHTLINE_CRASH_CHILD_START")
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let config = storage::Config {
            memtable_flush_size: proto::ByteSize(64 * 1024),
            ..small_config()
        };
        let storage = open(Path::new(&dir), config).await;
        let mut out = std::io::stdout();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
        for seq in start.. {
            let record = log_record(
                seq,
                "interest-settlement",
                seq as i64 * 1_000_000,
                &format!("seq={seq} {}", "payload ".repeat(20)),
            );
            let write = metrics(vec![series_write(
                "settlements_total",
                &format!("pod-{}", seq % 3),
                &[(seq as i64 * 1000, seq as f64)],
            )]);
            let span = span_record(seq, seq, "interest-settlement", seq as i64 * 1_000_000);
            let tenant = tenant();
            let (a, b, c) = tokio::join!(
                storage.append_logs(&tenant, logs_batch(&[record]).unwrap()),
                storage.append_metrics(&tenant, &write),
                storage.append_spans(&tenant, spans_batch(&[span]).unwrap()),
            );
            a.unwrap();
            b.unwrap();
            c.unwrap();
            writeln!(out, "ack {seq}").unwrap();
            out.flush().unwrap();
            if seq % 97 == 0 {
                storage.compact().await.unwrap();
            }
        }
    });
}

fn run_child_until_killed(dir: &Path, start: u64, kill_after: Duration) -> BTreeSet<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env("SIGHTLINE_CRASH_CHILD_START", start.to_string())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for the store to open (replay included), then let it run for `kill_after`.
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("child never became ready");
        if line.ends_with("ready") {
            break;
        }
    }
    let kill_at = Instant::now() + kill_after;
    while Instant::now() < kill_at {
        if let Ok(line) = rx.recv_timeout(kill_at.saturating_duration_since(Instant::now()))
            && let Some(seq) = line.strip_prefix("ack ")
        {
            acked.insert(seq.parse().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    // Acks written before the kill but read after it still count.
    while let Ok(line) = rx.try_recv() {
        if let Some(seq) = line.strip_prefix("ack ") {
            acked.insert(seq.parse().unwrap());
        }
    }
    acked
}

fn log_seqs(rows: &[(i64, String, String)]) -> Vec<u64> {
    rows.iter()
        .map(|(_, _, body)| {
            let seq: u64 = body
                .strip_prefix("seq=")
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                body,
                &format!("seq={seq} {}", "payload ".repeat(20)),
                "a partial record is visible"
            );
            seq
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5167_471e);
    let mut all_acked = BTreeSet::new();
    let mut next = 0u64;
    for round in 0..12 {
        let kill_after = Duration::from_millis(rng.random_range(20..400));
        let acked = run_child_until_killed(dir.path(), next, kill_after);
        all_acked.extend(acked.iter().copied());
        let storage = open(dir.path(), small_config()).await;
        let all_logs = LogScan {
            start_ns: i64::MIN,
            end_ns: i64::MAX,
            ..LogScan::default()
        };
        let seen = log_seqs(&log_rows(
            &storage.scan_logs(&tenant(), &all_logs).await.unwrap(),
        ));
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "round {round}: a log record appears twice"
        );
        let missing: Vec<_> = all_acked.difference(&unique).take(5).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acked log records lost: {missing:?}"
        );
        let samples = all_samples(&storage, "settlements_total").await;
        for seq in &all_acked {
            assert!(
                samples.contains_key(&(format!("pod-{}", seq % 3), *seq as i64 * 1000)),
                "round {round}: sample {seq} lost"
            );
        }
        let spans = span_keys(
            &storage
                .scan_spans(
                    &tenant(),
                    &SpanScan {
                        start_ns: i64::MIN,
                        end_ns: i64::MAX,
                        ..SpanScan::default()
                    },
                )
                .await
                .unwrap(),
        );
        let span_set: BTreeSet<_> = spans.iter().collect();
        assert_eq!(
            span_set.len(),
            spans.len(),
            "round {round}: a span appears twice"
        );
        assert!(spans.len() >= all_acked.len(), "round {round}: spans lost");
        storage.close().await.unwrap();
        // The next child continues after everything written so far, acked or not. The
        // three appends of one sequence number are independent, so a kill can leave a
        // durable span of a number whose log line never made it: count spans too, or the
        // next child would write that span a second time.
        let span_max = spans
            .iter()
            .map(|(_, span)| u64::from_be_bytes(span.0))
            .max();
        next = unique
            .iter()
            .copied()
            .chain(span_max)
            .max()
            .map_or(next, |m| m + 1)
            .max(all_acked.iter().max().map_or(0, |m| m + 1));
    }
    assert!(
        all_acked.len() > 50,
        "the children acknowledged too little to test anything: {}",
        all_acked.len()
    );
}

fn wal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_or_corrupt_wal_tail_is_truncated_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path(), small_config()).await;
    for seq in 0..10u64 {
        let record = log_record(
            seq,
            "sms",
            seq as i64,
            &format!("seq={seq} {}", "payload ".repeat(20)),
        );
        storage
            .append_logs(&tenant(), logs_batch(&[record]).unwrap())
            .await
            .unwrap();
    }
    storage.close().await.unwrap();
    let last = wal_files(dir.path())
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let intact = std::fs::metadata(&last).unwrap().len();

    // A torn tail: half a record header and some garbage.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap()
        .write_all(&[0x40, 0, 0, 0, 0xde, 0xad])
        .unwrap();
    let storage = open(dir.path(), small_config()).await;
    let all = LogScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        ..LogScan::default()
    };
    assert_eq!(
        log_seqs(&log_rows(
            &storage.scan_logs(&tenant(), &all).await.unwrap()
        ))
        .len(),
        10
    );
    storage.close().await.unwrap();
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        intact,
        "the torn tail was truncated"
    );

    // A flipped byte inside the last record: that record is dropped, the others stay.
    let mut bytes = std::fs::read(&last).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&last, &bytes).unwrap();
    let storage = open(dir.path(), small_config()).await;
    let seen = log_seqs(&log_rows(
        &storage.scan_logs(&tenant(), &all).await.unwrap(),
    ));
    assert_eq!(seen, (0..9).collect::<Vec<u64>>());
    // And the store keeps working.
    let record = log_record(42, "sms", 42, &format!("seq=42 {}", "payload ".repeat(20)));
    storage
        .append_logs(&tenant(), logs_batch(&[record]).unwrap())
        .await
        .unwrap();
    storage.flush().await.unwrap();
    assert_eq!(
        log_seqs(&log_rows(
            &storage.scan_logs(&tenant(), &all).await.unwrap()
        ))
        .len(),
        10
    );
    storage.close().await.unwrap();
}
