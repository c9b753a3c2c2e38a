//! How a failure becomes an HTTP response: the OpenAI error JSON, the status
//! from the shared error table, `Retry-After` when the failure says when
//! to come back, and the key's `x-ratelimit-*` headers when the quota
//! counters refused it (its own limit, or every account spent).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::GatewayErrorExt;

/// A [`GatewayError`] on its way to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub GatewayError);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        status_of(self.0.kind)
    }
}

/// The HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        Self(error)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self(GatewayError::from_status(&status))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.0.openai_body();
        error_response(&self.0, &body)
    }
}

/// A [`GatewayError`] on its way to a client of the Anthropic Messages
/// API: Anthropic's error object, with the same status and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicError(pub GatewayError);

/// Anthropic answers an overloaded upstream with its own status, 529, by
/// which Anthropic's SDKs raise their overloaded error.
const ANTHROPIC_OVERLOADED: u16 = 529;

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = self.0.anthropic_body();
        let mut response = error_response(&self.0, &body);
        if self.0.kind == ErrorKind::Overloaded
            && let Ok(status) = StatusCode::from_u16(ANTHROPIC_OVERLOADED)
        {
            *response.status_mut() = status;
        }
        response
    }
}

fn error_response(error: &GatewayError, body: &serde_json::Value) -> Response {
    let status = status_of(error.kind);
    if status.is_server_error() {
        tracing::warn!(code = error.kind.label(), message = %error.message, "request failed");
    }
    let mut response = json_response(status, body);
    if let Some(secs) = error.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(limits) = &error.rate_limits {
        crate::rate_limit::set_headers(response.headers_mut(), limits);
    }
    response
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_exhausted_sets_status_and_retry_after() {
        let error = GatewayError::new(ErrorKind::QuotaExhausted, "no account").with_retry_after(7);
        let response = ApiError(error).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(7u64))
        );
    }

    #[test]
    fn an_overloaded_upstream_is_anthropics_529_on_the_messages_api() {
        let error = GatewayError::new(ErrorKind::Overloaded, "overloaded");
        assert_eq!(
            AnthropicError(error.clone())
                .into_response()
                .status()
                .as_u16(),
            529
        );
        assert_eq!(ApiError(error).into_response().status().as_u16(), 503);
    }

    #[test]
    fn peer_down_is_503_without_its_message() {
        let error = ApiError::from(tonic::Status::unavailable("tcp connect error 10.0.0.1"));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.0.message.contains("10.0.0.1"));
        let response = error.into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
