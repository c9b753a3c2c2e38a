//! The HTTP surface: OpenAI's chat completions and model list, and the
//! `/_mock/*` routes tests use to read and reset the counters.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use tollgate_providers::mock::{Directives, MockBehavior, MockExchange, MockFailure, wire};

use crate::args::MockUpstreamArgs;
use crate::stats::{MockStats, Stats};

pub(crate) const MAX_BODY_BYTES: usize = 64 << 20;
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
pub(crate) const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";
const CUT_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// The mock's configuration and counters, shared by every request.
#[derive(Clone)]
pub struct MockState {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    behavior: MockBehavior,
    /// The API key every request must present, if any.
    api_key: Option<String>,
    /// The whole expected `Authorization` value, `Bearer <key>`.
    expected_authorization: Option<Vec<u8>>,
    fail_status: Option<u16>,
    fail_count: u64,
    retry_after: Option<u64>,
    /// How requests presenting each bearer key behave.
    key_directives: RwLock<HashMap<String, Directives>>,
    model_list: Bytes,
    models: Vec<String>,
    pub(crate) stats: Stats,
}

impl MockState {
    pub fn new(args: &MockUpstreamArgs) -> Self {
        Self {
            inner: Arc::new(Inner {
                behavior: args.behavior(),
                api_key: args.api_key.clone(),
                expected_authorization: args
                    .api_key
                    .as_ref()
                    .map(|key| format!("Bearer {key}").into_bytes()),
                fail_status: args.fail_status,
                fail_count: args.fail_count,
                retry_after: args.retry_after,
                key_directives: RwLock::new(
                    args.key_directives
                        .iter()
                        .map(|(key, directives)| (key.clone(), Directives::parse(directives)))
                        .collect(),
                ),
                model_list: Bytes::from(wire::model_list(args.models.iter().map(String::as_str))),
                models: args.models.clone(),
                stats: Stats::default(),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub fn stats(&self) -> MockStats {
        self.inner.stats.snapshot()
    }

    /// Zeroes the counters (and restarts `--fail-count`).
    pub fn reset_stats(&self) {
        self.inner.stats.reset();
    }
}

/// The mock's routes.
pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/openai/v1/chat/completions", post(crate::azure::v1_chat))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(crate::azure::deployment_chat),
        )
        .route("/v1/messages", post(crate::anthropic::messages))
        .route("/v1beta/models/{action}", post(crate::gemini::models))
        .route("/v1/models/{action}", post(crate::gemini::models))
        .route("/api/chat", post(crate::ollama::chat))
        .route("/api/tags", get(crate::ollama::tags))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/_mock/stats", get(stats))
        .route("/_mock/reset", post(reset))
        .route("/_mock/key-directives", put(set_key_directives))
        .fallback(unknown_route)
        .with_state(state)
}

pub(crate) async fn chat(State(state): State<MockState>, request: Request) -> Response {
    let inner = &state.inner;
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return inner.fail(&MockFailure {
            status: 413,
            message: "The request body is too large or was cut short.".to_owned(),
            param: None,
            code: None,
            retry_after_secs: None,
        });
    };
    let authorization = parts.headers.get(AUTHORIZATION);
    let key = bearer_key(authorization);
    let index = inner.stats.record_chat(&body, authorization, key);
    if let Some(failure) = inner.refuse_authorization(authorization) {
        return inner.fail(&failure);
    }
    let defaults = inner.directives_of(key);
    let exchange = match MockExchange::parse_with(&body, &inner.behavior, defaults) {
        Ok(exchange) => exchange,
        Err(failure) => return inner.fail(&failure),
    };
    let failure = inner.failure_for(&exchange, index);
    if !exchange.latency.is_zero() {
        tokio::time::sleep(exchange.latency).await;
    }
    if let Some(failure) = failure {
        return inner.fail(&failure);
    }
    if exchange.stream {
        Stats::bump(&inner.stats.streams);
        stream_response(exchange, state.clone())
    } else {
        ([(CONTENT_TYPE, JSON)], exchange.completion_body()).into_response()
    }
}

async fn models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    let inner = &state.inner;
    Stats::bump(&inner.stats.model_list_requests);
    if let Some(failure) = inner.refuse_authorization(headers.get(AUTHORIZATION)) {
        return inner.fail(&failure);
    }
    ([(CONTENT_TYPE, JSON)], inner.model_list.clone()).into_response()
}

async fn stats(State(state): State<MockState>) -> Response {
    axum::Json(state.stats()).into_response()
}

async fn reset(State(state): State<MockState>) -> StatusCode {
    state.reset_stats();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct KeyDirectives {
    key: String,
    #[serde(default)]
    directives: String,
}

/// Sets how requests with one bearer key behave (empty directives: as
/// any other).
async fn set_key_directives(
    State(state): State<MockState>,
    axum::Json(update): axum::Json<KeyDirectives>,
) -> StatusCode {
    let mut table = state
        .inner
        .key_directives
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if update.directives.trim().is_empty() {
        table.remove(&update.key);
    } else {
        table.insert(update.key, Directives::parse(&update.directives));
    }
    StatusCode::NO_CONTENT
}

/// The key of `Authorization: Bearer <key>`.
fn bearer_key(authorization: Option<&HeaderValue>) -> Option<&str> {
    authorization?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .filter(|key| !key.is_empty())
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    let message = format!("Invalid URL ({method} {})", uri.path());
    let body = wire::error_body(404, &message, None, None);
    (StatusCode::NOT_FOUND, [(CONTENT_TYPE, JSON)], body).into_response()
}

impl Inner {
    pub(crate) fn behavior(&self) -> &MockBehavior {
        &self.behavior
    }

    /// The model ids the mock lists.
    pub(crate) fn models(&self) -> &[String] {
        &self.models
    }

    pub(crate) fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The `--fail-status` the request of this index gets, while
    /// `--fail-count` lasts.
    pub(crate) fn configured_failure(&self, index: u64) -> Option<u16> {
        let status = self.fail_status?;
        (self.fail_count == 0 || index < self.fail_count).then_some(status)
    }

    pub(crate) fn directives_of(&self, key: Option<&str>) -> Directives {
        let Some(key) = key else {
            return Directives::default();
        };
        self.key_directives
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    fn refuse_authorization(&self, presented: Option<&HeaderValue>) -> Option<MockFailure> {
        let expected = self.expected_authorization.as_ref()?;
        if presented.is_some_and(|value| value.as_bytes() == expected.as_slice()) {
            return None;
        }
        let key = presented
            .and_then(|value| value.to_str().ok())
            .map(|value| value.strip_prefix("Bearer ").unwrap_or(value));
        Some(MockFailure::unauthorized(key))
    }

    /// A `status` directive first, else the configured failure while
    /// `--fail-count` lasts; a 429 without its own delay gets `--retry-after`.
    fn failure_for(&self, exchange: &MockExchange, index: u64) -> Option<MockFailure> {
        let mut failure = exchange.requested_failure().or_else(|| {
            self.configured_failure(index)
                .map(|status| MockFailure::status(status, exchange.directives.retry_after))
        })?;
        if failure.status == 429 && failure.retry_after_secs.is_none() {
            failure.retry_after_secs = self.retry_after;
        }
        Some(failure)
    }

    fn fail(&self, failure: &MockFailure) -> Response {
        Stats::bump(&self.stats.failures);
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, [(CONTENT_TYPE, JSON)], failure.body()).into_response();
        if let Some(value) = failure.retry_after_header() {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

fn sse_frame(exchange: &MockExchange, index: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    exchange.write_event(index, out);
    out.extend_from_slice(b"\n\n");
}

/// The SSE answer. Without delays or cuts it is written in one piece;
/// otherwise event by event, and a cut ends the body with an error, which
/// makes the server drop the connection mid-stream.
fn stream_response(exchange: MockExchange, state: MockState) -> Response {
    let count = exchange.event_count();
    let body = match exchange.cut_after {
        None if exchange.chunk_delay.is_zero() => {
            let mut out =
                Vec::with_capacity(count * (220 + exchange.model.len()) + exchange.reply.len());
            for index in 0..count {
                sse_frame(&exchange, index, &mut out);
            }
            out.extend_from_slice(DONE_FRAME);
            Body::from(out)
        }
        cut_after => {
            let mut frames: Vec<Bytes> = (0..count)
                .map(|index| {
                    let mut out = Vec::with_capacity(256 + exchange.model.len());
                    sse_frame(&exchange, index, &mut out);
                    Bytes::from(out)
                })
                .collect();
            frames.push(Bytes::from_static(DONE_FRAME));
            paced_body(frames, exchange.chunk_delay, cut_after, state)
        }
    };
    (
        [(CONTENT_TYPE, EVENT_STREAM), (CACHE_CONTROL, NO_CACHE)],
        body,
    )
        .into_response()
}

/// A stream body written frame by frame, `delay` apart; a cut after `cut`
/// frames ends the body with an error, which makes the server drop the
/// connection mid-stream. A cut always keeps the last frame (the stream's
/// end marker) back.
pub(crate) fn paced_body(
    frames: Vec<Bytes>,
    delay: std::time::Duration,
    cut: Option<u32>,
    state: MockState,
) -> Body {
    let paced = Paced {
        cut: cut.map(|after| (after as usize).min(frames.len().saturating_sub(1))),
        frames: frames.into_iter(),
        index: 0,
        delay,
        state,
    };
    Body::from_stream(stream::unfold(paced, Paced::next))
}

struct Paced {
    frames: std::vec::IntoIter<Bytes>,
    index: usize,
    delay: std::time::Duration,
    cut: Option<usize>,
    state: MockState,
}

impl Paced {
    async fn next(mut self) -> Option<(Result<Bytes, io::Error>, Self)> {
        let index = self.index;
        self.index += 1;
        if self.cut == Some(index) {
            // Let the server flush what was sent so far, as a real upstream
            // would have, before the connection goes down.
            tokio::time::sleep(CUT_FLUSH_WAIT).await;
            Stats::bump(&self.state.inner.stats.cut_streams);
            self.cut = None;
            self.frames = Vec::new().into_iter();
            let error = io::Error::new(io::ErrorKind::ConnectionAborted, "stream cut on purpose");
            return Some((Err(error), self));
        }
        let frame = self.frames.next()?;
        if index > 0 && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Some((Ok(frame), self))
    }
}
