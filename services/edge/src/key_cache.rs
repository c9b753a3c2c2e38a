//! The edge's memory of client keys, by key hash: resolved key records,
//! trusted for a while, and keys quota refused, remembered briefly so that a
//! stream of bogus keys does not cost a quota lookup each.
//!
//! `invalidate` bumps a generation counter, and a lookup that started before
//! it does not store its (possibly stale) answer, known or unknown.
//!
//! A long TTL is only safe while quota's invalidation stream tells this
//! edge about every revocation: while it is not subscribed, resolved keys
//! are trusted for at most the shorter unwatched TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
        self.get_within(hash, self.ttl)
    }

    /// The entry if it is younger than both the TTL and `max_age`.
    fn get_within(&self, hash: &KeyHash, max_age: Duration) -> Option<V> {
        let max_age = max_age.min(self.ttl);
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get(hash)
            .filter(|(_, stored)| stored.elapsed() < max_age)
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
    /// Whether the invalidation stream is connected.
    watching: AtomicBool,
    /// The most a record is trusted while it is not.
    unwatched_ttl: Duration,
}

impl KeyCache {
    /// Records are trusted for `ttl` (`unwatched_ttl` at most while no
    /// invalidation stream is connected), refusals remembered for
    /// `unknown_ttl` (zero turns either off).
    pub fn new(ttl: Duration, unwatched_ttl: Duration, unknown_ttl: Duration) -> Self {
        Self {
            known: Expiring::new(ttl, MAX_CACHED_KEYS),
            unknown: Expiring::new(unknown_ttl, MAX_UNKNOWN_KEYS),
            generation: AtomicU64::new(0),
            watching: AtomicBool::new(false),
            unwatched_ttl,
        }
    }

    /// The record of a key resolved less than a TTL ago.
    pub fn get(&self, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
        if self.watching.load(Ordering::Acquire) {
            self.known.get(hash)
        } else {
            self.known.get_within(hash, self.unwatched_ttl)
        }
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

    /// Drops the entries of key `key_id` as [`KeyCache::invalidate`] does,
    /// and whatever is cached under `hash` (any record a stale id missed).
    pub fn invalidate_with_hash(&self, key_id: &str, hash: &KeyHash) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.known
            .retain(|cached, (record, _)| record.id != key_id && cached != hash);
        self.unknown.retain(|_, _| false);
    }

    /// Drops every entry, known and refused.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.known.retain(|_, _| false);
        self.unknown.retain(|_, _| false);
    }

    /// The invalidation stream is connected: events may have been missed
    /// before it was, so everything is dropped, and from now on records
    /// are trusted for the full TTL.
    pub fn watch_connected(&self) {
        self.invalidate_all();
        self.watching.store(true, Ordering::Release);
    }

    /// The invalidation stream is gone: records are trusted for the
    /// unwatched TTL at most until it is back.
    pub fn watch_lost(&self) {
        self.watching.store(false, Ordering::Release);
    }
}

#[cfg(test)]
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
        let cache = KeyCache::new(LONG, LONG, LONG);
        let (a, b) = (KeyHash::of("a"), KeyHash::of("b"));
        cache.insert(&a, record("key_a"), cache.generation());
        cache.insert(&b, record("key_b"), cache.generation());
        assert_eq!(cache.get(&a).unwrap().id, "key_a");
        cache.invalidate("key_a");
        assert!(cache.get(&a).is_none());
        assert!(cache.get(&b).is_some());

        let expired = KeyCache::new(Duration::from_millis(1), LONG, LONG);
        expired.insert(&a, record("key_a"), expired.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get(&a).is_none());
    }

    #[test]
    fn lookup_racing_an_invalidation_is_not_stored() {
        let cache = KeyCache::new(LONG, LONG, LONG);
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
        let cache = KeyCache::new(LONG, LONG, Duration::from_millis(20));
        let hash = KeyHash::of("bogus");
        assert!(!cache.is_unknown(&hash));
        cache.insert_unknown(&hash, cache.generation());
        assert!(cache.is_unknown(&hash));
        assert!(cache.get(&hash).is_none());
        std::thread::sleep(Duration::from_millis(30));
        assert!(!cache.is_unknown(&hash));

        let cache = KeyCache::new(LONG, LONG, LONG);
        cache.insert_unknown(&hash, cache.generation());
        cache.invalidate("key_unrelated");
        assert!(!cache.is_unknown(&hash));

        let off = KeyCache::new(LONG, LONG, Duration::ZERO);
        off.insert_unknown(&hash, off.generation());
        assert!(!off.is_unknown(&hash));
    }

    #[test]
    fn unwatched_records_are_trusted_for_the_shorter_ttl() {
        let cache = KeyCache::new(LONG, Duration::from_millis(20), LONG);
        let hash = KeyHash::of("a");
        cache.insert(&hash, record("key_a"), cache.generation());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get(&hash).is_none(), "not watching: short TTL");

        let before = cache.generation();
        cache.insert(&hash, record("key_a"), before);
        cache.watch_connected();
        assert!(
            cache.get(&hash).is_none(),
            "connecting drops what may be stale"
        );
        assert_ne!(cache.generation(), before);
        cache.insert(&hash, record("key_a"), cache.generation());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get(&hash).is_some(), "watching: full TTL");
        cache.watch_lost();
        assert!(cache.get(&hash).is_none(), "lost: short TTL again");
    }

    #[test]
    fn refusals_are_bounded() {
        let cache = KeyCache::new(LONG, LONG, LONG);
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
