//! `POST /v1/messages`: Anthropic's Messages API. The request is translated
//! to Chat Completions (`tollgate_providers::chat_request_from_messages`)
//! and served by the same path as chat (keys, grants, quotas, retries,
//! usage); the answer is translated back, whole or streamed, and errors
//! take Anthropic's shape so Anthropic's SDKs raise their own exceptions.
//! The key comes as `x-api-key` or `Authorization: Bearer`;
//! `anthropic-version`, `anthropic-beta` and query parameters such as
//! `?beta=true` are accepted.

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
    handle(&state, request_id, &headers, body, ClientApi::Messages).await
}
