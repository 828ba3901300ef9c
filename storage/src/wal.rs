//! The write-ahead log: one multiplexed log for every tenant and signal, written by a
//! single thread with group commit.
//!
//! ```text
//!  append() ──(payload, oneshot)──► writer thread: drain queue ─► write ─► fdatasync ─► ack all
//! ```
//!
//! A record is `len u32 | crc32 u32 | kind u8 | tenant_len u8 | tenant | body`, little
//! endian, the crc covering everything after it. Files are `<seq:020>.wal`; a flush
//! rotates to a new file and, once its segments are durable, removes the older ones.
//! On open, a record that is cut short or fails its crc ends the file: the rest is
//! truncated with a warning (a torn tail after a crash), never a panic.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proto::TenantId;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::{Error, Result};

const HEADER_LEN: usize = 8;
/// Largest record accepted; bigger writes are refused before they reach the WAL.
pub(crate) const MAX_RECORD_LEN: usize = 256 << 20;

/// What a WAL record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Metrics = 1,
    Logs = 2,
    Spans = 3,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(RecordKind::Metrics),
            2 => Some(RecordKind::Logs),
            3 => Some(RecordKind::Spans),
            _ => None,
        }
    }
}

/// A decoded WAL record.
#[derive(Debug)]
pub(crate) struct WalEntry {
    pub kind: RecordKind,
    pub tenant: TenantId,
    pub body: Vec<u8>,
}

/// Frames a record: header, kind, tenant, body.
pub(crate) fn frame(kind: RecordKind, tenant: &TenantId, body: &[u8]) -> Vec<u8> {
    let tenant = tenant.as_str().as_bytes();
    let payload_len = 2 + tenant.len() + body.len();
    let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind as u8);
    out.push(tenant.len() as u8);
    out.extend_from_slice(tenant);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Counters of the WAL writer.
#[derive(Debug, Default)]
pub(crate) struct WalStats {
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub records: AtomicU64,
}

enum Command {
    Append {
        record: Vec<u8>,
        done: oneshot::Sender<Result<(), &'static str>>,
    },
    Rotate {
        done: oneshot::Sender<Result<u64, &'static str>>,
    },
    RemoveBefore {
        seq: u64,
        done: oneshot::Sender<Result<(), &'static str>>,
    },
    Stop,
}

/// Handle to the WAL writer thread.
pub(crate) struct Wal {
    tx: mpsc::Sender<Command>,
    failed: Arc<AtomicBool>,
    pub stats: Arc<WalStats>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalOptions {
    pub group_commit: Duration,
    pub max_batch: usize,
    pub segment_size: u64,
}

fn wal_file(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// Lists the WAL files under `dir` by sequence number.
fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        files.push((seq, entry.path()));
    }
    files.sort();
    Ok(files)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Reads every valid record of the WAL files under `dir` numbered `checkpoint` or
/// higher, in order, truncating torn tails; older files (already in segments) are
/// removed. Returns the sequence number the next file should take.
pub(crate) fn replay(
    dir: &Path,
    checkpoint: u64,
    mut apply: impl FnMut(WalEntry) -> Result<()>,
) -> Result<u64> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = list_files(dir)?;
    let mut next_seq = checkpoint.max(1);
    for (seq, path) in &files {
        next_seq = next_seq.max(seq + 1);
        if *seq < checkpoint {
            info!(file = %path.display(), "removing a wal file whose records are in segments");
            fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            continue;
        }
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        let mut pos = 0usize;
        let mut records = 0u64;
        let bad_at = loop {
            if pos == bytes.len() {
                break None;
            }
            match parse_record(&bytes[pos..]) {
                Ok((entry, len)) => {
                    apply(entry)?;
                    records += 1;
                    pos += len;
                }
                Err(reason) => break Some(reason),
            }
        };
        if let Some(reason) = bad_at {
            warn!(
                file = %path.display(),
                offset = pos,
                dropped_bytes = bytes.len() - pos,
                reason,
                "truncating the wal at a torn or corrupt record"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            file.set_len(pos as u64)
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io(path, e))?;
        }
        info!(file = %path.display(), records, "replayed wal file");
    }
    Ok(next_seq)
}

fn parse_record(bytes: &[u8]) -> std::result::Result<(WalEntry, usize), &'static str> {
    if bytes.len() < HEADER_LEN {
        return Err("truncated header");
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if !(2..=MAX_RECORD_LEN).contains(&len) {
        return Err("bad length");
    }
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or("truncated record")?;
    if crc32fast::hash(payload) != crc {
        return Err("crc mismatch");
    }
    let kind = RecordKind::from_byte(payload[0]).ok_or("unknown record kind")?;
    let tenant_len = payload[1] as usize;
    let tenant = payload.get(2..2 + tenant_len).ok_or("truncated tenant")?;
    let tenant = std::str::from_utf8(tenant).map_err(|_| "tenant is not utf-8")?;
    let tenant = TenantId::new(tenant).map_err(|_| "invalid tenant")?;
    Ok((
        WalEntry {
            kind,
            tenant,
            body: payload[2 + tenant_len..].to_vec(),
        },
        HEADER_LEN + len,
    ))
}

impl Wal {
    /// Starts the writer on a fresh file `<next_seq>.wal` under `dir`.
    pub fn start(dir: &Path, next_seq: u64, options: WalOptions) -> Result<Wal> {
        let file = create_file(dir, next_seq)?;
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WalStats::default());
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            file,
            seq: next_seq,
            size: 0,
            options,
            failed: failed.clone(),
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("sightline-wal".to_string())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io(dir, e))?;
        Ok(Wal {
            tx,
            failed,
            stats,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Appends a framed record; resolves once it is fsynced.
    pub async fn append(&self, record: Vec<u8>) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::Unavailable("the wal is closed or failed to write"));
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Append { record, done })
            .map_err(|_| Error::Unavailable("the wal is closed"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Unavailable(reason)),
            Err(_) => Err(Error::Unavailable("the wal is closed")),
        }
    }

    /// Closes the current file and starts a new one; returns the new file's sequence
    /// number. Every record appended before the call is in an older file.
    pub async fn rotate(&self) -> Result<u64> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Rotate { done })
            .map_err(|_| Error::Unavailable("the wal is closed"))?;
        match wait.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(reason)) => Err(Error::Unavailable(reason)),
            Err(_) => Err(Error::Unavailable("the wal is closed")),
        }
    }

    /// Removes the files older than `seq` (their records are in durable segments).
    pub async fn remove_before(&self, seq: u64) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::RemoveBefore { seq, done })
            .map_err(|_| Error::Unavailable("the wal is closed"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Unavailable(reason)),
            Err(_) => Err(Error::Unavailable("the wal is closed")),
        }
    }

    /// Stops the writer once everything queued before the call is synced.
    pub async fn close(&self) {
        let handle = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(handle) = handle {
            let _ = self.tx.send(Command::Stop);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.failed.store(true, Ordering::Release);
    }
}

fn create_file(dir: &Path, seq: u64) -> Result<File> {
    let path = wal_file(dir, seq);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

struct Writer {
    dir: PathBuf,
    file: File,
    seq: u64,
    size: u64,
    options: WalOptions,
    failed: Arc<AtomicBool>,
    stats: Arc<WalStats>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Command>) {
        let mut carry: Option<Command> = None;
        loop {
            let first = match carry.take() {
                Some(command) => command,
                None => match rx.recv() {
                    Ok(command) => command,
                    Err(_) => return,
                },
            };
            let (record, done) = match first {
                Command::Append { record, done } => (record, done),
                Command::Stop => return,
                control => {
                    self.control(control);
                    continue;
                }
            };
            let mut buffer = record;
            let mut waiters = vec![done];
            let deadline = Instant::now() + self.options.group_commit;
            loop {
                let next = if self.options.group_commit.is_zero() {
                    rx.try_recv().ok()
                } else {
                    let left = deadline.saturating_duration_since(Instant::now());
                    rx.recv_timeout(left).ok()
                };
                match next {
                    Some(Command::Append { record, done })
                        if buffer.len() + record.len() <= self.options.max_batch =>
                    {
                        buffer.extend_from_slice(&record);
                        waiters.push(done);
                    }
                    Some(other) => {
                        carry = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            let result = self.write_group(&buffer, waiters.len() as u64);
            for waiter in waiters {
                let _ = waiter.send(result);
            }
            if result.is_ok()
                && self.size >= self.options.segment_size
                && let Err(reason) = self.rotate()
            {
                error!(reason, "wal rotation failed");
            }
        }
    }

    fn write_group(&mut self, buffer: &[u8], records: u64) -> Result<(), &'static str> {
        if self.failed.load(Ordering::Acquire) {
            return Err("the wal failed to write; restart the server");
        }
        let result = self
            .file
            .write_all(buffer)
            .and_then(|_| self.file.sync_data());
        match result {
            Ok(()) => {
                self.size += buffer.len() as u64;
                self.stats
                    .bytes
                    .fetch_add(buffer.len() as u64, Ordering::Relaxed);
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.stats.records.fetch_add(records, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                error!(error = %e, seq = self.seq, "wal write failed; refusing further writes");
                self.failed.store(true, Ordering::Release);
                Err("the wal failed to write; restart the server")
            }
        }
    }

    fn rotate(&mut self) -> Result<u64, &'static str> {
        let next = self.seq + 1;
        match create_file(&self.dir, next) {
            Ok(file) => {
                self.file = file;
                self.seq = next;
                self.size = 0;
                Ok(next)
            }
            Err(e) => {
                error!(error = %e, "cannot create a new wal file");
                Err("cannot create a new wal file")
            }
        }
    }

    fn control(&mut self, command: Command) {
        match command {
            Command::Rotate { done } => {
                let _ = done.send(self.rotate());
            }
            Command::RemoveBefore { seq, done } => {
                let _ = done.send(self.remove_before(seq));
            }
            Command::Append { .. } | Command::Stop => unreachable!("handled by run"),
        }
    }

    fn remove_before(&self, seq: u64) -> Result<(), &'static str> {
        let files = list_files(&self.dir).map_err(|_| "cannot list the wal directory")?;
        for (file_seq, path) in files {
            if file_seq < seq
                && file_seq != self.seq
                && let Err(e) = fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                warn!(file = %path.display(), error = %e, "cannot remove an old wal file");
            }
        }
        sync_dir(&self.dir).map_err(|_| "cannot sync the wal directory")
    }
}
