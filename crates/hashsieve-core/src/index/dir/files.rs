//! The files of an index directory: their names, the listing, the durable mark, and replaying
//! a log.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::storage::Storage;
use super::{IndexDirError, io_error};
use crate::delta::live::Delta;
use crate::delta::log::{self, DurableMark, LogContents, LogDamage, LogError};
use crate::index::format::is_temporary;
use crate::index::{Index, IndexBytes};

/// The durable mark's file name.
pub(super) const MARK_NAME: &str = "DURABLE";

pub(super) fn base_name(generation: u64) -> String {
    format!("base-{generation:020}.hsi")
}

pub(super) fn log_name(number: u64) -> String {
    format!("delta-{number:020}.log")
}

fn parse_number(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// Whether `name` is a base or a log, the files whose change a follower watches for.
fn is_base_or_log(name: &str) -> bool {
    parse_number(name, "base-", ".hsi").is_some() || parse_number(name, "delta-", ".log").is_some()
}

/// The files of an index directory, numbers ascending.
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub bases: Vec<u64>,
    pub logs: Vec<u64>,
    pub temporary: Vec<String>,
}

pub(super) fn list(storage: &dyn Storage) -> Result<Listing, IndexDirError> {
    let mut listing = Listing::default();
    for name in storage.list().map_err(io_error(storage, ""))? {
        if let Some(n) = parse_number(&name, "base-", ".hsi") {
            listing.bases.push(n);
        } else if let Some(n) = parse_number(&name, "delta-", ".log") {
            listing.logs.push(n);
        } else if is_temporary(&name) {
            listing.temporary.push(name);
        }
    }
    listing.bases.sort_unstable();
    listing.logs.sort_unstable();
    Ok(listing)
}

pub(super) fn open_base(storage: &dyn Storage, generation: u64) -> Result<Index<IndexBytes>, IndexDirError> {
    let name = base_name(generation);
    let bytes = storage.map(&name).map_err(io_error(storage, &name))?;
    Index::open(bytes).map_err(|source| IndexDirError::Index { path: storage.path(&name), source })
}

pub(super) fn create_log(storage: &dyn Storage, number: u64) -> Result<(), IndexDirError> {
    let name = log_name(number);
    storage.write_atomically(&name, &log::header(number)).map_err(io_error(storage, &name))
}

/// Replaces the durable mark, all at once and durably, creating it if need be.
pub(super) fn write_mark(storage: &dyn Storage, mark: DurableMark) -> Result<(), IndexDirError> {
    storage.write_atomically(MARK_NAME, &mark.encode()).map_err(io_error(storage, MARK_NAME))
}

/// The durable mark, or `None` for a directory an older build wrote, which has none.
pub(super) fn read_mark(storage: &dyn Storage) -> Result<Option<DurableMark>, IndexDirError> {
    let mut reason = String::new();
    // The writer rewrites the mark in place, so a read can meet half of a rewrite: read again.
    for _ in 0..3 {
        match storage.read(MARK_NAME) {
            Ok(bytes) => match DurableMark::decode(&bytes) {
                Ok(mark) => return Ok(Some(mark)),
                Err(why) => reason = why,
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(storage, MARK_NAME)(err)),
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(IndexDirError::DamagedMark { file: storage.path(MARK_NAME), reason })
}

/// How much of log `number` a follower may replay, given the mark it read before listing
/// the logs: all of a log the writer has moved past, a marked log up to the mark, nothing of a
/// log created after the mark was read. `None`: all of it.
pub(super) fn durable_len(mark: Option<DurableMark>, number: u64) -> Option<u64> {
    let mark = mark?;
    match number.cmp(&mark.number) {
        std::cmp::Ordering::Less => None,
        std::cmp::Ordering::Equal => Some(mark.len),
        std::cmp::Ordering::Greater => Some(log::HEADER_LEN as u64),
    }
}

/// Reads log `number` without replaying it, checking that it is the log its name says.
fn read_log(storage: &dyn Storage, number: u64, limit: Option<u64>) -> Result<LogContents, IndexDirError> {
    let name = log_name(number);
    let mut bytes = storage.read(&name).map_err(io_error(storage, &name))?;
    if let Some(limit) = limit {
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let contents = log::read_log(&bytes)
        .map_err(|LogError::Header(reason)| IndexDirError::LogHeader { file: storage.path(&name), reason })?;
    if contents.number != number {
        return Err(IndexDirError::LogNumber { file: storage.path(&name), header: contents.number });
    }
    Ok(contents)
}

/// What replaying a log found.
pub(super) struct Replayed {
    /// The length of its valid part.
    pub valid_len: u64,
    /// Where it is damaged, if it is.
    pub damage: Option<LogDamage>,
    /// Batches applied.
    pub batches: u64,
}

impl Replayed {
    /// Refuses any damage: for logs that were closed whole, which a crash cannot have torn.
    pub fn whole(self, storage: &dyn Storage, number: u64) -> Result<(), IndexDirError> {
        match self.damage {
            None => Ok(()),
            Some(damage) => Err(IndexDirError::Corrupt {
                file: storage.path(&log_name(number)),
                offset: damage.offset,
                reason: damage.reason,
            }),
        }
    }
}

/// Replays log `number`, or its first `limit` bytes, onto `delta`.
pub(super) fn replay(
    storage: &dyn Storage,
    number: u64,
    limit: Option<u64>,
    base: &Index<IndexBytes>,
    delta: &mut Delta,
) -> Result<Replayed, IndexDirError> {
    let contents = read_log(storage, number, limit)?;
    let mut batches = 0;
    for batch in &contents.batches {
        if batch.seq <= delta.last_seq() {
            return Err(IndexDirError::OutOfOrder {
                file: storage.path(&log_name(number)),
                seq: batch.seq,
                after: delta.last_seq(),
            });
        }
        delta.apply(base, batch.seq, &batch.changes);
        batches += 1;
    }
    Ok(Replayed { valid_len: contents.valid_len, damage: contents.damage, batches })
}

/// The logs of an index directory's current base, read without replaying them: for
/// `hashsieve list log`. Reading does not change anything.
pub fn read_logs(storage: &dyn Storage) -> Result<Vec<(std::path::PathBuf, LogContents)>, IndexDirError> {
    let listing = list(storage)?;
    let generation = listing.bases.last().copied().unwrap_or(0);
    listing
        .logs
        .into_iter()
        .filter(|&n| n >= generation)
        .map(|number| Ok((storage.path(&log_name(number)), read_log(storage, number, None)?)))
        .collect()
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
    /// Takes the fingerprint of an index file or directory on disk.
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
                is_base_or_log(&name)
                    .then(|| entry.metadata().ok().map(|meta| describe(name, meta)))
                    .flatten()
            })
            .collect();
        files.sort();
        Fingerprint { files, mark: fs::read(path.join(MARK_NAME)).ok() }
    }
}
