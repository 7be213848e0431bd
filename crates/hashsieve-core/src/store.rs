//! The index directory: an index file, the delta log of changes since, and compaction.
//!
//! ```text
//! DIR/
//!   LOCK                               locked (flock) by the one process that writes
//!   DURABLE                            how much of which log is durable (the durable mark)
//!   base-00000000000000000007.hsi      index file holding every change logged before log 7
//!   delta-00000000000000000007.log     changes since, replayed on open
//!   delta-00000000000000000008.log     during a compaction: changes since it started
//!   .NAME.tmp-PID                      a file being written; removed on open
//! ```
//!
//! **Writing.** [`IndexDir::submit`] checks a batch of [`Change`]s, gives it the next sequence
//! number and queues it. One waiting writer at a time becomes the leader: it appends every
//! queued record in one write, calls `fdatasync`, applies the batches to the in-memory delta
//! in order, and wakes the others; so concurrent writers share fsyncs (group commit), and a
//! change is acknowledged, and visible to queries, only once it is durable.
//!
//! **Following.** A process that opens the directory read-only (a follower: `hashsieve scan`,
//! a read-only daemon) replays only what the writer has made durable. After each `fdatasync`
//! the leader rewrites the durable mark — the active log's number and its durable length —
//! before it acknowledges, so a follower reads the mark first and then replays the older logs
//! whole and the marked log up to the mark: every change it serves was acknowledged, and none
//! is one a power loss could still drop. A follower may lag the writer by a batch (it follows
//! the mark, polled), never lead it. A directory without a mark (written by an older build)
//! is replayed whole.
//!
//! **Opening** takes the highest base that exists, replays its logs in order and removes files
//! a finished compaction left behind. The last log may end in a torn record — a crash during
//! a write that was never acknowledged — and is cut back to its last whole batch, with a
//! warning. Damage anywhere else, or followed by valid records, is corruption: opening fails
//! rather than drop acknowledged changes, unless the caller asks for a repair.
//!
//! **Compaction** rotates to a new log, folds base + old logs into a new index file (written to
//! a temporary name, fsync'd, renamed, directory fsync'd), then, between two batches, opens it,
//! replays the new log onto it and swaps it in (`arc-swap`): a query holds the old state or
//! the new, never a mix, and the old file's mapping is released by its last reader. A crash
//! at any step leaves a directory that opens to the same changes.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::delta::live::{Applied, Delta, View};
use crate::delta::log::{self, DurableMark, LogDamage, LogError};
use crate::delta::{Batch, Change, ChangeError, Removal, check_change};
use crate::hashes::HashKind;
use crate::import::ImportedEntry;
use crate::index::format::{is_temporary, map_file, sync_dir, write_atomically};
use crate::index::{Index, IndexBuilder, IndexBytes, IndexError, ListOptions};

/// Why an index directory could not be opened, written or compacted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The index file is unusable.
    #[error("{path}: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The failure.
        source: IndexError,
    },
    /// The directory is not an index directory.
    #[error("{0}")]
    NotAnIndexDir(String),
    /// Another process holds the directory's write lock.
    #[error("{0}: another process is writing to this index directory")]
    Busy(PathBuf),
    /// A log is damaged in a way a crash cannot explain.
    #[error(
        "{file}: damaged at byte {offset} ({reason}), and valid changes follow; opening would drop them. \
         Restore the file from a backup, or cut the log there with `hashsieve list repair`"
    )]
    Corrupt {
        /// The log file.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A change was refused; nothing was written.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// The directory was opened read-only, or is a single index file.
    #[error("opened read-only: changes need the index directory opened for writing")]
    ReadOnly,
    /// An earlier write failed, so what is on disk is uncertain; reopening replays the log.
    #[error("an earlier write to the delta log failed ({0}); reopen the index directory")]
    Failed(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// How an index directory is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirOptions {
    /// Take the write lock, cut torn log tails and clean up; otherwise only read.
    pub writable: bool,
    /// Compact automatically once the delta holds this many changes (`None`: only on demand).
    pub compact_after: Option<u64>,
    /// Cut a log at its first damage even if valid changes follow (they are lost): for an
    /// operator who has decided that, after `hashsieve list repair` reported what it cuts.
    pub repair: bool,
}

impl Default for DirOptions {
    fn default() -> Self {
        DirOptions { writable: true, compact_after: Some(DEFAULT_COMPACT_AFTER), repair: false }
    }
}

/// Compact once the delta holds a million changes, by default: its memory stays in the
/// hundreds of megabytes and opening replays it in seconds.
pub const DEFAULT_COMPACT_AFTER: u64 = 1_000_000;

/// What opening found: for the log line an operator reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The base's generation.
    pub generation: u64,
    /// Batches replayed from the logs.
    pub batches: u64,
    /// Logs and where each was cut (a torn tail, or a repair).
    pub cut: Vec<(PathBuf, LogDamage)>,
    /// Files of an interrupted or finished compaction that were removed.
    pub removed: Vec<PathBuf>,
}

/// An acknowledged batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The batch's sequence number.
    pub seq: u64,
    /// What it did.
    pub applied: Applied,
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Compaction {
    /// The new base's generation.
    pub generation: u64,
    /// Entries in the new base.
    pub entries: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Seconds from start to swap.
    pub seconds: f64,
}

/// What a refresh changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Refreshed {
    /// The batch written (the last one before, if nothing changed).
    pub seq: u64,
    /// Whether the list was created.
    pub created: bool,
    /// Entries in the new version.
    pub entries: u64,
    /// Entries added or changed (category, source or quality).
    pub added: u64,
    /// Entries withdrawn.
    pub removed: u64,
    /// Entries that stayed as they were.
    pub unchanged: u64,
}

/// One generation: an index file and the delta on top of it. Queries hold an `Arc` of one.
#[derive(Debug)]
pub struct Live {
    base: Index<IndexBytes>,
    delta: RwLock<Delta>,
    generation: u64,
}

impl Live {
    fn new(base: Index<IndexBytes>, delta: Delta, generation: u64) -> Live {
        Live { base, delta: RwLock::new(delta), generation }
    }

    /// Runs `f` over the index file and delta as of now; changes wait until it returns.
    pub fn view<R>(&self, f: impl FnOnce(View<'_, IndexBytes>) -> R) -> R {
        let delta = self.delta.read().unwrap_or_else(PoisonError::into_inner);
        f(View { base: &self.base, delta: &delta })
    }

    /// The base's generation: it changes with every compaction.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The index file.
    pub fn base(&self) -> &Index<IndexBytes> {
        &self.base
    }
}

fn base_name(generation: u64) -> String {
    format!("base-{generation:020}.hsi")
}

fn log_name(number: u64) -> String {
    format!("delta-{number:020}.log")
}

fn parse_number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The files of an index directory.
#[derive(Debug, Default)]
struct Listing {
    bases: Vec<u64>,
    logs: Vec<u64>,
    temporary: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, StoreError> {
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = parse_number(&name, "base-", ".hsi") {
            listing.bases.push(n);
        } else if let Some(n) = parse_number(&name, "delta-", ".log") {
            listing.logs.push(n);
        } else if is_temporary(&name) {
            listing.temporary.push(entry.path());
        }
    }
    listing.bases.sort_unstable();
    listing.logs.sort_unstable();
    Ok(listing)
}

fn open_base(path: &Path) -> Result<Index<IndexBytes>, StoreError> {
    let map = map_file(path).map_err(io_error(path))?;
    Index::open(IndexBytes::Mapped(map))
        .map_err(|source| StoreError::Index { path: path.to_path_buf(), source })
}

fn create_log(dir: &Path, number: u64) -> Result<(), StoreError> {
    let path = dir.join(log_name(number));
    write_atomically(&path, |file| file.write_all(&log::header(number))).map_err(io_error(&path))
}

/// The durable mark's file name.
const MARK_NAME: &str = "DURABLE";

/// Replaces the durable mark (temporary file, fsync, rename), creating it if need be.
fn write_mark(dir: &Path, mark: DurableMark) -> Result<(), StoreError> {
    let path = dir.join(MARK_NAME);
    write_atomically(&path, |file| file.write_all(&mark.encode())).map_err(io_error(&path))
}

/// The durable mark, or `None` for a directory an older build wrote, which has none.
fn read_mark(dir: &Path) -> Result<Option<DurableMark>, StoreError> {
    let path = dir.join(MARK_NAME);
    let mut reason = String::new();
    // The writer rewrites the mark in place, so a read can meet half of a rewrite: read again.
    for _ in 0..3 {
        match fs::read(&path) {
            Ok(bytes) => match DurableMark::decode(&bytes) {
                Ok(mark) => return Ok(Some(mark)),
                Err(why) => reason = why,
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(&path)(err)),
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(StoreError::Corrupt {
        file: path,
        offset: 0,
        reason: format!("{reason}; opening the directory for writing rewrites it"),
    })
}

/// How much of log `number` a follower may replay, given the mark it read before listing
/// the logs: all of a log the writer has moved past, a marked log up to the mark, nothing of a
/// log created after the mark was read. `None`: all of it.
fn durable_len(mark: Option<DurableMark>, number: u64) -> Option<u64> {
    let mark = mark?;
    match number.cmp(&mark.number) {
        std::cmp::Ordering::Less => None,
        std::cmp::Ordering::Equal => Some(mark.len),
        std::cmp::Ordering::Greater => Some(log::HEADER_LEN as u64),
    }
}

/// Replays one log, or its first `limit` bytes, onto `delta`, returning the length of its
/// valid part, its damage and the number of batches.
fn replay(
    path: &Path,
    number: u64,
    limit: Option<u64>,
    base: &Index<IndexBytes>,
    delta: &mut Delta,
) -> Result<(u64, Option<LogDamage>, u64), StoreError> {
    let mut bytes = fs::read(path).map_err(io_error(path))?;
    if let Some(limit) = limit {
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let contents = log::read_log(&bytes).map_err(|LogError::Header(reason)| StoreError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        reason: format!("header: {reason}"),
    })?;
    if contents.number != number {
        return Err(StoreError::NotAnIndexDir(format!(
            "{}: header says log {}, name says {number}",
            path.display(),
            contents.number
        )));
    }
    let mut batches = 0;
    for batch in &contents.batches {
        if batch.seq <= delta.last_seq() {
            return Err(StoreError::Corrupt {
                file: path.to_path_buf(),
                offset: 0,
                reason: format!("batch {} repeats or precedes batch {}", batch.seq, delta.last_seq()),
            });
        }
        delta.apply(base, batch.seq, &batch.changes);
        batches += 1;
    }
    Ok((contents.valid_len, contents.damage, batches))
}

/// What a follower compares to know that an index has changed: for a directory, the names,
/// sizes, modification times and inodes of its bases and logs and the bytes of its durable
/// mark (rewritten in place, so only its bytes change); for an index file, its own (replacing
/// it by rename changes the inode). Unreadable parts count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    files: Vec<(String, u64, Option<SystemTime>, u64)>,
    mark: Option<Vec<u8>>,
}

impl Fingerprint {
    /// Takes the fingerprint of an index file or directory.
    pub fn of(path: &Path) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        let describe =
            |name: String, meta: fs::Metadata| (name, meta.len(), meta.modified().ok(), meta.ino());
        let Ok(meta) = fs::metadata(path) else { return Fingerprint::default() };
        if !meta.is_dir() {
            return Fingerprint { files: vec![describe(String::new(), meta)], mark: None };
        }
        let mut files: Vec<_> = fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let relevant = parse_number(&name, "base-", ".hsi").is_some()
                    || parse_number(&name, "delta-", ".log").is_some();
                relevant.then(|| entry.metadata().ok().map(|meta| describe(name, meta))).flatten()
            })
            .collect();
        files.sort();
        Fingerprint { files, mark: fs::read(path.join(MARK_NAME)).ok() }
    }
}

/// The logs of an index directory's current base, read without replaying them: for
/// `hashsieve list log`. Reading does not change anything.
pub fn read_logs(dir: &Path) -> Result<Vec<(PathBuf, log::LogContents)>, StoreError> {
    let listing = list_dir(dir)?;
    let generation = listing.bases.last().copied().unwrap_or(0);
    let mut logs = Vec::new();
    for number in listing.logs.into_iter().filter(|&n| n >= generation) {
        let path = dir.join(log_name(number));
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let contents = log::read_log(&bytes).map_err(|LogError::Header(reason)| StoreError::Corrupt {
            file: path.clone(),
            offset: 0,
            reason: format!("header: {reason}"),
        })?;
        logs.push((path, contents));
    }
    Ok(logs)
}

/// The log being appended to, and the durable mark that says how much of it is durable.
#[derive(Debug)]
struct ActiveLog {
    file: File,
    number: u64,
    /// Its length, all of it durable.
    len: u64,
    mark: File,
}

impl ActiveLog {
    /// Tells followers that the log is durable up to its length. In place and without an
    /// fsync of its own: after a power loss the mark may be older than the log, so followers
    /// lag until the writer reopens the directory and rewrites it — they are never ahead.
    fn publish(&self) -> io::Result<()> {
        self.mark.write_all_at(&DurableMark { number: self.number, len: self.len }.encode(), 0)
    }
}

#[derive(Debug)]
struct Queued {
    batch: Batch,
    record: Vec<u8>,
}

/// The writer's bookkeeping, under one mutex.
#[derive(Debug)]
struct WriterState {
    next_seq: u64,
    /// Lists as they will be once every queued batch is applied: changes are checked against it.
    lists: HashMap<String, ListOptions>,
    queue: Vec<Queued>,
    /// Someone is writing and applying (a leader, a compaction or a refresh).
    busy: bool,
    /// Every batch up to this one is durable and applied.
    done_seq: u64,
    results: HashMap<u64, Applied>,
    failed: Option<String>,
}

#[derive(Debug)]
struct Writer {
    _lock: File,
    state: Mutex<WriterState>,
    turn: Condvar,
    log: Mutex<ActiveLog>,
    compaction: Mutex<()>,
    compacting: AtomicBool,
}

/// An open index directory (or a single index file, read-only).
#[derive(Debug)]
pub struct IndexDir {
    path: Option<PathBuf>,
    current: ArcSwap<Live>,
    writer: Option<Writer>,
    options: DirOptions,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl IndexDir {
    /// Creates an index directory holding `base` (an index file's bytes) and an empty log.
    /// `path` must not exist or be an empty directory.
    pub fn create(path: &Path, base: &IndexBuilder) -> Result<(), StoreError> {
        fs::create_dir_all(path).map_err(io_error(path))?;
        if fs::read_dir(path).map_err(io_error(path))?.next().is_some() {
            return Err(StoreError::NotAnIndexDir(format!("{}: exists and is not empty", path.display())));
        }
        // The log first: a directory with a base always has its log.
        create_log(path, 1)?;
        write_mark(path, DurableMark { number: 1, len: log::HEADER_LEN as u64 })?;
        let base_path = path.join(base_name(1));
        base.write_to_path(&base_path).map_err(|source| StoreError::Index { path: base_path, source })
    }

    /// A single index file, read-only, with no delta.
    pub fn from_index(base: Index<IndexBytes>) -> IndexDir {
        let delta = Delta::new(&base);
        IndexDir {
            path: None,
            current: ArcSwap::from_pointee(Live::new(base, delta, 0)),
            writer: None,
            options: DirOptions { writable: false, compact_after: None, repair: false },
        }
    }

    /// Opens an index directory: the newest base and its logs replayed.
    pub fn open(path: &Path, options: DirOptions) -> Result<(IndexDir, OpenReport), StoreError> {
        let lock_file = if options.writable {
            let lock_path = path.join("LOCK");
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(io_error(&lock_path))?;
            match file.try_lock() {
                Ok(()) => Some(file),
                Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Busy(path.to_path_buf())),
                Err(fs::TryLockError::Error(err)) => return Err(io_error(&lock_path)(err)),
            }
        } else {
            None
        };
        // A reader can race a writer's compaction removing the files it listed: list again.
        let mut attempt = 0;
        let (live, report, last_log, last_len) = loop {
            match Self::load(path, &options) {
                Err(StoreError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempt < 3 =>
                {
                    attempt += 1;
                }
                other => break other?,
            }
        };
        for (file, damage) in &report.cut {
            tracing::warn!(
                log = %file.display(),
                offset = damage.offset,
                reason = %damage.reason,
                "delta log cut at its last whole batch: the rest was never acknowledged"
            );
        }
        let writer = match lock_file {
            None => None,
            Some(lock_file) => {
                let log_path = path.join(log_name(last_log));
                let file = OpenOptions::new().append(true).open(&log_path).map_err(io_error(&log_path))?;
                debug_assert_eq!(file.metadata().map(|m| m.len()).ok(), Some(last_len));
                // What was replayed may be a crashed writer's records that never reached their
                // fsync: make them durable before anyone is told of them.
                file.sync_data().map_err(io_error(&log_path))?;
                write_mark(path, DurableMark { number: last_log, len: last_len })?;
                let mark_path = path.join(MARK_NAME);
                let mark = OpenOptions::new().write(true).open(&mark_path).map_err(io_error(&mark_path))?;
                let (next_seq, lists) = live.view(|view| {
                    let lists = view.delta.lists().iter().map(|l| (l.name.clone(), l.options())).collect();
                    (view.delta.last_seq() + 1, lists)
                });
                Some(Writer {
                    _lock: lock_file,
                    state: Mutex::new(WriterState {
                        next_seq,
                        lists,
                        queue: Vec::new(),
                        busy: false,
                        done_seq: next_seq - 1,
                        results: HashMap::new(),
                        failed: None,
                    }),
                    turn: Condvar::new(),
                    log: Mutex::new(ActiveLog { file, number: last_log, len: last_len, mark }),
                    compaction: Mutex::new(()),
                    compacting: AtomicBool::new(false),
                })
            }
        };
        let dir = IndexDir {
            path: Some(path.to_path_buf()),
            current: ArcSwap::from_pointee(live),
            writer,
            options,
        };
        Ok((dir, report))
    }

    /// Reads the newest base and replays its logs; when writable, also cuts torn tails and
    /// removes leftovers. Returns the state, the report, the last log's number and length.
    fn load(path: &Path, options: &DirOptions) -> Result<(Live, OpenReport, u64, u64), StoreError> {
        // A follower reads the mark before it lists the logs: see `durable_len`.
        let mark = if options.writable { None } else { read_mark(path)? };
        let listing = list_dir(path)?;
        let Some(&generation) = listing.bases.last() else {
            return Err(StoreError::NotAnIndexDir(format!(
                "{}: no base-*.hsi index file (create one with `hashsieve index build --dir`)",
                path.display()
            )));
        };
        let mut report = OpenReport { generation, ..OpenReport::default() };
        let base = open_base(&path.join(base_name(generation)))?;
        let mut delta = Delta::new(&base);
        let mut logs: Vec<u64> = listing.logs.iter().copied().filter(|&n| n >= generation).collect();
        if logs.is_empty() {
            if options.writable {
                create_log(path, generation)?;
            }
            logs.push(generation);
        }
        for (i, pair) in logs.windows(2).enumerate() {
            if pair[1] != pair[0] + 1 || (i == 0 && pair[0] != generation) {
                return Err(StoreError::NotAnIndexDir(format!(
                    "{}: delta logs {:?} do not follow base {generation} without a gap",
                    path.display(),
                    logs
                )));
            }
        }
        if logs[0] != generation {
            return Err(StoreError::NotAnIndexDir(format!(
                "{}: the delta log of base {generation} is missing",
                path.display()
            )));
        }
        let mut last_len = log::HEADER_LEN as u64;
        let last = *logs.last().expect("at least one log");
        for &number in &logs {
            let log_path = path.join(log_name(number));
            if !log_path.exists() && !options.writable {
                // A read-only view of a directory whose first log was never created.
                continue;
            }
            let limit = durable_len(mark, number);
            let (valid_len, damage, batches) = replay(&log_path, number, limit, &base, &mut delta)?;
            report.batches += batches;
            last_len = valid_len;
            let Some(damage) = damage else { continue };
            let torn_tail = number == last && !damage.later_records;
            if !torn_tail && !options.repair {
                return Err(StoreError::Corrupt {
                    file: log_path,
                    offset: damage.offset,
                    reason: damage.reason,
                });
            }
            if options.writable {
                let file = OpenOptions::new().write(true).open(&log_path).map_err(io_error(&log_path))?;
                file.set_len(valid_len).map_err(io_error(&log_path))?;
                file.sync_all().map_err(io_error(&log_path))?;
            }
            report.cut.push((log_path, damage));
        }
        if options.writable {
            let stale = listing.bases.iter().filter(|&&n| n < generation).map(|&n| path.join(base_name(n)));
            let stale_logs =
                listing.logs.iter().filter(|&&n| n < generation).map(|&n| path.join(log_name(n)));
            for file in stale.chain(stale_logs).chain(listing.temporary.iter().cloned()) {
                fs::remove_file(&file).map_err(io_error(&file))?;
                report.removed.push(file);
            }
            if !report.removed.is_empty() {
                sync_dir(path).map_err(io_error(path))?;
            }
        }
        Ok((Live::new(base, delta, generation), report, last, last_len))
    }

    /// The current generation, for queries: hold it as long as one query runs.
    pub fn live(&self) -> Arc<Live> {
        self.current.load_full()
    }

    /// The directory, if this is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether changes can be submitted.
    pub fn is_writable(&self) -> bool {
        self.writer.is_some()
    }

    fn writer(&self) -> Result<&Writer, StoreError> {
        self.writer.as_ref().ok_or(StoreError::ReadOnly)
    }

    /// Writes a batch of changes durably, applies it, and returns when both are done.
    /// Concurrent callers share fsyncs. `actor` is recorded with the batch.
    pub fn submit(
        self: &Arc<Self>,
        changes: Vec<Change>,
        actor: Option<&str>,
    ) -> Result<Receipt, StoreError> {
        let writer = self.writer()?;
        let mut state = lock(&writer.state);
        if let Some(failure) = &state.failed {
            return Err(StoreError::Failed(failure.clone()));
        }
        let lists = check_batch(&state.lists, &changes)?;
        let batch =
            Batch { seq: state.next_seq, time_ms: now_ms(), actor: actor.map(str::to_string), changes };
        let record = log::encode_record(&batch);
        if record.len() > log::record_len(log::MAX_PAYLOAD) {
            return Err(ChangeError::Invalid("batch larger than 256 MiB: split it".into()).into());
        }
        let seq = batch.seq;
        state.next_seq += 1;
        state.lists.extend(lists);
        state.queue.push(Queued { batch, record });
        loop {
            if state.done_seq >= seq {
                let applied = state.results.remove(&seq).unwrap_or_default();
                drop(state);
                self.maybe_compact();
                return Ok(Receipt { seq, applied });
            }
            if let Some(failure) = &state.failed {
                return Err(StoreError::Failed(failure.clone()));
            }
            if state.busy {
                state = writer.turn.wait(state).unwrap_or_else(PoisonError::into_inner);
            } else {
                state = self.lead(state);
            }
        }
    }

    /// Writes and applies every queued batch, as the leader; returns with `busy` cleared.
    fn lead<'a>(&'a self, mut state: MutexGuard<'a, WriterState>) -> MutexGuard<'a, WriterState> {
        let writer = self.writer.as_ref().expect("only writers lead");
        state.busy = true;
        let queue = std::mem::take(&mut state.queue);
        drop(state);
        let outcome = self.write_and_apply(&queue);
        let mut state = lock(&writer.state);
        settle(&mut state, &queue, outcome);
        state.busy = false;
        writer.turn.notify_all();
        state
    }

    fn write_and_apply(&self, queue: &[Queued]) -> Result<Vec<(u64, Applied)>, io::Error> {
        if queue.is_empty() {
            return Ok(Vec::new());
        }
        let writer = self.writer.as_ref().expect("only writers write");
        {
            let mut log = lock(&writer.log);
            let bytes: Vec<u8> = queue.iter().flat_map(|q| q.record.iter().copied()).collect();
            log.file.write_all(&bytes)?;
            log.file.sync_data()?;
            log.len += bytes.len() as u64;
            log.publish()?;
        }
        let live = self.current.load();
        let mut delta = live.delta.write().unwrap_or_else(PoisonError::into_inner);
        Ok(queue
            .iter()
            .map(|q| (q.batch.seq, delta.apply(&live.base, q.batch.seq, &q.batch.changes)))
            .collect())
    }

    /// Waits for the writer's turn and takes it, after writing whatever is queued; the turn
    /// ends when the guard drops. Inside it nothing else is written or applied.
    fn take_turn(&self) -> Result<Turn<'_>, StoreError> {
        let writer = self.writer()?;
        let mut state = lock(&writer.state);
        loop {
            if let Some(failure) = &state.failed {
                return Err(StoreError::Failed(failure.clone()));
            }
            if state.busy {
                state = writer.turn.wait(state).unwrap_or_else(PoisonError::into_inner);
            } else if !state.queue.is_empty() {
                state = self.lead(state);
            } else {
                state.busy = true;
                return Ok(Turn { writer });
            }
        }
    }

    fn maybe_compact(self: &Arc<Self>) {
        let (Some(limit), Some(writer)) = (self.options.compact_after, &self.writer) else { return };
        if self.live().view(|view| view.delta.changes()) < limit
            || writer.compacting.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let dir = Arc::clone(self);
        std::thread::spawn(move || {
            match dir.compact() {
                Ok(done) => tracing::info!(
                    generation = done.generation,
                    entries = done.entries,
                    seconds = done.seconds,
                    "automatic compaction finished"
                ),
                Err(err) => {
                    tracing::error!(error = %err, "automatic compaction failed; the delta log keeps every change")
                }
            }
            if let Some(writer) = &dir.writer {
                writer.compacting.store(false, Ordering::Release);
            }
        });
    }

    /// Makes list `name` hold exactly `entries` (a new version of the list, e.g. a daily
    /// drop), writing only the difference as one batch. `options` defines the list if it is
    /// new (default settings if `None`); for an existing list they must match its settings.
    pub fn refresh(
        &self,
        name: &str,
        options: Option<ListOptions>,
        entries: Vec<ImportedEntry>,
        actor: Option<&str>,
    ) -> Result<Refreshed, StoreError> {
        let writer = self.writer()?;
        let _turn = self.take_turn()?;
        // Holding the state keeps other batches from being queued while the difference is
        // computed, so it is against exactly the state it will apply to.
        let mut state = lock(&writer.state);
        let queued = std::mem::take(&mut state.queue);
        let outcome = self.write_and_apply(&queued);
        settle(&mut state, &queued, outcome);
        writer.turn.notify_all();
        if let Some(failure) = &state.failed {
            return Err(StoreError::Failed(failure.clone()));
        }
        let (changes, mut refreshed) =
            self.live().view(|view| list_difference(view, name, options, entries))?;
        refreshed.seq = state.done_seq;
        if changes.is_empty() {
            return Ok(refreshed);
        }
        let lists = check_batch(&state.lists, &changes)?;
        let batch =
            Batch { seq: state.next_seq, time_ms: now_ms(), actor: actor.map(str::to_string), changes };
        let record = log::encode_record(&batch);
        if record.len() > log::record_len(log::MAX_PAYLOAD) {
            return Err(ChangeError::Invalid(
                "the difference is larger than 256 MiB: rebuild the index with `hashsieve index build` instead".into(),
            )
            .into());
        }
        state.next_seq += 1;
        state.lists.extend(lists);
        let queue = [Queued { batch, record }];
        let outcome = self.write_and_apply(&queue);
        settle(&mut state, &queue, outcome);
        if let Some(failure) = &state.failed {
            return Err(StoreError::Failed(failure.clone()));
        }
        refreshed.seq = queue[0].batch.seq;
        state.results.remove(&refreshed.seq);
        Ok(refreshed)
    }

    /// Folds the delta into a new index file and swaps it in while queries and writes go on.
    pub fn compact(&self) -> Result<Compaction, StoreError> {
        let writer = self.writer()?;
        let path = self.path.as_deref().expect("a writable index is a directory");
        let _one_at_a_time = lock(&writer.compaction);
        let started = Instant::now();

        // 1. Rotate: changes from now on go to a new log; the old ones stop growing.
        let (generation, folded_up_to, next) = {
            let _turn = self.take_turn()?;
            let mut log = lock(&writer.log);
            let next = log.number + 1;
            create_log(path, next)?;
            let log_path = path.join(log_name(next));
            log.file = OpenOptions::new().append(true).open(&log_path).map_err(io_error(&log_path))?;
            let folded_up_to = log.number;
            log.number = next;
            log.len = log::HEADER_LEN as u64;
            log.publish().map_err(io_error(&path.join(MARK_NAME)))?;
            (self.live().generation, folded_up_to, next)
        };

        // 2. Fold the base and the closed logs into a new index file, from disk, unlocked.
        let base = open_base(&path.join(base_name(generation)))?;
        let mut delta = Delta::new(&base);
        for number in generation..=folded_up_to {
            let log_path = path.join(log_name(number));
            let (_, damage, _) = replay(&log_path, number, None, &base, &mut delta)?;
            if let Some(damage) = damage {
                return Err(StoreError::Corrupt {
                    file: log_path,
                    offset: damage.offset,
                    reason: damage.reason,
                });
            }
        }
        let builder = fold(View { base: &base, delta: &delta })?;
        drop((delta, base));
        let new_path = path.join(base_name(next));
        builder
            .write_to_path(&new_path)
            .map_err(|source| StoreError::Index { path: new_path.clone(), source })?;
        drop(builder);

        // 3. Swap, between two batches: the new base plus the new log's changes.
        let new_base = open_base(&new_path)?;
        let entries = new_base.kinds().iter().map(|&kind| new_base.len(kind) as u64).sum();
        let bytes = new_base.file().bytes().len() as u64;
        {
            let _turn = self.take_turn()?;
            let mut delta = Delta::new(&new_base);
            let log_path = path.join(log_name(next));
            let (_, damage, _) = replay(&log_path, next, None, &new_base, &mut delta)?;
            if let Some(damage) = damage {
                return Err(StoreError::Corrupt {
                    file: log_path,
                    offset: damage.offset,
                    reason: damage.reason,
                });
            }
            self.current.store(Arc::new(Live::new(new_base, delta, next)));
        }
        let seconds = started.elapsed().as_secs_f64();

        // 4. Remove what the new base holds; a crash before this is cleaned up on open.
        let old_files = std::iter::once(path.join(base_name(generation)))
            .chain((generation..=folded_up_to).map(|n| path.join(log_name(n))));
        for file in old_files {
            fs::remove_file(&file).map_err(io_error(&file))?;
        }
        sync_dir(path).map_err(io_error(path))?;
        Ok(Compaction { generation: next, entries, bytes, seconds })
    }
}

/// Records what writing `queue` came to, for the writers waiting on it.
fn settle(state: &mut WriterState, queue: &[Queued], outcome: io::Result<Vec<(u64, Applied)>>) {
    match outcome {
        Ok(results) => {
            state.done_seq = queue.last().map_or(state.done_seq, |q| q.batch.seq);
            state.results.extend(results);
        }
        Err(err) => state.failed = Some(err.to_string()),
    }
}

/// The writer's turn; see [`IndexDir::take_turn`].
struct Turn<'a> {
    writer: &'a Writer,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        lock(&self.writer.state).busy = false;
        self.writer.turn.notify_all();
    }
}

/// Checks a batch against the lists as they will be when it applies; returns the lists it
/// defines.
fn check_batch(
    lists: &HashMap<String, ListOptions>,
    changes: &[Change],
) -> Result<Vec<(String, ListOptions)>, ChangeError> {
    let mut defined: Vec<(String, ListOptions)> = Vec::new();
    let find = |name: &str, defined: &[(String, ListOptions)]| {
        lists.get(name).cloned().or_else(|| defined.iter().find(|(n, _)| n == name).map(|(_, o)| o.clone()))
    };
    for change in changes {
        check_change(change)?;
        match change {
            Change::DefineList(options) => match find(&options.name, &defined) {
                Some(existing) if existing != *options => {
                    return Err(ChangeError::ListConflict(options.name.clone()));
                }
                Some(_) => {}
                None => defined.push((options.name.clone(), options.clone())),
            },
            Change::Add { list, .. } => {
                find(list, &defined).ok_or_else(|| ChangeError::UnknownList(list.clone()))?;
            }
            Change::Remove(removal) => {
                if let Some(list) = &removal.list {
                    find(list, &defined).ok_or_else(|| ChangeError::UnknownList(list.clone()))?;
                }
            }
        }
    }
    Ok(defined)
}

/// An index builder holding every visible entry of `view`, with every list and its sources.
pub fn fold<B: AsRef<[u8]>>(view: View<'_, B>) -> Result<IndexBuilder, StoreError> {
    let mut builder = IndexBuilder::new();
    let invalid = |source| StoreError::Index { path: PathBuf::from("(compaction)"), source };
    let mut ids = Vec::new();
    for list in view.delta.lists() {
        let id = builder.add_list(list.options()).map_err(invalid)?;
        for source in &list.sources {
            builder.add_source(id, source.clone());
        }
        ids.push(id);
    }
    let mut failure = None;
    view.for_each_entry(|entry| {
        let list = builder.list_id(&entry.list.name).expect("every list was added");
        if let Err(err) = builder.add(list, &entry.to_entry()) {
            failure.get_or_insert(err);
        }
    });
    match failure {
        Some(err) => Err(invalid(err)),
        None => Ok(builder),
    }
}

/// The changes that turn list `name` as `view` has it into `entries`.
fn list_difference<B: AsRef<[u8]>>(
    view: View<'_, B>,
    name: &str,
    options: Option<ListOptions>,
    entries: Vec<ImportedEntry>,
) -> Result<(Vec<Change>, Refreshed), StoreError> {
    type Key = (HashKind, Vec<u8>, Option<String>);
    let mut changes = Vec::new();
    let mut refreshed = Refreshed::default();
    match (view.delta.list(name), options) {
        (Some(existing), Some(options)) if existing.options() != options => {
            return Err(ChangeError::ListConflict(name.to_string()).into());
        }
        (Some(_), _) => {}
        (None, options) => {
            changes.push(Change::DefineList(options.unwrap_or_else(|| ListOptions::new(name))));
            refreshed.created = true;
        }
    }
    let mut current: HashMap<Key, ImportedEntry> = HashMap::new();
    view.for_each_entry(|entry| {
        if entry.list.name == name {
            let entry = entry.to_entry();
            current.insert((entry.kind, entry.value.clone(), entry.id.clone()), entry);
        }
    });
    let mut wanted: HashMap<Key, ImportedEntry> = HashMap::new();
    for entry in entries {
        wanted.insert((entry.kind, entry.value.clone(), entry.id.clone()), entry);
    }
    refreshed.entries = wanted.len() as u64;
    // A removal without an id withdraws every entry with that hash, so entries with the same
    // hash that stay are added back after it.
    let mut cleared: HashSet<(HashKind, Vec<u8>)> = HashSet::new();
    let mut gone: Vec<&Key> = current.keys().filter(|key| !wanted.contains_key(*key)).collect();
    gone.sort();
    for (kind, value, id) in gone {
        if id.is_none() {
            cleared.insert((*kind, value.clone()));
        }
        changes.push(Change::Remove(Removal {
            list: Some(name.to_string()),
            hash: Some((*kind, value.clone())),
            entry_id: id.clone(),
        }));
        refreshed.removed += 1;
    }
    let mut wanted: Vec<(Key, ImportedEntry)> = wanted.into_iter().collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, entry) in wanted {
        let same = current.get(&key) == Some(&entry);
        if same && !cleared.contains(&(key.0, key.1.clone())) {
            refreshed.unchanged += 1;
            continue;
        }
        if same {
            refreshed.unchanged += 1;
        } else {
            refreshed.added += 1;
        }
        changes.push(Change::Add { list: name.to_string(), entry });
    }
    Ok((changes, refreshed))
}
