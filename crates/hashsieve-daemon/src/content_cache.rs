//! Reported content held in memory for the review page, and nowhere else.
//!
//! The verdict memory keeps hashes, never content; but an analyst deciding a new item must
//! see it. So the bytes of a report that opens or joins a review group are put here when it is
//! submitted, and the page takes them from here. The cache is bounded three ways: a byte cap
//! (the least recently used go first), a time to live from when the content arrived, and a
//! process's lifetime (nothing is written anywhere: a restart empties it, and the page then
//! fetches a URL report again or says the content is gone).
//!
//! Content is shared as `Arc<[u8]>`, so a preview being rendered keeps its bytes alive after an
//! eviction without copying them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hashsieve_triage::model::ItemId;
use lru::LruCache;

/// Held content, by item.
pub struct ContentCache {
    held: Mutex<Held>,
    max_bytes: u64,
    ttl: Duration,
}

struct Held {
    entries: LruCache<ItemId, Entry>,
    bytes: u64,
}

struct Entry {
    content: Arc<[u8]>,
    arrived: Instant,
}

impl std::fmt::Debug for ContentCache {
    /// How much is held, never what.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.lock();
        f.debug_struct("ContentCache")
            .field("items", &held.entries.len())
            .field("bytes", &held.bytes)
            .finish()
    }
}

impl ContentCache {
    /// A cache of at most `max_bytes`, each content for at most `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> ContentCache {
        ContentCache { held: Mutex::new(Held { entries: LruCache::unbounded(), bytes: 0 }), max_bytes, ttl }
    }

    /// Holds `content` as `item`'s, replacing what was held for it, and evicts the least
    /// recently used until the cache is within its cap. Content larger than the cap is not
    /// held.
    pub fn put(&self, item: ItemId, content: Arc<[u8]>) {
        let size = content.len() as u64;
        let mut held = self.lock();
        if let Some(old) = held.entries.pop(&item) {
            held.bytes -= old.content.len() as u64;
        }
        if size > self.max_bytes {
            return;
        }
        while held.bytes + size > self.max_bytes {
            let Some((_, evicted)) = held.entries.pop_lru() else { break };
            held.bytes -= evicted.content.len() as u64;
        }
        held.entries.put(item, Entry { content, arrived: Instant::now() });
        held.bytes += size;
    }

    /// `item`'s content, if it is held and has not outlived its time; marks it recently used.
    pub fn get(&self, item: ItemId) -> Option<Arc<[u8]>> {
        let mut held = self.lock();
        let expired = held.entries.get(&item).map(|entry| entry.arrived.elapsed() > self.ttl)?;
        if expired {
            let entry = held.entries.pop(&item).expect("just seen");
            held.bytes -= entry.content.len() as u64;
            return None;
        }
        held.entries.get(&item).map(|entry| Arc::clone(&entry.content))
    }

    /// The bytes held now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(byte: u8, len: usize) -> Arc<[u8]> {
        vec![byte; len].into()
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_cap_holds() {
        let cache = ContentCache::new(100, Duration::from_secs(60));
        cache.put(ItemId(1), content(1, 40));
        cache.put(ItemId(2), content(2, 40));
        assert_eq!(cache.get(ItemId(1)).as_deref(), Some(&[1; 40][..]), "1 is now the more recent");
        cache.put(ItemId(3), content(3, 40));
        assert!(cache.get(ItemId(2)).is_none(), "2 was the least recently used");
        assert!(cache.get(ItemId(1)).is_some() && cache.get(ItemId(3)).is_some());
        assert_eq!(cache.bytes(), 80);

        // Replacing an item's content counts only the new bytes.
        cache.put(ItemId(3), content(4, 10));
        assert_eq!(cache.bytes(), 50);
        assert_eq!(cache.get(ItemId(3)).as_deref(), Some(&[4; 10][..]));

        // Content over the cap is not held, and takes nothing else with it.
        cache.put(ItemId(5), content(5, 101));
        assert!(cache.get(ItemId(5)).is_none());
        assert_eq!(cache.bytes(), 50);
    }

    #[test]
    fn content_outlives_its_time_only_in_a_caller_s_hands() {
        let cache = ContentCache::new(100, Duration::from_millis(50));
        cache.put(ItemId(1), content(1, 10));
        let taken = cache.get(ItemId(1)).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get(ItemId(1)).is_none());
        assert_eq!(cache.bytes(), 0);
        assert_eq!(&taken[..], &[1; 10], "a caller's copy stays valid");
    }
}
