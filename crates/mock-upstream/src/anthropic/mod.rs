//! A fake of Anthropic's Messages API, `POST /v1/messages`: the key in
//! `x-api-key`, the `anthropic-version` header required, requests checked
//! and answered as described in [`exchange`], in the wire format of
//! [`wire`]. Directives and per-key behaviour work as on the OpenAI route.

mod exchange;
mod wire;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use self::exchange::{MessagesExchange, Refused};
use crate::server::{EVENT_STREAM, JSON, MAX_BODY_BYTES, MockState, NO_CACHE, paced_body};
use crate::stats::Stats;

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

pub(crate) async fn messages(State(state): State<MockState>, request: Request) -> Response {
    let inner = state.inner();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return fail(
            &state,
            &Refused {
                status: 413,
                message: exchange::default_message(413).to_owned(),
                retry_after: None,
            },
        );
    };
    let api_key = parts.headers.get(X_API_KEY);
    let key = api_key
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty());
    // A Messages endpoint behind another login (Rovo Dev's Basic auth) is
    // recorded by its `Authorization` header.
    let shown = api_key.or_else(|| parts.headers.get(AUTHORIZATION));
    let index = inner.stats.record_chat(&body, shown, key);
    if let Some(expected) = inner.api_key()
        && key != Some(expected)
    {
        return fail(
            &state,
            &Refused {
                status: 401,
                message: exchange::default_message(401).to_owned(),
                retry_after: None,
            },
        );
    }
    if !parts.headers.contains_key(ANTHROPIC_VERSION) {
        return fail(
            &state,
            &Refused::invalid("anthropic-version: header is required"),
        );
    }
    let exchange = match MessagesExchange::parse(&body, inner.behavior(), inner.directives_of(key))
    {
        Ok(exchange) => exchange,
        Err(refused) => return fail(&state, &refused),
    };
    let failure = exchange.requested_failure().or_else(|| {
        inner.configured_failure(index).map(|status| Refused {
            status,
            message: exchange::default_message(status).to_owned(),
            retry_after: exchange.directives.retry_after,
        })
    });
    if !exchange.latency.is_zero() {
        tokio::time::sleep(exchange.latency).await;
    }
    if let Some(mut failure) = failure {
        if failure.status == 429 && failure.retry_after.is_none() {
            failure.retry_after = inner.retry_after();
        }
        return fail(&state, &failure);
    }
    if exchange.stream {
        Stats::bump(&inner.stats.streams);
        let frames = wire::stream_frames(&exchange)
            .into_iter()
            .map(Bytes::from)
            .collect();
        let body = paced_body(
            frames,
            exchange.chunk_delay,
            exchange.cut_after,
            state.clone(),
        );
        (
            [(CONTENT_TYPE, EVENT_STREAM), (CACHE_CONTROL, NO_CACHE)],
            body,
        )
            .into_response()
    } else {
        ([(CONTENT_TYPE, JSON)], wire::message(&exchange)).into_response()
    }
}

fn fail(state: &MockState, refused: &Refused) -> Response {
    Stats::bump(&state.inner().stats.failures);
    let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(CONTENT_TYPE, JSON)],
        wire::error_body(refused.status, &refused.message),
    )
        .into_response();
    if let Some(secs) = refused.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
