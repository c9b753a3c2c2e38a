//! The one table that says what each failure means to a client: HTTP status,
//! OpenAI error `type` and `code`, and metric label.
//!
//! A [`GatewayError`] crosses services as a gRPC status whose metadata carries
//! the kind, the offending parameter and the retry delay, so the edge answers
//! the client exactly as the service that failed decided; that encoding and
//! each kind's gRPC code live with the gRPC boundary, in `tollgate-proto`.

use std::fmt;

/// Every way a request can fail, with a low-cardinality name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Malformed JSON or an invalid field.
    InvalidRequest,
    /// The prompt (plus the completion cap) is larger than the model's
    /// context window, as the upstream said.
    ContextLengthExceeded,
    /// The provider refused the request under its content policy
    /// (moderation, safety filters).
    ContentPolicy,
    /// Missing, unknown, expired or disabled client key.
    InvalidApiKey,
    /// The key may not use this model or profile.
    PermissionDenied,
    /// No account serves the requested model.
    ModelNotFound,
    /// An admin object that does not exist.
    NotFound,
    /// Request body over the configured limit.
    PayloadTooLarge,
    /// The key's own RPM/TPM/budget is spent.
    RateLimited,
    /// No account can serve the request now (caps, cooldowns).
    QuotaExhausted,
    /// The upstream answered 429 and no other account could take over.
    UpstreamRateLimited,
    /// The upstream answered with an error or an unreadable body.
    UpstreamError,
    /// The upstream said it is overloaded (Anthropic's 529
    /// `overloaded_error`, Gemini's and OpenAI's 503 "overloaded", Ollama's
    /// 503 "server busy"): its capacity, not the request, so another
    /// account may take the request and this one may serve again after a
    /// backoff.
    Overloaded,
    /// The upstream refused the account's credential or its permissions
    /// (401, 403).
    UpstreamAuth,
    /// The upstream (or a peer service) could not be reached.
    Unavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The client went away before the answer was complete (recorded in
    /// usage events; nobody is left to receive it).
    ClientClosed,
    /// A bug or an unexpected state inside Tollgate.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::InvalidRequest,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ContentPolicy,
        ErrorKind::InvalidApiKey,
        ErrorKind::PermissionDenied,
        ErrorKind::ModelNotFound,
        ErrorKind::NotFound,
        ErrorKind::PayloadTooLarge,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExhausted,
        ErrorKind::UpstreamRateLimited,
        ErrorKind::UpstreamError,
        ErrorKind::Overloaded,
        ErrorKind::UpstreamAuth,
        ErrorKind::Unavailable,
        ErrorKind::UpstreamTimeout,
        ErrorKind::ClientClosed,
        ErrorKind::Internal,
    ];

    /// HTTP status, OpenAI error `type`, and the label used for metrics, for
    /// the error `code` field and across gRPC.
    const fn table(self) -> (u16, &'static str, &'static str) {
        match self {
            ErrorKind::InvalidRequest => (400, "invalid_request_error", "invalid_request"),
            ErrorKind::ContextLengthExceeded => {
                (400, "invalid_request_error", "context_length_exceeded")
            }
            ErrorKind::ContentPolicy => (400, "invalid_request_error", "content_policy_violation"),
            ErrorKind::InvalidApiKey => (401, "authentication_error", "invalid_api_key"),
            ErrorKind::PermissionDenied => (403, "permission_error", "permission_denied"),
            ErrorKind::ModelNotFound => (404, "invalid_request_error", "model_not_found"),
            ErrorKind::NotFound => (404, "invalid_request_error", "not_found"),
            ErrorKind::PayloadTooLarge => (413, "invalid_request_error", "request_too_large"),
            ErrorKind::RateLimited => (429, "rate_limit_error", "rate_limit_exceeded"),
            ErrorKind::QuotaExhausted => (429, "rate_limit_error", "quota_exhausted"),
            ErrorKind::UpstreamRateLimited => (429, "rate_limit_error", "upstream_rate_limited"),
            ErrorKind::UpstreamError => (502, "api_error", "upstream_error"),
            ErrorKind::Overloaded => (503, "api_error", "upstream_overloaded"),
            ErrorKind::UpstreamAuth => (502, "api_error", "upstream_auth_failed"),
            ErrorKind::Unavailable => (503, "api_error", "service_unavailable"),
            ErrorKind::UpstreamTimeout => (504, "api_error", "upstream_timeout"),
            ErrorKind::ClientClosed => (499, "invalid_request_error", "client_closed_request"),
            ErrorKind::Internal => (500, "api_error", "internal_error"),
        }
    }

    pub const fn http_status(self) -> u16 {
        self.table().0
    }

    /// The OpenAI error `type` field.
    pub const fn openai_type(self) -> &'static str {
        self.table().1
    }

    /// The Anthropic error `type` (its Messages API's error object), by
    /// which Anthropic's SDKs choose their exception class with the status.
    pub const fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::ContentPolicy
            | ErrorKind::ClientClosed => "invalid_request_error",
            ErrorKind::InvalidApiKey => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::ModelNotFound | ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RateLimited | ErrorKind::QuotaExhausted | ErrorKind::UpstreamRateLimited => {
                "rate_limit_error"
            }
            ErrorKind::Overloaded | ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::UpstreamTimeout => "timeout_error",
            ErrorKind::UpstreamError | ErrorKind::UpstreamAuth | ErrorKind::Internal => "api_error",
        }
    }

    /// The OpenAI error `code` field; also the metric label.
    pub const fn label(self) -> &'static str {
        self.table().2
    }

    /// The kind named by `label`, if any.
    pub fn from_label(label: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.label() == label)
    }

    /// Whether another account or deployment may succeed where this failed.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::UpstreamRateLimited
                | ErrorKind::UpstreamError
                | ErrorKind::Overloaded
                | ErrorKind::UpstreamAuth
                | ErrorKind::Unavailable
                | ErrorKind::UpstreamTimeout
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One of a client key's sliding-window limits at a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the window next frees some of it.
    pub reset_ms: u64,
}

/// A client key's RPM and TPM standing, for the `x-ratelimit-*` headers; a
/// limit the key does not have is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    pub requests: Option<RateWindow>,
    pub tokens: Option<RateWindow>,
}

impl RateLimits {
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }
}

/// A failure that may reach a client. `message` is client-safe by
/// construction: it never carries a secret or internal detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault, for `invalid_request_error`.
    pub param: Option<String>,
    /// Seconds until the request could pass, for 429s.
    pub retry_after_secs: Option<u64>,
    /// The client key's rate limits, when its own limit refused it (boxed:
    /// rare, and it keeps every `Result<_, GatewayError>` small).
    pub rate_limits: Option<Box<RateLimits>>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            param: None,
            retry_after_secs: None,
            rate_limits: None,
        }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Attaches the key's rate limits (nothing when it has none).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = (!limits.is_empty()).then(|| Box::new(limits));
        self
    }

    /// The OpenAI error body: `{"error":{"message","type","param","code"}}`.
    pub fn openai_body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind.openai_type(),
                "param": self.param,
                "code": self.kind.label(),
            }
        })
    }

    /// The Anthropic error body: `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_body(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "error",
            "error": {
                "type": self.kind.anthropic_type(),
                "message": self.message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_label(kind.label()), Some(kind));
        }
    }

    #[test]
    fn anthropic_body_names_the_anthropic_type() {
        let body = GatewayError::new(ErrorKind::QuotaExhausted, "spent").anthropic_body();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["message"], "spent");
    }

    #[test]
    fn an_overloaded_upstream_is_a_retryable_503_of_its_own() {
        let kind = ErrorKind::Overloaded;
        assert_eq!(kind.http_status(), 503);
        assert_eq!(kind.label(), "upstream_overloaded");
        assert_ne!(kind.label(), ErrorKind::UpstreamError.label());
        assert_eq!(kind.openai_type(), "api_error");
        assert_eq!(kind.anthropic_type(), "overloaded_error");
        assert!(kind.is_retryable());
    }

    #[test]
    fn openai_body_has_the_four_fields() {
        let body = GatewayError::invalid("model", "model is required").openai_body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["message"], "model is required");
    }
}
