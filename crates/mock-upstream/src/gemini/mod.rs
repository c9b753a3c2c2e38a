//! A fake of the Gemini API: `POST /v1beta/models/{model}:generateContent`
//! and `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key` (or
//! `?key=`); requests checked and answered as described in [`exchange`],
//! in the wire format of [`wire`]. A wrong key is Google's 400 with the
//! `API_KEY_INVALID` reason; a 429 says its delay in a `RetryInfo` detail.

mod exchange;
mod wire;

use axum::extract::{Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use self::exchange::{GeminiExchange, Refused};
use crate::server::{EVENT_STREAM, JSON, MAX_BODY_BYTES, MockState, NO_CACHE, paced_body};
use crate::stats::Stats;

const X_GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

pub(crate) async fn models(
    State(state): State<MockState>,
    Path(action): Path<String>,
    request: Request,
) -> Response {
    let inner = state.inner();
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    let Some((model, method)) = action.split_once(':') else {
        return fail(&state, &Refused::status(404, None));
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" if query.split('&').any(|pair| pair == "alt=sse") => true,
        "streamGenerateContent" => {
            return fail(
                &state,
                &Refused::invalid("this fake streams only with alt=sse"),
            );
        }
        _ => return fail(&state, &Refused::status(404, None)),
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return fail(
            &state,
            &Refused::invalid("Request payload size exceeds the limit."),
        );
    };
    let header_key = parts.headers.get(X_GOOG_API_KEY);
    let query_key = query.split('&').find_map(|pair| pair.strip_prefix("key="));
    let key = header_key
        .and_then(|value| value.to_str().ok())
        .or(query_key)
        .filter(|key| !key.is_empty());
    let index = inner.stats.record_chat(&body, header_key, key);
    if let Some(expected) = inner.api_key() {
        match key {
            None => {
                return fail(&state, &Refused {
                    status: 403,
                    message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".to_owned(),
                    reason: None,
                    retry_delay: None,
                });
            }
            Some(key) if key != expected => {
                return fail(
                    &state,
                    &Refused {
                        status: 400,
                        message: "API key not valid. Please pass a valid API key.".to_owned(),
                        reason: Some("API_KEY_INVALID"),
                        retry_delay: None,
                    },
                );
            }
            Some(_) => {}
        }
    }
    let exchange =
        match GeminiExchange::parse(model, &body, inner.behavior(), inner.directives_of(key)) {
            Ok(exchange) => exchange,
            Err(refused) => return fail(&state, &refused),
        };
    let failure = exchange.requested_failure().or_else(|| {
        inner.configured_failure(index).map(|status| {
            Refused::status(
                status,
                exchange.directives.retry_after.or(inner.retry_after()),
            )
        })
    });
    if !exchange.latency.is_zero() {
        tokio::time::sleep(exchange.latency).await;
    }
    if let Some(failure) = failure {
        return fail(&state, &failure);
    }
    if stream {
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
        ([(CONTENT_TYPE, JSON)], wire::whole(&exchange)).into_response()
    }
}

fn fail(state: &MockState, refused: &Refused) -> Response {
    Stats::bump(&state.inner().stats.failures);
    let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(CONTENT_TYPE, JSON)], wire::error_body(refused)).into_response()
}
