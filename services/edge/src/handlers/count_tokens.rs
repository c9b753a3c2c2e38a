//! `POST /v1/messages/count_tokens`: how many input tokens a Messages
//! request would take. No account is asked yet (none of the providers
//! behind the gateway is reached natively from Messages), so the answer is
//! Tollgate's own estimate of the request translated to Chat, the same
//! estimate the quotas reserve (`tollgate_core::tokens`), and says so in
//! [`ESTIMATE_HEADER`]. The key, its model allow-list and the model's
//! existence are checked as for `POST /v1/messages`; errors take
//! Anthropic's shape.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, GatewayError, tokens};

use crate::error::{AnthropicError, json_response};
use crate::observe::Measure;
use crate::state::EdgeState;
use crate::{access, auth, body};

use super::models;

/// Marks the count as the gateway's estimate rather than a provider's.
pub const ESTIMATE_HEADER: HeaderName = HeaderName::from_static("x-tollgate-token-count");

pub async fn count(State(state): State<EdgeState>, headers: HeaderMap, body: Body) -> Response {
    let measure = Measure::start(Arc::clone(&state.metrics), "count_tokens");
    match serve(&state, &headers, body).await {
        Ok(answer) => {
            measure.finish(None, 200);
            let mut response = json_response(StatusCode::OK, &answer);
            response
                .headers_mut()
                .insert(ESTIMATE_HEADER, HeaderValue::from_static("estimate"));
            response
        }
        Err(error) => {
            measure.finish(None, error.kind.http_status());
            AnthropicError(error).into_response()
        }
    }
}

async fn serve(state: &EdgeState, headers: &HeaderMap, body: Body) -> Result<Value, GatewayError> {
    let key_hash = auth::credential(headers)?;
    let key = auth::resolve(state, &key_hash).await?;
    let bytes = body::read_limited(headers, body, state.settings.max_body_bytes).await?;
    let chat = tollgate_providers::chat_request_from_messages(body::parse_json(&bytes)?)?;
    let model = chat["model"]
        .as_str()
        .filter(|model| !model.is_empty())
        .ok_or_else(|| GatewayError::invalid("model", "`model` is required"))?;
    access::check_model(&key, model)?;
    let listed = models::visible(state, &key).await?;
    if !listed.iter().any(|entry| entry.id == model) {
        return Err(GatewayError::new(
            ErrorKind::ModelNotFound,
            format!("model `{model}` does not exist or this key may not use it"),
        ));
    }
    Ok(json!({"input_tokens": tokens::estimate_chat_prompt(&chat)}))
}
