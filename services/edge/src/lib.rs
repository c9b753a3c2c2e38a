//! The edge: the only HTTP surface of Tollgate. The public router serves the
//! OpenAI-compatible API to clients holding Tollgate keys; the admin router
//! serves the admin API (keys, accounts, usage), `/metrics` and the health
//! probes on an internal port. Both are stateless in front of the router,
//! quota and analytics services, reached through their handles.
//! [`build`] makes the edge from its [`EdgeSettings`]; [`App::run_until`]
//! serves it.

mod access;
mod app;
mod auth;
mod body;
mod error;
mod handlers;
mod health_probes;
mod invalidations;
mod key_cache;
mod observe;
mod rate_limit;
mod request_id;
mod rfc3339;
mod sse;
mod state;
mod validate;

pub use app::{App, Deps, Listeners, build};
pub use error::ApiError;
pub use health_probes::probe_health;
pub use invalidations::watch_invalidations;
pub use request_id::RequestId;
pub use state::{
    DEFAULT_ADMIN_MAX_BODY_BYTES, DEFAULT_KEY_CACHE_TTL, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_READINESS_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_UNKNOWN_KEY_TTL,
    DEFAULT_UNWATCHED_KEY_CACHE_TTL, EdgeSettings, EdgeState,
};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use handlers::{admin, chat, count_tokens, fallback, health, messages, models, responses};

/// The public API: `POST /v1/chat/completions`, `POST /v1/messages`,
/// `POST /v1/messages/count_tokens`, `POST /v1/responses`, `GET /v1/models`,
/// `GET /v1/models/{id}`, `GET /healthz`, `GET /readyz`.
pub fn public_router(state: EdgeState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(count_tokens::count))
        .route("/v1/responses", post(responses::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::retrieve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(from_fn(request_id::assign))
        .with_state(state)
}

/// The internal API: `/admin/v1/...` behind the admin token, and the
/// unauthenticated `GET /admin/openapi.json` (the admin API's description),
/// `GET /metrics`, `GET /healthz`, `GET /readyz`.
pub fn admin_router(state: EdgeState) -> Router {
    Router::new()
        .nest("/admin/v1", admin::router(state.clone()))
        .route(admin::openapi::PATH, get(admin::openapi::document))
        .route("/metrics", get(metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(from_fn(request_id::assign))
        .with_state(state)
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// The Prometheus exposition of every metric family in the process, labelled
/// as OpenMetrics when the scraper asks for it.
async fn metrics(State(state): State<EdgeState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let content_type = if wants_openmetrics {
        OPENMETRICS
    } else {
        PROMETHEUS_TEXT
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        state.metrics.encode(),
    )
        .into_response()
}
