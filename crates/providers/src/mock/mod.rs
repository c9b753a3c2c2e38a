//! The mock provider: answers in-process with the same deterministic echo,
//! token counts, directives and wire objects as the `tollgate-mock-upstream`
//! HTTP server, which is built on this module.

mod directives;
mod exchange;
mod provider;
pub mod wire;

pub use directives::{Directives, Refusal};
pub use exchange::{MockExchange, MockToolCall, split_piece};
pub use provider::MockProvider;

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use tollgate_core::GatewayError;

/// How the mock behaves when a request says nothing else (directives in the
/// request override each field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockBehavior {
    /// Wait before the answer (or the first chunk of a stream).
    pub latency: Duration,
    /// Wait between stream events.
    pub chunk_delay: Duration,
    /// Content chunks of a stream.
    pub chunks: u32,
    /// Report this many completion tokens instead of the formula's.
    pub completion_tokens: Option<u32>,
    /// End every stream abruptly after this many events.
    pub cut_after: Option<u32>,
}

impl Default for MockBehavior {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            chunks: 3,
            completion_tokens: None,
            cut_after: None,
        }
    }
}

/// An error answer of the mock: HTTP status, OpenAI error body fields, and
/// the `Retry-After` of a 429.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockFailure {
    pub status: u16,
    pub message: String,
    pub param: Option<&'static str>,
    /// The error `code`; `None`: the usual one for the status.
    pub code: Option<&'static str>,
    pub retry_after_secs: Option<u64>,
}

impl MockFailure {
    /// A failure with the usual message for `status`; `retry_after_secs`
    /// is kept for 429 only.
    pub fn status(status: u16, retry_after_secs: Option<u64>) -> Self {
        let message = match status {
            400 => "The request is invalid.",
            401 => "Invalid authentication credentials.",
            403 => "You are not allowed to sample from this model.",
            404 => "The model does not exist or you do not have access to it.",
            408 => "The request timed out.",
            429 => "Rate limit reached for requests. Please try again later.",
            500..=599 => "The server had an error while processing your request.",
            _ => "The request failed.",
        };
        Self {
            status,
            message: message.to_owned(),
            param: None,
            code: None,
            retry_after_secs: retry_after_secs.filter(|_| status == 429),
        }
    }

    /// OpenAI's 503 when the model's capacity is spent, in its words.
    pub fn overloaded() -> Self {
        Self {
            message: "The engine is currently overloaded, please try again later.".to_owned(),
            ..Self::status(503, None)
        }
    }

    /// OpenAI's 400 for a request it refuses as `refusal`, in its words.
    pub fn refused(refusal: Refusal) -> Self {
        let (message, param) = match refusal {
            Refusal::ContextLengthExceeded => (
                "This model's maximum context length is 128000 tokens. However, your \
                 messages resulted in 130000 tokens. Please reduce the length of the messages.",
                Some("messages"),
            ),
            Refusal::ContentPolicyViolation => (
                "Your request was rejected as a result of our safety system. Your prompt \
                 may contain text that is not allowed by our safety system.",
                None,
            ),
        };
        Self {
            status: 400,
            message: message.to_owned(),
            param,
            code: Some(refusal.code()),
            retry_after_secs: None,
        }
    }

    pub fn invalid(param: Option<&'static str>, message: &str) -> Self {
        Self {
            status: 400,
            message: message.to_owned(),
            param,
            code: None,
            retry_after_secs: None,
        }
    }

    /// OpenAI's 401 for a wrong key, which (like OpenAI's) shows a masked
    /// fragment of the key it was given, so tests can check that the
    /// gateway never relays it.
    pub fn unauthorized(presented: Option<&str>) -> Self {
        let message = match presented {
            None => "You didn't provide an API key. Provide it in an Authorization header \
                     (Authorization: Bearer YOUR_KEY)."
                .to_owned(),
            Some(key) => format!("Incorrect API key provided: {}.", mask(key)),
        };
        Self {
            status: 401,
            message,
            param: None,
            code: None,
            retry_after_secs: None,
        }
    }

    /// The OpenAI error JSON body.
    pub fn body(&self) -> Vec<u8> {
        wire::error_body(self.status, &self.message, self.param, self.code)
    }

    /// The `Retry-After` header value, if any.
    pub fn retry_after_header(&self) -> Option<HeaderValue> {
        self.retry_after_secs.map(HeaderValue::from)
    }

    /// What the gateway makes of this answer: the same mapping an HTTP
    /// upstream's failure goes through.
    pub fn to_gateway_error(&self) -> GatewayError {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        if let Some(value) = self.retry_after_header() {
            headers.insert(http::header::RETRY_AFTER, value);
        }
        crate::errors::from_response(status, &headers, &self.body())
    }
}

/// The first four and last four characters, the middle starred.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::ErrorKind;

    #[test]
    fn failures_map_like_an_http_upstream() {
        let error = MockFailure::status(429, Some(7)).to_gateway_error();
        assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
        assert_eq!(error.retry_after_secs, Some(7));
        assert_eq!(MockFailure::status(503, Some(7)).retry_after_secs, None);
        let error = MockFailure::invalid(Some("messages"), "empty").to_gateway_error();
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert_eq!(error.param.as_deref(), Some("messages"));
        let error = MockFailure::status(403, None).to_gateway_error();
        assert_eq!(error.kind, ErrorKind::UpstreamAuth);
        assert!(!error.message.contains("sample"), "{}", error.message);
    }

    #[test]
    fn refusals_are_the_request_classes_the_gateway_knows() {
        let failure = MockFailure::refused(Refusal::ContextLengthExceeded);
        let body: serde_json::Value = serde_json::from_slice(&failure.body()).unwrap();
        assert_eq!(body["error"]["code"], "context_length_exceeded");
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(
            failure.to_gateway_error().kind,
            ErrorKind::ContextLengthExceeded
        );
        let failure = MockFailure::refused(Refusal::ContentPolicyViolation);
        assert_eq!(failure.status, 400);
        let error = failure.to_gateway_error();
        assert_eq!(error.kind, ErrorKind::ContentPolicy);
        assert!(error.message.contains("safety system"), "{}", error.message);
    }

    #[test]
    fn unauthorized_shows_only_a_masked_fragment() {
        let failure = MockFailure::unauthorized(Some("sk-abcdefghijklmnop"));
        assert_eq!(
            failure.message,
            "Incorrect API key provided: sk-a***********mnop."
        );
        assert!(
            MockFailure::unauthorized(Some("short"))
                .message
                .contains("*****")
        );
        assert_eq!(failure.to_gateway_error().kind, ErrorKind::UpstreamAuth);
    }
}
