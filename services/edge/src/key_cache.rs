//! The edge's memory of client keys, by key hash: resolved key records,
//! trusted for a while, and keys quota refused, remembered briefly so that a
//! stream of bogus keys does not cost a quota lookup each.
//!
//! `invalidate` bumps a generation counter, and a lookup that started before
//! it does not store its (possibly stale) answer, known or unknown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tollgate_core::apikey::KeyHash;
use tollgate_proto::v1::KeyRecord;

/// Resolved keys kept before expired ones are swept (and, if still full,
/// all).
const MAX_CACHED_KEYS: usize = 100_000;
/// Refused keys kept before expired ones are swept (and, if still full,
/// all).
const MAX_UNKNOWN_KEYS: usize = 10_000;

/// Entries stamped when stored, read only while younger than a TTL, and
/// bounded: a full map drops its expired entries, then everything.
struct Expiring<V> {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<KeyHash, (V, Instant)>>,
}

impl<V: Clone> Expiring<V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &KeyHash) -> Option<V> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get(hash)
            .filter(|(_, stored)| stored.elapsed() < self.ttl)
            .map(|(value, _)| value.clone())
    }

    /// Stores `value` unless `still_current` (checked under the write lock)
    /// says an invalidation happened since the lookup began.
    fn insert(&self, hash: &KeyHash, value: V, still_current: impl FnOnce() -> bool) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if !still_current() {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(hash) {
            let ttl = self.ttl;
            entries.retain(|_, (_, stored)| stored.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(hash.clone(), (value, Instant::now()));
    }

    fn retain(&self, keep: impl FnMut(&KeyHash, &mut (V, Instant)) -> bool) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.retain(keep);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }
}

/// Resolved key records and recently refused keys, by key hash.
pub struct KeyCache {
    known: Expiring<Arc<KeyRecord>>,
    unknown: Expiring<()>,
    generation: AtomicU64,
}

impl KeyCache {
    /// Records are trusted for `ttl`, refusals remembered for `unknown_ttl`
    /// (zero turns either off).
    pub fn new(ttl: Duration, unknown_ttl: Duration) -> Self {
        Self {
            known: Expiring::new(ttl, MAX_CACHED_KEYS),
            unknown: Expiring::new(unknown_ttl, MAX_UNKNOWN_KEYS),
            generation: AtomicU64::new(0),
        }
    }

    /// The record of a key resolved less than a TTL ago.
    pub fn get(&self, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
        self.known.get(hash)
    }

    /// Whether quota refused this key less than the refusal TTL ago.
    pub fn is_unknown(&self, hash: &KeyHash) -> bool {
        self.unknown.get(hash).is_some()
    }

    /// The value to hand back to [`KeyCache::insert`] or
    /// [`KeyCache::insert_unknown`] after a lookup.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn still(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    /// Stores `record` unless an invalidation happened since `generation`.
    pub fn insert(&self, hash: &KeyHash, record: Arc<KeyRecord>, generation: u64) {
        self.known.insert(hash, record, || self.still(generation));
    }

    /// Remembers that quota refused `hash`, unless an invalidation happened
    /// since `generation`.
    pub fn insert_unknown(&self, hash: &KeyHash, generation: u64) {
        self.unknown.insert(hash, (), || self.still(generation));
    }

    /// Drops every cached entry of key `key_id`, and every remembered
    /// refusal: refusals are kept by hash only, and the key may be one of
    /// them (a disabled key being enabled again).
    pub fn invalidate(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.known.retain(|_, (record, _)| record.id != key_id);
        self.unknown.retain(|_, _| false);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn record(id: &str) -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: id.into(),
            enabled: true,
            ..KeyRecord::default()
        })
    }

    #[test]
    fn cache_expires_and_invalidates_by_key_id() {
        let cache = KeyCache::new(LONG, LONG);
        let (a, b) = (KeyHash::of("a"), KeyHash::of("b"));
        cache.insert(&a, record("key_a"), cache.generation());
        cache.insert(&b, record("key_b"), cache.generation());
        assert_eq!(cache.get(&a).unwrap().id, "key_a");
        cache.invalidate("key_a");
        assert!(cache.get(&a).is_none());
        assert!(cache.get(&b).is_some());

        let expired = KeyCache::new(Duration::from_millis(1), LONG);
        expired.insert(&a, record("key_a"), expired.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get(&a).is_none());
    }

    #[test]
    fn lookup_racing_an_invalidation_is_not_stored() {
        let cache = KeyCache::new(LONG, LONG);
        let hash = KeyHash::of("a");
        let before = cache.generation();
        cache.invalidate("key_a");
        cache.insert(&hash, record("key_a"), before);
        cache.insert_unknown(&hash, before);
        assert!(cache.get(&hash).is_none());
        assert!(!cache.is_unknown(&hash));
    }

    #[test]
    fn refusals_are_remembered_briefly_and_forgotten_on_any_invalidation() {
        let cache = KeyCache::new(LONG, Duration::from_millis(20));
        let hash = KeyHash::of("bogus");
        assert!(!cache.is_unknown(&hash));
        cache.insert_unknown(&hash, cache.generation());
        assert!(cache.is_unknown(&hash));
        assert!(cache.get(&hash).is_none());
        std::thread::sleep(Duration::from_millis(30));
        assert!(!cache.is_unknown(&hash));

        let cache = KeyCache::new(LONG, LONG);
        cache.insert_unknown(&hash, cache.generation());
        cache.invalidate("key_unrelated");
        assert!(!cache.is_unknown(&hash));

        let off = KeyCache::new(LONG, Duration::ZERO);
        off.insert_unknown(&hash, off.generation());
        assert!(!off.is_unknown(&hash));
    }

    #[test]
    fn refusals_are_bounded() {
        let cache = KeyCache::new(LONG, LONG);
        for n in 0..MAX_UNKNOWN_KEYS {
            cache.insert_unknown(&KeyHash::of(&n.to_string()), 0);
        }
        assert_eq!(cache.unknown.len(), MAX_UNKNOWN_KEYS);
        let first = KeyHash::of("0");
        assert!(cache.is_unknown(&first));
        // Re-storing a remembered key does not evict anything.
        cache.insert_unknown(&first, 0);
        assert_eq!(cache.unknown.len(), MAX_UNKNOWN_KEYS);
        // A new key when full (and nothing expired) starts over.
        let newest = KeyHash::of("newest");
        cache.insert_unknown(&newest, 0);
        assert_eq!(cache.unknown.len(), 1);
        assert!(cache.is_unknown(&newest));
        assert!(!cache.is_unknown(&first));
    }
}
