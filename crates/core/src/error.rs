//! The one table that says what each failure means at every boundary: HTTP
//! status, gRPC code, OpenAI error `type` and `code`, and metric label.
//!
//! A [`GatewayError`] crosses services as a `tonic::Status` whose metadata
//! carries the kind, the offending parameter and the retry delay, so the edge
//! answers the client exactly as the service that failed decided.

use std::fmt;

use tonic::Code;
use tonic::metadata::MetadataValue;

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
    pub const ALL: [ErrorKind; 17] = [
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
        ErrorKind::UpstreamAuth,
        ErrorKind::Unavailable,
        ErrorKind::UpstreamTimeout,
        ErrorKind::ClientClosed,
        ErrorKind::Internal,
    ];

    /// HTTP status, gRPC code, OpenAI error `type`, and the label used for
    /// metrics, for the error `code` field and across gRPC.
    const fn table(self) -> (u16, Code, &'static str, &'static str) {
        match self {
            ErrorKind::InvalidRequest => (
                400,
                Code::InvalidArgument,
                "invalid_request_error",
                "invalid_request",
            ),
            ErrorKind::ContextLengthExceeded => (
                400,
                Code::InvalidArgument,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            ErrorKind::ContentPolicy => (
                400,
                Code::InvalidArgument,
                "invalid_request_error",
                "content_policy_violation",
            ),
            ErrorKind::InvalidApiKey => (
                401,
                Code::Unauthenticated,
                "authentication_error",
                "invalid_api_key",
            ),
            ErrorKind::PermissionDenied => (
                403,
                Code::PermissionDenied,
                "permission_error",
                "permission_denied",
            ),
            ErrorKind::ModelNotFound => (
                404,
                Code::NotFound,
                "invalid_request_error",
                "model_not_found",
            ),
            ErrorKind::NotFound => (404, Code::NotFound, "invalid_request_error", "not_found"),
            ErrorKind::PayloadTooLarge => (
                413,
                Code::OutOfRange,
                "invalid_request_error",
                "request_too_large",
            ),
            ErrorKind::RateLimited => (
                429,
                Code::ResourceExhausted,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            ErrorKind::QuotaExhausted => (
                429,
                Code::ResourceExhausted,
                "rate_limit_error",
                "quota_exhausted",
            ),
            ErrorKind::UpstreamRateLimited => (
                429,
                Code::ResourceExhausted,
                "rate_limit_error",
                "upstream_rate_limited",
            ),
            ErrorKind::UpstreamError => (502, Code::Unknown, "api_error", "upstream_error"),
            ErrorKind::UpstreamAuth => (502, Code::Unknown, "api_error", "upstream_auth_failed"),
            ErrorKind::Unavailable => (503, Code::Unavailable, "api_error", "service_unavailable"),
            ErrorKind::UpstreamTimeout => {
                (504, Code::DeadlineExceeded, "api_error", "upstream_timeout")
            }
            ErrorKind::ClientClosed => (
                499,
                Code::Cancelled,
                "invalid_request_error",
                "client_closed_request",
            ),
            ErrorKind::Internal => (500, Code::Internal, "api_error", "internal_error"),
        }
    }

    pub const fn http_status(self) -> u16 {
        self.table().0
    }

    pub const fn grpc_code(self) -> Code {
        self.table().1
    }

    /// The OpenAI error `type` field.
    pub const fn openai_type(self) -> &'static str {
        self.table().2
    }

    /// The OpenAI error `code` field; also the metric label.
    pub const fn label(self) -> &'static str {
        self.table().3
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
                | ErrorKind::UpstreamAuth
                | ErrorKind::Unavailable
                | ErrorKind::UpstreamTimeout
        )
    }

    /// The kind a gRPC status without Tollgate metadata stands for (a peer
    /// that is down, a transport failure).
    fn from_grpc_code(code: Code) -> ErrorKind {
        match code {
            Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
                ErrorKind::InvalidRequest
            }
            Code::Unauthenticated => ErrorKind::InvalidApiKey,
            Code::PermissionDenied => ErrorKind::PermissionDenied,
            Code::NotFound => ErrorKind::NotFound,
            Code::OutOfRange => ErrorKind::PayloadTooLarge,
            Code::ResourceExhausted => ErrorKind::QuotaExhausted,
            Code::Unavailable | Code::Cancelled | Code::Aborted => ErrorKind::Unavailable,
            Code::DeadlineExceeded => ErrorKind::UpstreamTimeout,
            Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
                ErrorKind::Internal
            }
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

const KIND_HEADER: &str = "tg-error-kind";
const PARAM_HEADER: &str = "tg-error-param";
const RETRY_HEADER: &str = "tg-retry-after";
const LIMIT_REQUESTS_HEADER: &str = "tg-ratelimit-requests";
const LIMIT_TOKENS_HEADER: &str = "tg-ratelimit-tokens";

/// One of a client key's sliding-window limits at a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the window next frees some of it.
    pub reset_ms: u64,
}

impl RateWindow {
    /// `limit remaining reset_ms`, as carried in gRPC metadata.
    fn encode(&self) -> String {
        format!("{} {} {}", self.limit, self.remaining, self.reset_ms)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(' ').map(str::parse::<u64>);
        let window = Self {
            limit: parts.next()?.ok()?,
            remaining: parts.next()?.ok()?,
            reset_ms: parts.next()?.ok()?,
        };
        parts.next().is_none().then_some(window)
    }
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

    /// The gRPC status that carries this error to another service.
    pub fn to_status(&self) -> tonic::Status {
        let mut status = tonic::Status::new(self.kind.grpc_code(), self.message.clone());
        let metadata = status.metadata_mut();
        metadata.insert(KIND_HEADER, MetadataValue::from_static(self.kind.label()));
        if let Some(param) = &self.param
            && let Ok(value) = MetadataValue::try_from(param.as_str())
        {
            metadata.insert(PARAM_HEADER, value);
        }
        if let Some(secs) = self.retry_after_secs {
            metadata.insert(RETRY_HEADER, MetadataValue::from(secs));
        }
        let limits = self.rate_limits.as_deref().copied().unwrap_or_default();
        for (name, window) in [
            (LIMIT_REQUESTS_HEADER, limits.requests),
            (LIMIT_TOKENS_HEADER, limits.tokens),
        ] {
            if let Some(window) = window
                && let Ok(value) = MetadataValue::try_from(window.encode())
            {
                metadata.insert(name, value);
            }
        }
        status
    }

    /// Whether `status` carries an error sent with
    /// [`GatewayError::to_status`], rather than coming from the transport
    /// (the peer service down, unreachable, or too slow to answer).
    pub fn is_in_status(status: &tonic::Status) -> bool {
        status.metadata().contains_key(KIND_HEADER)
    }

    /// Reads back an error sent with [`GatewayError::to_status`]. A status
    /// from elsewhere (transport failure, peer down) maps by its code, and
    /// its message is replaced unless it is a plain client-side problem.
    pub fn from_status(status: &tonic::Status) -> Self {
        let metadata = status.metadata();
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        match text(KIND_HEADER).as_deref().and_then(ErrorKind::from_label) {
            Some(kind) => {
                let window = |name: &str| text(name).as_deref().and_then(RateWindow::decode);
                let limits = RateLimits {
                    requests: window(LIMIT_REQUESTS_HEADER),
                    tokens: window(LIMIT_TOKENS_HEADER),
                };
                Self {
                    kind,
                    message: status.message().to_owned(),
                    param: text(PARAM_HEADER),
                    retry_after_secs: text(RETRY_HEADER).and_then(|value| value.parse().ok()),
                    rate_limits: (!limits.is_empty()).then(|| Box::new(limits)),
                }
            }
            None => {
                let kind = ErrorKind::from_grpc_code(status.code());
                let message = match kind {
                    ErrorKind::Unavailable | ErrorKind::UpstreamTimeout => {
                        "a gateway service is unavailable; try again"
                    }
                    _ => "internal gateway error",
                };
                Self::new(kind, message)
            }
        }
    }
}

impl From<GatewayError> for tonic::Status {
    fn from(error: GatewayError) -> Self {
        error.to_status()
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
    fn status_round_trip_keeps_kind_param_and_retry() {
        let error = GatewayError::invalid("messages", "messages must not be empty");
        assert_eq!(GatewayError::from_status(&error.to_status()), error);

        let error = GatewayError::new(ErrorKind::QuotaExhausted, "no account").with_retry_after(42);
        let back = GatewayError::from_status(&error.to_status());
        assert_eq!(back.kind, ErrorKind::QuotaExhausted);
        assert_eq!(back.retry_after_secs, Some(42));
    }

    #[test]
    fn status_round_trip_keeps_rate_limits() {
        let limits = RateLimits {
            requests: Some(RateWindow {
                limit: 3,
                remaining: 0,
                reset_ms: 59_000,
            }),
            tokens: None,
        };
        let error = GatewayError::new(ErrorKind::RateLimited, "key limit")
            .with_retry_after(59)
            .with_rate_limits(limits);
        assert_eq!(GatewayError::from_status(&error.to_status()), error);
        let none =
            GatewayError::new(ErrorKind::RateLimited, "x").with_rate_limits(RateLimits::default());
        assert_eq!(none.rate_limits, None);
        assert_eq!(RateWindow::decode("1 2"), None);
        assert_eq!(RateWindow::decode("1 2 3 4"), None);
    }

    #[test]
    fn foreign_status_hides_its_message() {
        let status = tonic::Status::internal("db password is hunter2");
        let error = GatewayError::from_status(&status);
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(!error.message.contains("hunter2"));

        let error = GatewayError::from_status(&tonic::Status::unavailable("connect refused"));
        assert_eq!(error.kind.http_status(), 503);
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
