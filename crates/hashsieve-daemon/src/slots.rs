//! Hashing slots: how much content every protocol together hashes at once.
//!
//! Two bounds, both from `[limits]`: `max_in_flight` pieces of content at once (CPU), and
//! `max_decode_bytes` of decoding memory, each piece counted by what its decode will take as
//! its image header says ([`Signals::decode_memory`]) — so a burst of huge pictures waits
//! instead of taking the machine's memory, and small ones, or content that is not decoded,
//! cost none of it. A piece that needs more than the whole budget waits for all of it and
//! runs alone: the memory of decodes at once is at most `max(max_decode_bytes, one decode)`,
//! and one decode at most `max_image_pixels` × 11 bytes (16-bit RGBA, 8 bytes a pixel, and
//! its 8-bit RGB copy). Content that is received but not yet hashed is bounded separately,
//! by the connection bound and the body limits.
//!
//! Two rules make the bounds hold whatever clients do:
//! - a slot is taken for content that has **arrived**, whole and within its limits — never
//!   while waiting for a client, so clients that stall hold connections, which have their
//!   own bound and deadlines, and no slot;
//! - a slot is **owned by the work it admits**: [`Slot::run`] moves it into the blocking
//!   task, so a request that times out or whose client goes away frees its slot when the
//!   decode ends, not before. Work that a blocking thread picks up after its deadline is
//!   skipped, since nobody waits for its answer any more.
//!
//! [`Signals::decode_memory`]: hashsieve_core::signals::Signals::decode_memory

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// The unit decoding memory is counted in.
const MIB: u64 = 1 << 20;

/// The shared bounds on hashing.
#[derive(Debug)]
pub struct HashingSlots {
    pieces: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    max_pieces: usize,
    memory_mib: u32,
    waiting: AtomicUsize,
}

/// A place to hash one piece of content, with the memory its decode needs.
#[derive(Debug)]
pub struct Slot {
    _piece: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

/// No slot is free (now, or before the deadline).
#[derive(Debug, thiserror::Error)]
#[error("too much content is being hashed")]
pub struct Busy;

/// Why hashing gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// The deadline passed before a blocking thread picked the work up.
    #[error("the deadline passed before hashing began")]
    Late,
    /// The work panicked (a bug, contained).
    #[error("hashing failed")]
    Failed,
}

impl HashingSlots {
    /// The bounds of `limits`.
    pub fn new(limits: &Limits) -> HashingSlots {
        let memory_mib = u32::try_from(limits.max_decode_bytes.div_ceil(MIB)).unwrap_or(u32::MAX).max(1);
        HashingSlots {
            pieces: Arc::new(Semaphore::new(limits.max_in_flight)),
            memory: Arc::new(Semaphore::new(memory_mib as usize)),
            max_pieces: limits.max_in_flight,
            memory_mib,
            waiting: AtomicUsize::new(0),
        }
    }

    /// The budget units `bytes` of decoding take; never more than the whole budget.
    fn units(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(MIB)).unwrap_or(u32::MAX).min(self.memory_mib)
    }

    /// A slot for content whose decode needs `memory` bytes, if one is free now (HTTP: a
    /// client told 503 with `Retry-After` retries, one left queueing might not).
    pub fn try_take(&self, memory: u64) -> Result<Slot, Busy> {
        let piece = Arc::clone(&self.pieces).try_acquire_owned().map_err(|_| Busy)?;
        let memory = Arc::clone(&self.memory).try_acquire_many_owned(self.units(memory)).map_err(|_| Busy)?;
        Ok(Slot { _piece: piece, _memory: memory })
    }

    /// A slot, waiting for one until `deadline` (clamd's and ICAP's clients do not retry).
    pub async fn take_before(&self, memory: u64, deadline: Instant) -> Result<Slot, Busy> {
        tokio::time::timeout_at(deadline.into(), self.take(memory)).await.map_err(|_| Busy)
    }

    /// A slot, waiting as long as it takes (the ingest queue, which has no client waiting).
    pub async fn take(&self, memory: u64) -> Slot {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Waiting(&self.waiting);
        let piece = Arc::clone(&self.pieces).acquire_owned().await.expect("the semaphore is never closed");
        let memory = Arc::clone(&self.memory)
            .acquire_many_owned(self.units(memory))
            .await
            .expect("the semaphore is never closed");
        Slot { _piece: piece, _memory: memory }
    }

    /// Pieces being hashed now.
    pub fn busy(&self) -> usize {
        self.max_pieces - self.pieces.available_permits()
    }

    /// Pieces waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// `max_in_flight`.
    pub fn max(&self) -> usize {
        self.max_pieces
    }
}

/// Counts a waiter until dropped, also when its wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Slot {
    /// Runs `work` on the blocking pool, holding this slot until the work returns — also when
    /// the caller stops waiting for it. Skipped if it could only start after `deadline`.
    pub async fn run<T: Send + 'static>(
        self,
        deadline: Option<Instant>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        tokio::task::spawn_blocking(move || {
            let _slot = self;
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(HashingError::Late);
            }
            Ok(work())
        })
        .await
        .map_err(|_| HashingError::Failed)?
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn slots(max_in_flight: usize, max_decode_bytes: u64) -> Arc<HashingSlots> {
        Arc::new(HashingSlots::new(&Limits { max_in_flight, max_decode_bytes, ..Limits::default() }))
    }

    #[tokio::test]
    async fn memory_is_a_budget_shared_by_every_piece_and_the_pieces_are_counted_too() {
        let slots = slots(3, 100 * MIB);
        let big = slots.try_take(60 * MIB).unwrap();
        assert!(slots.try_take(60 * MIB).is_err(), "over the memory budget");
        let small = slots.try_take(40 * MIB).unwrap();
        assert!(slots.try_take(1).is_err(), "the budget is spent");
        let free = slots.try_take(0).unwrap();
        assert!(slots.try_take(0).is_err(), "every piece is taken");
        assert_eq!(slots.busy(), 3);
        drop((big, small, free));
        // More than the whole budget: waits for all of it, then runs alone.
        let huge = slots.try_take(500 * MIB).unwrap();
        assert!(slots.try_take(1).is_err());
        drop(huge);
        assert_eq!(slots.busy(), 0);
    }

    #[tokio::test]
    async fn a_slot_is_freed_when_its_work_ends_not_when_its_caller_gives_up() {
        let slots = slots(1, 100 * MIB);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let slot = slots.try_take(10 * MIB).unwrap();
        let work = tokio::spawn(slot.run(None, move || released.recv().unwrap()));
        // The caller gives up (its request timed out): the work goes on holding the slot.
        tokio::time::sleep(Duration::from_millis(50)).await;
        work.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(slots.try_take(0).is_err(), "the decode still runs: its slot is still taken");
        assert!(
            slots.take_before(0, Instant::now() + Duration::from_millis(100)).await.is_err(),
            "a waiter times out"
        );
        assert_eq!(slots.waiting(), 0, "a waiter that gave up is not counted");
        release.send(()).unwrap();
        let slot = slots.take_before(0, Instant::now() + Duration::from_secs(5)).await.unwrap();
        drop(slot);
    }

    #[tokio::test]
    async fn work_picked_up_after_its_deadline_is_skipped() {
        let slots = slots(1, MIB);
        let slot = slots.try_take(0).unwrap();
        let ran = slot.run(Some(Instant::now()), || ()).await;
        assert!(matches!(ran, Err(HashingError::Late)));
        let slot = slots.try_take(0).unwrap();
        assert_eq!(slot.run(Some(Instant::now() + Duration::from_secs(60)), || 7).await.unwrap(), 7);
    }
}
