//! Compaction: the delta folded into a new index file, swapped in while queries and writes
//! go on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::files::{self, MARK_NAME, base_name, log_name};
use super::writer::lock;
use super::{Generation, IndexDir, IndexDirError, io_error};
use crate::delta::live::{Delta, View};
use crate::delta::log;
use crate::index::IndexBuilder;

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

impl IndexDir {
    /// Folds the delta into a new index file and swaps it in while queries and writes go on.
    pub fn compact(&self) -> Result<Compaction, IndexDirError> {
        let writer = self.writer()?;
        let storage = &**self.storage.as_ref().expect("a writable index is a directory");
        let _one_at_a_time = lock(&writer.compaction);
        let started = Instant::now();

        // 1. Rotate: changes from now on go to a new log; the old ones stop growing.
        let (generation, folded_up_to, next) = {
            let _turn = self.take_turn()?;
            let mut active = lock(&writer.log);
            let next = active.number + 1;
            files::create_log(storage, next)?;
            let name = log_name(next);
            active.file = storage.append(&name).map_err(io_error(storage, &name))?;
            let folded_up_to = active.number;
            active.number = next;
            active.len = log::HEADER_LEN as u64;
            active.publish().map_err(io_error(storage, MARK_NAME))?;
            (self.current().number, folded_up_to, next)
        };

        // 2. Fold the base and the closed logs into a new index file, from disk, unlocked.
        let base = files::open_base(storage, generation)?;
        let mut delta = Delta::new(&base);
        for number in generation..=folded_up_to {
            files::replay(storage, number, None, &base, &mut delta)?.whole(storage, number)?;
        }
        let bytes = fold(View { base: &base, delta: &delta })?.to_vec();
        drop((delta, base));
        let new_name = base_name(next);
        storage.write_atomically(&new_name, &bytes).map_err(io_error(storage, &new_name))?;
        drop(bytes);

        // 3. Swap, between two batches: the new base plus the new log's changes.
        let new_base = files::open_base(storage, next)?;
        let entries = new_base.kinds().iter().map(|&kind| new_base.len(kind) as u64).sum();
        let bytes = new_base.file().bytes().len() as u64;
        {
            let _turn = self.take_turn()?;
            let mut delta = Delta::new(&new_base);
            files::replay(storage, next, None, &new_base, &mut delta)?.whole(storage, next)?;
            self.current.store(Arc::new(Generation::new(new_base, delta, next)));
        }
        let seconds = started.elapsed().as_secs_f64();

        // 4. Remove what the new base holds; a crash before this is cleaned up on open.
        let old_files =
            std::iter::once(base_name(generation)).chain((generation..=folded_up_to).map(log_name));
        for name in old_files {
            storage.remove(&name).map_err(io_error(storage, &name))?;
        }
        storage.sync_dir().map_err(io_error(storage, ""))?;
        Ok(Compaction { generation: next, entries, bytes, seconds })
    }

    /// Starts a compaction in the background once the delta has grown past the option's limit.
    pub(super) fn maybe_compact(self: &Arc<Self>) {
        let (Some(limit), Some(writer)) = (self.options.compact_after, &self.writer) else { return };
        if self.current().view(|view| view.delta.changes()) < limit
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
}

/// An index builder holding every visible entry of `view`, with every list and its sources.
fn fold<B: AsRef<[u8]>>(view: View<'_, B>) -> Result<IndexBuilder, IndexDirError> {
    let mut builder = IndexBuilder::new();
    for list in view.delta.lists() {
        let id = builder.add_list(list.options()).map_err(IndexDirError::Fold)?;
        for source in &list.sources {
            builder.add_source(id, source.clone());
        }
    }
    let mut failure = None;
    view.for_each_entry(|entry| {
        let list = builder.list_id(&entry.list.name).expect("every list was added");
        if let Err(err) = builder.add(list, &entry.to_entry()) {
            failure.get_or_insert(err);
        }
    });
    match failure {
        Some(err) => Err(IndexDirError::Fold(err)),
        None => Ok(builder),
    }
}
