//! What every handler shares: handles on the services behind the edge, the
//! metrics, the settings and the client-key cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tollgate_proto::{AnalyticsHandle, QuotaHandle, RouterHandle};
use tollgate_telemetry::Metrics;

use crate::key_cache::KeyCache;

/// Largest chat request body accepted by default (32 MiB: room for images).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;
/// Largest admin request body accepted by default.
pub const DEFAULT_ADMIN_MAX_BODY_BYTES: usize = 1 << 20;
/// How long a resolved client key is trusted before asking quota again.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long a resolved client key is trusted at most while the edge is not
/// subscribed to quota's key invalidations.
pub const DEFAULT_UNWATCHED_KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long a key quota refused is refused without asking again.
pub const DEFAULT_UNKNOWN_KEY_TTL: Duration = Duration::from_secs(2);
/// How long a non-streamed answer, or the gap between two streamed chunks,
/// may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `/readyz` waits for each service to answer its ping.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// Limits and secrets of the edge. [`Default`] holds every default value
/// (with an empty admin token); [`EdgeSettings::new`] is that with an
/// admin token.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Largest `POST /v1/chat/completions` body, in bytes.
    pub max_body_bytes: usize,
    /// Largest admin API body, in bytes.
    pub admin_max_body_bytes: usize,
    /// How long a resolved client key stays cached while the edge hears
    /// quota's key invalidations (a revoked key is dropped at once).
    pub key_cache_ttl: Duration,
    /// How long, at most, while it does not (before the first subscription
    /// and between a lost stream and its reconnection): revocations made
    /// meanwhile are only noticed when an entry expires.
    pub key_cache_unwatched_ttl: Duration,
    /// How long a key quota refused (unknown, disabled, expired) is refused
    /// again without a lookup. Kept short: admin writes through this edge
    /// forget refusals at once, other edges only when this runs out.
    pub unknown_key_ttl: Duration,
    /// Time limit of a non-streamed answer, of a stream's first chunk, and of
    /// each later gap between chunks of `POST /v1/chat/completions`; when it
    /// runs out the client gets a 504 (`upstream_timeout`), or a stream ends
    /// with an error event. The binary sets it from its configuration;
    /// [`DEFAULT_REQUEST_TIMEOUT`] otherwise.
    pub request_timeout: Duration,
    /// Time limit of each ping made by `/readyz`.
    pub readiness_timeout: Duration,
    /// How often an account that opted in is probed while out for its
    /// health (at most once per interval across every edge).
    pub health_probe_interval: Duration,
    /// The admin API bearer token. Empty refuses every admin request.
    pub admin_token: SecretString,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            admin_max_body_bytes: DEFAULT_ADMIN_MAX_BODY_BYTES,
            key_cache_ttl: DEFAULT_KEY_CACHE_TTL,
            key_cache_unwatched_ttl: DEFAULT_UNWATCHED_KEY_CACHE_TTL,
            unknown_key_ttl: DEFAULT_UNKNOWN_KEY_TTL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            readiness_timeout: DEFAULT_READINESS_TIMEOUT,
            health_probe_interval: Duration::from_secs(30),
            admin_token: SecretString::default(),
        }
    }
}

impl EdgeSettings {
    /// The defaults, with `admin_token` guarding the admin API.
    pub fn new(admin_token: SecretString) -> Self {
        Self {
            admin_token,
            ..Self::default()
        }
    }
}

/// The state behind both routers. Cheap to clone.
#[derive(Clone)]
pub struct EdgeState {
    pub router: RouterHandle,
    pub quota: QuotaHandle,
    pub analytics: AnalyticsHandle,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<EdgeSettings>,
    pub(crate) keys: Arc<KeyCache>,
    /// Set once the process began shutting down: `/readyz` fails from then
    /// on while requests are still served.
    shutting_down: Arc<AtomicBool>,
}

impl EdgeState {
    pub(crate) fn new(
        router: RouterHandle,
        quota: QuotaHandle,
        analytics: AnalyticsHandle,
        metrics: Arc<Metrics>,
        settings: EdgeSettings,
    ) -> Self {
        let keys = Arc::new(KeyCache::new(
            settings.key_cache_ttl,
            settings.key_cache_unwatched_ttl,
            settings.unknown_key_ttl,
        ));
        Self {
            router,
            quota,
            analytics,
            metrics,
            settings: Arc::new(settings),
            keys,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the edge as shutting down: `/readyz` answers 503 from now on
    /// (so load balancers stop sending new requests), while every request,
    /// new ones included, is still served until the listeners close.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Forgets the cached record of key `key_id` (and every remembered
    /// refusal), so the next request with it asks quota again. Admin writes
    /// through this edge call this; [`crate::watch_invalidations`] does for
    /// writes anywhere.
    pub fn invalidate_key(&self, key_id: &str) {
        self.keys.invalidate(key_id);
    }
}

/// State whose router, quota and analytics are real gRPC clients of a port
/// nothing listens on: every call fails as when those services are down.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use tollgate_proto::remote::{RemoteAnalytics, RemoteQuota, RemoteRouter, peer};

    pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

    pub fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    /// Its calls need a tokio runtime (each client starts its balancer then).
    pub fn services_down() -> EdgeState {
        let peer = peer(&closed_address()).unwrap();
        EdgeState::new(
            Arc::new(RemoteRouter::new(peer.clone())),
            Arc::new(RemoteQuota::new(peer.clone())),
            Arc::new(RemoteAnalytics::new(peer)),
            Arc::new(Metrics::new()),
            EdgeSettings::new(SecretString::from(ADMIN_TOKEN)),
        )
    }

    /// Puts `record` in the key cache under `plaintext`, as a lookup would.
    pub fn seed_key(state: &EdgeState, plaintext: &str, record: tollgate_proto::v1::KeyRecord) {
        let hash = tollgate_core::apikey::KeyHash::of(plaintext);
        state
            .keys
            .insert(&hash, Arc::new(record), state.keys.generation());
    }
}

/// Sends requests through a router with no socket.
#[cfg(test)]
pub(crate) mod send {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderMap, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    pub struct Answer {
        pub status: StatusCode,
        pub headers: HeaderMap,
        pub json: serde_json::Value,
    }

    pub async fn send(router: Router, request: Request<Body>) -> Answer {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            headers,
            json,
        }
    }

    pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    }
}
