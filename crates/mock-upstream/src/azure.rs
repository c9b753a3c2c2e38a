//! A fake of Azure OpenAI's chat completions: OpenAI's wire format at
//! Azure's paths, `POST /openai/v1/chat/completions` (the deployment as the
//! body's `model`) and `POST /openai/deployments/{deployment}/chat/
//! completions?api-version=…`, with the key in the `api-key` header.
//! Requests are answered as the OpenAI route answers them (directives,
//! per-key behaviour and the mock's key check apply to the `api-key`
//! value); a deployment path without `api-version` is Azure's 404.

use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::{JSON, MockState, chat};

const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// `POST /openai/v1/chat/completions`.
pub(crate) async fn v1_chat(state: State<MockState>, request: Request) -> Response {
    chat(state, with_bearer_key(request)).await
}

/// `POST /openai/deployments/{deployment}/chat/completions`.
pub(crate) async fn deployment_chat(
    state: State<MockState>,
    Path(_deployment): Path<String>,
    request: Request,
) -> Response {
    let versioned = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair.starts_with("api-version=") && pair.len() > "api-version=".len());
    if !versioned {
        let body = json!({"error": {"code": "404", "message": "Resource not found"}});
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, JSON)],
            body.to_string(),
        )
            .into_response();
    }
    chat(state, with_bearer_key(request)).await
}

/// The request with its `api-key` where the OpenAI route reads a key
/// (Azure ignores `Authorization` for key auth, so any is dropped).
fn with_bearer_key(mut request: Request) -> Request {
    let headers = request.headers_mut();
    headers.remove(AUTHORIZATION);
    if let Some(key) = headers.remove(API_KEY)
        && let Ok(key) = key.to_str()
        && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {key}"))
    {
        headers.insert(AUTHORIZATION, bearer);
    }
    request
}
