//! Opening an index directory: the lock, the newest base, its logs replayed, torn tails cut
//! and what an earlier compaction left behind removed.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::files::{self, Listing, base_name, log_name};
use super::storage::Storage;
use super::writer::Writer;
use super::{Generation, IndexDir, IndexDirError, io_error};
use crate::delta::live::Delta;
use crate::delta::log::{self, LogDamage};

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

/// What [`load`] read: the generation, the report, and the last log's number and length.
struct Loaded {
    generation: Generation,
    report: OpenReport,
    last_log: u64,
    last_len: u64,
}

impl IndexDir {
    /// Opens the index directory in `storage`: the newest base and its logs replayed.
    pub fn open_in(
        storage: Arc<dyn Storage>,
        options: DirOptions,
    ) -> Result<(IndexDir, OpenReport), IndexDirError> {
        let lock = if options.writable {
            let lock = storage.lock().map_err(io_error(&*storage, "LOCK"))?;
            Some(lock.ok_or_else(|| IndexDirError::Busy(storage.path("")))?)
        } else {
            None
        };
        // A reader can race a writer's compaction removing the files it listed: list again.
        let mut attempt = 0;
        let loaded = loop {
            match load(&*storage, &options) {
                Err(IndexDirError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 3 =>
                {
                    attempt += 1;
                }
                other => break other?,
            }
        };
        for (file, damage) in &loaded.report.cut {
            tracing::warn!(
                log = %file.display(),
                offset = damage.offset,
                reason = %damage.reason,
                "delta log cut at its last whole batch: the rest was never acknowledged"
            );
        }
        let writer = match lock {
            None => None,
            Some(lock) => {
                Some(Writer::start(&*storage, lock, &loaded.generation, loaded.last_log, loaded.last_len)?)
            }
        };
        let dir = IndexDir {
            storage: Some(storage),
            current: ArcSwap::from_pointee(loaded.generation),
            writer,
            options,
        };
        Ok((dir, loaded.report))
    }
}

/// Reads the newest base and replays its logs; when writable, also cuts torn tails and
/// removes leftovers.
fn load(storage: &dyn Storage, options: &DirOptions) -> Result<Loaded, IndexDirError> {
    // A follower reads the mark before it lists the logs: see `durable_len`.
    let mark = if options.writable { None } else { files::read_mark(storage)? };
    let listing = files::list(storage)?;
    let Some(&generation) = listing.bases.last() else {
        return Err(IndexDirError::NoBase(storage.path("")));
    };
    let mut report = OpenReport { generation, ..OpenReport::default() };
    let base = files::open_base(storage, generation)?;
    let mut delta = Delta::new(&base);
    let mut logs: Vec<u64> = listing.logs.iter().copied().filter(|&n| n >= generation).collect();
    if logs.is_empty() {
        if options.writable {
            files::create_log(storage, generation)?;
        }
        logs.push(generation);
    }
    let consecutive = logs.windows(2).all(|pair| pair[1] == pair[0] + 1);
    if !consecutive || logs[0] != generation {
        return Err(IndexDirError::LogGap { dir: storage.path(""), generation, logs });
    }
    let mut last_len = log::HEADER_LEN as u64;
    let last = *logs.last().expect("at least one log");
    for &number in &logs {
        let name = log_name(number);
        if !options.writable && !listing.logs.contains(&number) {
            // A read-only view of a directory whose first log was never created.
            continue;
        }
        let replayed = files::replay(storage, number, files::durable_len(mark, number), &base, &mut delta)?;
        report.batches += replayed.batches;
        last_len = replayed.valid_len;
        let Some(damage) = replayed.damage else { continue };
        let torn_tail = number == last && !damage.later_records;
        if !torn_tail && !options.repair {
            return Err(IndexDirError::Corrupt {
                file: storage.path(&name),
                offset: damage.offset,
                reason: damage.reason,
            });
        }
        if options.writable {
            storage.truncate(&name, replayed.valid_len).map_err(io_error(storage, &name))?;
        }
        report.cut.push((storage.path(&name), damage));
    }
    if options.writable {
        remove_leftovers(storage, &listing, generation, &mut report)?;
    }
    Ok(Loaded { generation: Generation::new(base, delta, generation), report, last_log: last, last_len })
}

/// Removes the bases and logs older than `generation` and interrupted writes.
fn remove_leftovers(
    storage: &dyn Storage,
    listing: &Listing,
    generation: u64,
    report: &mut OpenReport,
) -> Result<(), IndexDirError> {
    let stale_bases = listing.bases.iter().filter(|&&n| n < generation).map(|&n| base_name(n));
    let stale_logs = listing.logs.iter().filter(|&&n| n < generation).map(|&n| log_name(n));
    for name in stale_bases.chain(stale_logs).chain(listing.temporary.iter().cloned()) {
        storage.remove(&name).map_err(io_error(storage, &name))?;
        report.removed.push(storage.path(&name));
    }
    if !report.removed.is_empty() {
        storage.sync_dir().map_err(io_error(storage, ""))?;
    }
    Ok(())
}
