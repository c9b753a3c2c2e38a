//! Revocations made anywhere reach this edge's key cache at once: the edge
//! subscribes to quota's `WatchInvalidations` (in process in `tollgate
//! all`, over gRPC in split mode) and drops the cached entries each event
//! names. A stream that ends or fails is re-opened with backoff; while it
//! is down the cache trusts records for the short unwatched TTL only, and
//! each (re)connection empties the cache, since events may have been
//! missed meanwhile.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tollgate_backoff::Retries;
use tollgate_core::apikey::KeyHash;
use tollgate_proto::v1::{Invalidation, WatchInvalidationsRequest};
use tracing::{debug, info, warn};

use crate::key_cache::KeyCache;
use crate::state::EdgeState;

/// The reconnection delays: the first, doubling up to the last, each
/// jittered so the edges of a restarted quota do not all come back at once.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Keeps `state`'s key cache subscribed to quota's invalidations until
/// `stop` resolves.
pub async fn watch_invalidations(state: EdgeState, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut retries = Retries::new(FIRST_RETRY, LAST_RETRY).jittered();
    loop {
        tokio::select! {
            () = &mut stop => break,
            connected = watch_once(&state) => {
                if connected {
                    retries.reset();
                }
            }
        }
        state.keys.watch_lost();
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(retries.next_delay()) => {}
        }
    }
    state.keys.watch_lost();
}

/// One subscription, until its stream ends; whether it was established.
async fn watch_once(state: &EdgeState) -> bool {
    let request = tonic::Request::new(WatchInvalidationsRequest {});
    let mut events = match state.quota.watch_invalidations(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            debug!(code = ?status.code(), "cannot subscribe to key invalidations yet");
            return false;
        }
    };
    state.keys.watch_connected();
    info!("watching key invalidations");
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => apply(&state.keys, &event),
            Err(status) => {
                warn!(code = ?status.code(), "key invalidation stream failed; resubscribing");
                return true;
            }
        }
    }
    warn!("key invalidation stream ended; resubscribing");
    true
}

/// Drops what `event` names from `keys`.
fn apply(keys: &KeyCache, event: &Invalidation) {
    if event.all {
        keys.invalidate_all();
    } else if event.key_hash.is_empty() {
        keys.invalidate(&event.key_id);
    } else {
        keys.invalidate_with_hash(&event.key_id, &KeyHash::from_stored(event.key_hash.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tollgate_proto::v1::KeyRecord;

    const LONG: Duration = Duration::from_secs(60);

    fn cached(keys: &KeyCache, plaintext: &str, id: &str) -> KeyHash {
        let hash = KeyHash::of(plaintext);
        let record = KeyRecord {
            id: id.into(),
            enabled: true,
            ..KeyRecord::default()
        };
        keys.insert(&hash, Arc::new(record), keys.generation());
        hash
    }

    #[test]
    fn events_drop_by_id_by_hash_or_everything() {
        let keys = KeyCache::new(LONG, LONG, LONG);
        let (a, b, c) = (
            cached(&keys, "a", "key_a"),
            cached(&keys, "b", "key_b"),
            cached(&keys, "c", "key_c"),
        );
        apply(
            &keys,
            &Invalidation {
                key_id: "key_a".into(),
                ..Invalidation::default()
            },
        );
        assert!(keys.get(&a).is_none());
        assert!(keys.get(&b).is_some());
        // The hash alone is enough (an id the cache does not know).
        apply(
            &keys,
            &Invalidation {
                key_id: "key_other".into(),
                key_hash: b.as_str().to_owned(),
                all: false,
            },
        );
        assert!(keys.get(&b).is_none());
        assert!(keys.get(&c).is_some());
        apply(
            &keys,
            &Invalidation {
                all: true,
                ..Invalidation::default()
            },
        );
        assert!(keys.get(&c).is_none());
    }
}
