//! Who is calling: the client key from `Authorization: Bearer` or
//! `x-api-key`, resolved through quota behind a short-lived cache; and the
//! admin token check of the admin API.
//!
//! Only the key's SHA-256 leaves this module. A key that has the wrong shape
//! is refused without a lookup; disabled and expired keys are refused at
//! every use, cached or not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use tollgate_core::apikey::{KeyHash, looks_like_key};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::v1::{KeyRecord, ResolveKeyRequest};

use crate::error::ApiError;
use crate::state::EdgeState;

/// Entries kept before expired ones are swept (and, if still full, all).
const MAX_CACHED_KEYS: usize = 100_000;

fn unauthenticated(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidApiKey, message)
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched
/// case-insensitively), if that is what `headers` carry.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The hash of the client key presented in `headers`: the bearer token, or
/// else `x-api-key`. Refuses a missing or malformed key without any lookup.
pub fn credential(headers: &HeaderMap) -> Result<KeyHash, GatewayError> {
    let presented = match bearer_token(headers) {
        Some(token) => Some(token),
        None => headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|key| !key.is_empty()),
    };
    let Some(presented) = presented else {
        return Err(unauthenticated(
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        ));
    };
    if !looks_like_key(presented) {
        return Err(unauthenticated("invalid API key"));
    }
    Ok(KeyHash::of(presented))
}

/// Refuses a key that is disabled or past its expiry (`now_secs`: unix
/// seconds).
pub fn check_usable(record: &KeyRecord, now_secs: i64) -> Result<(), GatewayError> {
    if !record.enabled {
        return Err(unauthenticated("API key is disabled"));
    }
    if record.expires_at.is_some_and(|expiry| expiry <= now_secs) {
        return Err(unauthenticated("API key has expired"));
    }
    Ok(())
}

/// The key record behind `hash`, from the cache or from quota, refused if
/// unknown, disabled or expired.
pub async fn resolve(state: &EdgeState, hash: &KeyHash) -> Result<Arc<KeyRecord>, GatewayError> {
    let record = match state.keys.get(hash) {
        Some(record) => record,
        None => {
            let generation = state.keys.generation();
            let request = tonic::Request::new(ResolveKeyRequest {
                key_hash: hash.as_str().to_owned(),
            });
            let record = match state.quota.resolve_key(request).await {
                Ok(response) => Arc::new(response.into_inner()),
                Err(status) => return Err(resolve_failure(&status)),
            };
            state.keys.insert(hash, Arc::clone(&record), generation);
            record
        }
    };
    check_usable(&record, tollgate_core::clock::now_ms().div_euclid(1000))?;
    Ok(record)
}

/// An unknown key is a 401 whatever words quota used; other failures (quota
/// down) pass through.
fn resolve_failure(status: &tonic::Status) -> GatewayError {
    let error = GatewayError::from_status(status);
    match error.kind {
        ErrorKind::NotFound | ErrorKind::InvalidApiKey => unauthenticated("invalid API key"),
        _ => error,
    }
}

struct CachedKey {
    record: Arc<KeyRecord>,
    fetched: Instant,
}

/// Resolved key records by key hash, each trusted for a fixed time.
///
/// `invalidate` bumps a generation counter, and a lookup that started before
/// it does not store its (possibly stale) answer.
pub struct KeyCache {
    ttl: Duration,
    entries: RwLock<HashMap<KeyHash, CachedKey>>,
    generation: AtomicU64,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self, hash: &KeyHash) -> Option<Arc<KeyRecord>> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get(hash)
            .filter(|entry| entry.fetched.elapsed() < self.ttl)
            .map(|entry| Arc::clone(&entry.record))
    }

    /// The value to hand back to [`KeyCache::insert`] after a lookup.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `record` unless an invalidation happened since `generation`.
    pub fn insert(&self, hash: &KeyHash, record: Arc<KeyRecord>, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_CACHED_KEYS {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.fetched.elapsed() < ttl);
            if entries.len() >= MAX_CACHED_KEYS {
                entries.clear();
            }
        }
        let fetched = Instant::now();
        entries.insert(hash.clone(), CachedKey { record, fetched });
    }

    /// Drops every cached entry of key `key_id`.
    pub fn invalidate(&self, key_id: &str) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, entry| entry.record.id != key_id);
    }
}

/// Middleware of the admin API: requires `Authorization: Bearer <admin
/// token>`. Both sides are hashed and the hashes compared in constant time,
/// so neither the token's bytes nor its length leak through timing.
pub async fn require_admin(
    State(state): State<EdgeState>,
    request: Request,
    next: Next,
) -> Response {
    let expected = state.settings.admin_token.expose_secret();
    let allowed = !expected.is_empty()
        && bearer_token(request.headers())
            .is_some_and(|token| KeyHash::of(token).matches(&KeyHash::of(expected)));
    if allowed {
        next.run(request).await
    } else {
        ApiError(unauthenticated("missing or invalid admin token")).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &str = "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn record(id: &str) -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: id.into(),
            enabled: true,
            ..KeyRecord::default()
        })
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        let map = headers(&[("authorization", &format!("bearer  {KEY} "))]);
        assert_eq!(bearer_token(&map), Some(KEY));
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(bearer_token(&headers(&[("authorization", "Bearer")])), None);
    }

    #[test]
    fn credential_from_bearer_or_x_api_key() {
        let expected = KeyHash::of(KEY);
        let bearer = headers(&[("authorization", &format!("Bearer {KEY}"))]);
        assert_eq!(credential(&bearer).unwrap(), expected);
        let api_key = headers(&[("x-api-key", KEY)]);
        assert_eq!(credential(&api_key).unwrap(), expected);
    }

    #[test]
    fn credential_refuses_missing_and_malformed_keys() {
        let missing = credential(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.kind, ErrorKind::InvalidApiKey);
        assert!(missing.message.contains("missing"));
        let malformed = credential(&headers(&[("x-api-key", "sk-not-ours")])).unwrap_err();
        assert_eq!(malformed.kind, ErrorKind::InvalidApiKey);
        let basic = credential(&headers(&[("authorization", "Basic abc")])).unwrap_err();
        assert_eq!(basic.kind, ErrorKind::InvalidApiKey);
    }

    #[test]
    fn disabled_and_expired_keys_are_unusable() {
        let mut key = KeyRecord {
            enabled: true,
            expires_at: Some(100),
            ..KeyRecord::default()
        };
        assert!(check_usable(&key, 99).is_ok());
        assert_eq!(
            check_usable(&key, 100).unwrap_err().kind,
            ErrorKind::InvalidApiKey
        );
        key.expires_at = None;
        key.enabled = false;
        assert_eq!(
            check_usable(&key, 0).unwrap_err().kind,
            ErrorKind::InvalidApiKey
        );
    }

    #[test]
    fn unknown_key_from_quota_is_401() {
        let not_found = tonic::Status::not_found("no such key");
        assert_eq!(resolve_failure(&not_found).kind, ErrorKind::InvalidApiKey);
        let down = tonic::Status::unavailable("refused");
        assert_eq!(resolve_failure(&down).kind, ErrorKind::Unavailable);
    }

    #[test]
    fn cache_expires_and_invalidates_by_key_id() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let (a, b) = (KeyHash::of("a"), KeyHash::of("b"));
        cache.insert(&a, record("key_a"), cache.generation());
        cache.insert(&b, record("key_b"), cache.generation());
        assert_eq!(cache.get(&a).unwrap().id, "key_a");
        cache.invalidate("key_a");
        assert!(cache.get(&a).is_none());
        assert!(cache.get(&b).is_some());

        let expired = KeyCache::new(Duration::from_millis(1));
        expired.insert(&a, record("key_a"), expired.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get(&a).is_none());
    }

    #[test]
    fn lookup_racing_an_invalidation_is_not_stored() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let hash = KeyHash::of("a");
        let before = cache.generation();
        cache.invalidate("key_a");
        cache.insert(&hash, record("key_a"), before);
        assert!(cache.get(&hash).is_none());
    }
}
