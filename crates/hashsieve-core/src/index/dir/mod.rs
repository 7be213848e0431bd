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
//! The bytes of the logs and of the mark are in [`delta::log`](crate::delta::log) and
//! `docs/INDEX-FORMAT.md`. The parts:
//!
//! - **Opening** ([`open`]) takes the highest base that exists, replays its logs in order and
//!   removes files a finished compaction left behind. The last log may end in a torn record —
//!   a crash during a write that was never acknowledged — and is cut back to its last whole
//!   batch, with a warning. Damage anywhere else, or followed by valid records, is corruption:
//!   opening fails rather than drop acknowledged changes, unless the caller asks for a repair.
//! - **Writing** ([`writer`]): [`IndexDir::submit`] checks a batch of [`Change`](crate::delta::Change)s, gives it the
//!   next sequence number and queues it. One waiting writer at a time becomes the leader: it
//!   appends every queued record in one write, calls `fdatasync`, applies the batches to the
//!   in-memory delta in order, and wakes the others; so concurrent writers share fsyncs (group
//!   commit), and a change is acknowledged, and visible to queries, only once it is durable.
//!   A failed write leaves what is on disk uncertain, so every later write is refused until the
//!   directory is reopened, which replays the log as it is.
//! - **Following**: a process that opens the directory read-only (`hashsieve scan`, a
//!   read-only daemon) replays only what the writer has made durable. After each `fdatasync`
//!   the leader rewrites the durable mark — the active log's number and its durable length —
//!   before it acknowledges, so a follower reads the mark first and then replays the older logs
//!   whole and the marked log up to the mark: every change it serves was acknowledged, and none
//!   is one a power loss could still drop. A follower may lag the writer by a batch, never lead
//!   it. A directory without a mark (written by an older build) is replayed whole.
//! - **Compaction** ([`compact`]) rotates to a new log, folds base + old logs into a new index
//!   file (written atomically), then, between two batches, opens it, replays the new log onto
//!   it and swaps it in (`arc-swap`): a query holds the old generation or the new, never a mix,
//!   and the old file's mapping is released by its last reader. A crash at any step leaves a
//!   directory that opens to the same changes.
//!
//! Every file operation goes through a [`Storage`]: [`OsStorage`] on disk, or a test's own to
//! inject failures ([`storage`]).
//!
//! ```
//! use std::sync::Arc;
//! use hashsieve_core::delta::Change;
//! use hashsieve_core::hashes::HashKind;
//! use hashsieve_core::import::ImportedEntry;
//! use hashsieve_core::index::dir::{DirOptions, IndexDir};
//! use hashsieve_core::index::{IndexBuilder, ListOptions};
//!
//! let path = std::env::temp_dir().join(format!("index-dir-doc-{}", std::process::id()));
//! IndexDir::create(&path, &IndexBuilder::new())?;
//! let (dir, _report) = IndexDir::open(&path, DirOptions::default())?;
//! let dir = Arc::new(dir);
//! let entry = ImportedEntry::new(HashKind::Md5, vec![7; 16]).with_id("R-1");
//! let changes = vec![
//!     Change::DefineList(ListOptions::new("hotline-a")),
//!     Change::Add { list: "hotline-a".into(), entry },
//! ];
//! let receipt = dir.submit(changes, Some("analyst-3"))?; // durable when it returns
//! assert_eq!(receipt.applied.added, 1);
//!
//! // A follower (here in the same process) sees what was acknowledged.
//! let (follower, _) = IndexDir::open(&path, DirOptions { writable: false, ..DirOptions::default() })?;
//! assert!(follower.current().view(|view| view.delta.list("hotline-a").is_some()));
//! # drop((dir, follower));
//! # std::fs::remove_dir_all(&path).unwrap();
//! # Ok::<(), hashsieve_core::index::dir::IndexDirError>(())
//! ```

pub mod compact;
mod files;
pub mod open;
pub mod storage;
pub mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use arc_swap::ArcSwap;

use crate::delta::ChangeError;
use crate::delta::live::{Delta, View};
use crate::delta::log::{DurableMark, HEADER_LEN};
use crate::index::{Index, IndexBuilder, IndexBytes, IndexError};

pub use self::compact::Compaction;
pub use self::files::{Fingerprint, read_logs};
pub use self::open::{DEFAULT_COMPACT_AFTER, DirOptions, OpenReport};
pub use self::storage::{LogFile, MarkFile, OsStorage, Storage};
pub use self::writer::Receipt;
use self::writer::Writer;

/// Why an index directory could not be opened, written or compacted.
#[derive(Debug, thiserror::Error)]
pub enum IndexDirError {
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
    /// Creating an index directory where something already is.
    #[error("{0}: exists and is not empty")]
    NotEmpty(PathBuf),
    /// The directory holds no index file.
    #[error("{0}: no base-*.hsi index file (create one with `hashsieve index build --dir`)")]
    NoBase(PathBuf),
    /// The logs do not continue the newest base one after another.
    #[error("{dir}: delta logs {logs:?} do not follow base {generation} without a gap")]
    LogGap {
        /// The directory.
        dir: PathBuf,
        /// The newest base.
        generation: u64,
        /// The numbers of the logs found from it on.
        logs: Vec<u64>,
    },
    /// A log's header names another log than its file name does.
    #[error("{file}: the header says log {header}")]
    LogNumber {
        /// The log file.
        file: PathBuf,
        /// The number in its header.
        header: u64,
    },
    /// A log's header is unreadable.
    #[error("{file}: header: {reason}")]
    LogHeader {
        /// The log file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A log holds a batch whose sequence number does not follow the ones before it.
    #[error("{file}: batch {seq} repeats or precedes batch {after}")]
    OutOfOrder {
        /// The log file.
        file: PathBuf,
        /// The batch's number.
        seq: u64,
        /// The number it should have followed.
        after: u64,
    },
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
    /// The durable mark does not decode, read after read.
    #[error("{file}: {reason}; opening the directory for writing rewrites it")]
    DamagedMark {
        /// The mark's file.
        file: PathBuf,
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
    Failed(Arc<io::Error>),
    /// Compaction could not put the entries it folded into a new index file.
    #[error("compaction: {0}")]
    Fold(IndexError),
}

fn io_error<'a>(storage: &'a dyn Storage, name: &'a str) -> impl FnOnce(io::Error) -> IndexDirError + 'a {
    move |source| IndexDirError::Io { path: storage.path(name), source }
}

/// One generation: an index file and the delta on top of it. Queries hold an `Arc` of one;
/// compaction makes the next.
#[derive(Debug)]
pub struct Generation {
    base: Index<IndexBytes>,
    delta: RwLock<Delta>,
    number: u64,
}

impl Generation {
    fn new(base: Index<IndexBytes>, delta: Delta, number: u64) -> Generation {
        Generation { base, delta: RwLock::new(delta), number }
    }

    /// Runs `f` over the index file and delta as of now; changes wait until it returns.
    pub fn view<R>(&self, f: impl FnOnce(View<'_, IndexBytes>) -> R) -> R {
        let delta = self.delta.read().unwrap_or_else(PoisonError::into_inner);
        f(View { base: &self.base, delta: &delta })
    }

    /// The generation's number, its base's: it changes with every compaction.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The index file.
    pub fn base(&self) -> &Index<IndexBytes> {
        &self.base
    }
}

/// An open index directory (or a single index file, read-only).
#[derive(Debug)]
pub struct IndexDir {
    storage: Option<Arc<dyn Storage>>,
    current: ArcSwap<Generation>,
    writer: Option<Writer>,
    options: DirOptions,
}

impl IndexDir {
    /// Creates an index directory holding `base` and an empty log. `path` must not exist or be
    /// an empty directory.
    pub fn create(path: &Path, base: &IndexBuilder) -> Result<(), IndexDirError> {
        let storage = OsStorage::new(path);
        std::fs::create_dir_all(path).map_err(io_error(&storage, ""))?;
        if !storage.list().map_err(io_error(&storage, ""))?.is_empty() {
            return Err(IndexDirError::NotEmpty(path.to_path_buf()));
        }
        Self::create_in(&storage, base)
    }

    /// Creates an index directory in an empty `storage`.
    pub fn create_in(storage: &dyn Storage, base: &IndexBuilder) -> Result<(), IndexDirError> {
        // The log first: a directory with a base always has its log.
        files::create_log(storage, 1)?;
        files::write_mark(storage, DurableMark { number: 1, len: HEADER_LEN as u64 })?;
        let name = files::base_name(1);
        storage.write_atomically(&name, &base.to_vec()).map_err(io_error(storage, &name))
    }

    /// A single index file, read-only, with no delta.
    pub fn from_index(base: Index<IndexBytes>) -> IndexDir {
        let delta = Delta::new(&base);
        IndexDir {
            storage: None,
            current: ArcSwap::from_pointee(Generation::new(base, delta, 0)),
            writer: None,
            options: DirOptions { writable: false, compact_after: None, repair: false },
        }
    }

    /// Opens the index directory at `path`: the newest base and its logs replayed.
    pub fn open(path: &Path, options: DirOptions) -> Result<(IndexDir, OpenReport), IndexDirError> {
        Self::open_in(Arc::new(OsStorage::new(path)), options)
    }

    /// The generation queries see now: hold it as long as one query runs.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Whether changes can be submitted.
    pub fn is_writable(&self) -> bool {
        self.writer.is_some()
    }
}
