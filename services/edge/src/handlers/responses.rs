//! `POST /v1/responses`: OpenAI's Responses API. The request is translated
//! to Chat Completions (`tollgate_providers::chat_request_from_responses`)
//! and served by the chat path (keys, grants, quotas, retries, usage); the
//! answer is translated back, whole or as the Responses event stream.
//! Errors keep OpenAI's shape, as the Responses API's own do.

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::chat::{ClientApi, handle};
use crate::request_id::RequestId;
use crate::state::EdgeState;

pub async fn create(
    State(state): State<EdgeState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&state, request_id, &headers, body, ClientApi::Responses).await
}
