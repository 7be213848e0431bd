//! The writer: one enqueue path for every batch, group commit, the durable mark, and the
//! writer's turn that refresh and compaction take.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::files::{self, MARK_NAME, log_name};
use super::storage::{LogFile, MarkFile, Storage};
use super::{Generation, IndexDir, IndexDirError, io_error};
use crate::delta::live::Applied;
use crate::delta::log::{self, DurableMark};
use crate::delta::{Batch, Change, ChangeError, Refreshed, check_batch, list_difference};
use crate::import::ImportedEntry;
use crate::index::ListOptions;

/// An acknowledged batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The batch's sequence number.
    pub seq: u64,
    /// What it did.
    pub applied: Applied,
}

/// The log being appended to, and the durable mark that says how much of it is durable.
#[derive(Debug)]
pub(super) struct ActiveLog {
    pub file: Box<dyn LogFile>,
    pub number: u64,
    /// Its length, all of it durable.
    pub len: u64,
    mark: Box<dyn MarkFile>,
}

impl ActiveLog {
    /// Tells followers that the log is durable up to its length. In place and without an
    /// fsync of its own: after a power loss the mark may be older than the log, so followers
    /// lag until the writer reopens the directory and rewrites it — they are never ahead.
    pub fn publish(&mut self) -> io::Result<()> {
        self.mark.rewrite(&DurableMark { number: self.number, len: self.len }.encode())
    }

    /// Appends `bytes` and makes them durable, then tells followers.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)?;
        self.file.sync_data()?;
        self.len += bytes.len() as u64;
        self.publish()
    }
}

/// A batch with its log record, checked and numbered, waiting to be written.
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
    failed: Option<Arc<io::Error>>,
}

impl WriterState {
    /// Refuses every write once one has failed.
    fn check_failed(&self) -> Result<(), IndexDirError> {
        match &self.failed {
            Some(failure) => Err(IndexDirError::Failed(Arc::clone(failure))),
            None => Ok(()),
        }
    }

    /// Checks `changes` against the lists as they will be, numbers them and encodes their
    /// record: the one way a batch enters the log.
    fn prepare(&mut self, changes: Vec<Change>, actor: Option<&str>) -> Result<Queued, IndexDirError> {
        self.check_failed()?;
        let lists = check_batch(&self.lists, &changes)?;
        let batch = Batch {
            seq: self.next_seq,
            time_ms: crate::clock::now_ms(),
            actor: actor.map(str::to_string),
            changes,
        };
        let record = log::encode_record(&batch);
        if record.len() > log::record_len(log::MAX_PAYLOAD) {
            return Err(ChangeError::TooLarge { bytes: record.len() }.into());
        }
        self.next_seq += 1;
        self.lists.extend(lists);
        Ok(Queued { batch, record })
    }

    /// Records what writing `queue` came to, for the writers waiting on it.
    fn settle(&mut self, queue: &[Queued], outcome: io::Result<Vec<(u64, Applied)>>) {
        match outcome {
            Ok(results) => {
                self.done_seq = queue.last().map_or(self.done_seq, |q| q.batch.seq);
                self.results.extend(results);
            }
            Err(err) => self.failed = Some(Arc::new(err)),
        }
    }
}

/// The writing side of an open, writable index directory.
pub(super) struct Writer {
    _lock: Box<dyn fmt::Debug + Send + Sync>,
    state: Mutex<WriterState>,
    turn: Condvar,
    pub log: Mutex<ActiveLog>,
    pub compaction: Mutex<()>,
    pub compacting: AtomicBool,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("state", &self.state).field("log", &self.log).finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    /// The writer of a directory just loaded, whose last log is `last_log`, `last_len` bytes.
    pub fn start(
        storage: &dyn Storage,
        lock_guard: Box<dyn fmt::Debug + Send + Sync>,
        generation: &Generation,
        last_log: u64,
        last_len: u64,
    ) -> Result<Writer, IndexDirError> {
        let name = log_name(last_log);
        let mut file = storage.append(&name).map_err(io_error(storage, &name))?;
        // What was replayed may be a crashed writer's records that never reached their
        // fsync: make them durable before anyone is told of them.
        file.sync_data().map_err(io_error(storage, &name))?;
        files::write_mark(storage, DurableMark { number: last_log, len: last_len })?;
        let mark = storage.rewrite(MARK_NAME).map_err(io_error(storage, MARK_NAME))?;
        let (next_seq, lists) = generation.view(|view| {
            let lists = view.delta.lists().iter().map(|l| (l.name.clone(), l.options())).collect();
            (view.delta.last_seq() + 1, lists)
        });
        Ok(Writer {
            _lock: lock_guard,
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
}

/// The writer's turn; see [`IndexDir::take_turn`].
pub(super) struct Turn<'a> {
    writer: &'a Writer,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        lock(&self.writer.state).busy = false;
        self.writer.turn.notify_all();
    }
}

impl IndexDir {
    pub(super) fn writer(&self) -> Result<&Writer, IndexDirError> {
        self.writer.as_ref().ok_or(IndexDirError::ReadOnly)
    }

    /// Writes a batch of changes durably, applies it, and returns when both are done.
    /// Concurrent callers share fsyncs. `actor` is recorded with the batch.
    pub fn submit(
        self: &Arc<Self>,
        changes: Vec<Change>,
        actor: Option<&str>,
    ) -> Result<Receipt, IndexDirError> {
        let writer = self.writer()?;
        let mut state = lock(&writer.state);
        let queued = state.prepare(changes, actor)?;
        let seq = queued.batch.seq;
        state.queue.push(queued);
        loop {
            if state.done_seq >= seq {
                let applied = state.results.remove(&seq).unwrap_or_default();
                drop(state);
                self.maybe_compact();
                return Ok(Receipt { seq, applied });
            }
            state.check_failed()?;
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
        state.settle(&queue, outcome);
        state.busy = false;
        writer.turn.notify_all();
        state
    }

    fn write_and_apply(&self, queue: &[Queued]) -> io::Result<Vec<(u64, Applied)>> {
        if queue.is_empty() {
            return Ok(Vec::new());
        }
        let writer = self.writer.as_ref().expect("only writers write");
        let bytes: Vec<u8> = queue.iter().flat_map(|q| q.record.iter().copied()).collect();
        lock(&writer.log).write(&bytes)?;
        let current = self.current.load();
        let mut delta = current.delta.write().unwrap_or_else(PoisonError::into_inner);
        Ok(queue
            .iter()
            .map(|q| (q.batch.seq, delta.apply(&current.base, q.batch.seq, &q.batch.changes)))
            .collect())
    }

    /// Waits for the writer's turn and takes it, after writing whatever is queued; the turn
    /// ends when the guard drops. Inside it nothing else is written or applied.
    pub(super) fn take_turn(&self) -> Result<Turn<'_>, IndexDirError> {
        let writer = self.writer()?;
        let mut state = lock(&writer.state);
        loop {
            state.check_failed()?;
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

    /// Makes list `name` hold exactly `entries` (a new version of the list, e.g. a daily
    /// drop), writing only the difference as one batch. `options` defines the list if it is
    /// new (default settings if `None`); for an existing list they must match its settings.
    pub fn refresh(
        &self,
        name: &str,
        options: Option<ListOptions>,
        entries: Vec<ImportedEntry>,
        actor: Option<&str>,
    ) -> Result<Refreshed, IndexDirError> {
        let writer = self.writer()?;
        let _turn = self.take_turn()?;
        // Holding the state keeps other batches from being queued while the difference is
        // computed, so it is against exactly the state it will apply to.
        let mut state = lock(&writer.state);
        let queued = std::mem::take(&mut state.queue);
        let outcome = self.write_and_apply(&queued);
        state.settle(&queued, outcome);
        writer.turn.notify_all();
        state.check_failed()?;
        let (changes, mut refreshed) =
            self.current().view(|view| list_difference(view, name, options, entries))?;
        refreshed.seq = state.done_seq;
        if changes.is_empty() {
            return Ok(refreshed);
        }
        let queue = [state.prepare(changes, actor)?];
        let outcome = self.write_and_apply(&queue);
        state.settle(&queue, outcome);
        state.check_failed()?;
        refreshed.seq = queue[0].batch.seq;
        state.results.remove(&refreshed.seq);
        Ok(refreshed)
    }
}
