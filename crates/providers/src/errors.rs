//! Upstream failures mapped onto the gateway's error table.
//!
//! What a client may see is decided here: a 400/422 from the upstream keeps
//! its message and `param` (they describe the client's own request), every
//! other failure gets a fixed message, because upstream text about
//! credentials, accounts or internals may carry secrets (OpenAI's 401 echoes
//! part of the key it refused).
//!
//! A 401 or a 403 blames the account: its credential, or what the
//! credential may do (OpenAI's region refusals, Anthropic's
//! `permission_error`, Gemini's `PERMISSION_DENIED`); the account is then
//! disabled and another one tried. The exception is a 403 that is a
//! moderation verdict on the prompt (OpenRouter's "flagged" input): that is
//! the request's, [`ErrorKind::ContentPolicy`], like a 400 whose code says
//! content filter. A 400 that says the prompt is longer than the model's
//! context window is [`ErrorKind::ContextLengthExceeded`]. Neither of
//! those is retried on another account of the same model.
//!
//! An upstream that says it is overloaded is [`ErrorKind::Overloaded`]:
//! Anthropic's 529 and any `overloaded_error` type, and a 503 whose message
//! says "overloaded" (Gemini's `UNAVAILABLE` "The model is overloaded",
//! OpenAI's "The engine is currently overloaded" and "The server is
//! overloaded or not ready yet") or, as Ollama's full queue, "server
//! busy". Any other 5xx stays
//! [`ErrorKind::UpstreamError`]; both may pass, so both are retried on
//! another account and, after a backoff, on the same one.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};

use crate::client::HttpError;

pub use crate::retry_after::retry_after_secs;

/// The longest upstream message relayed to a client.
const MAX_RELAYED_MESSAGE: usize = 1_000;

/// The error for a non-success HTTP answer of an upstream.
pub fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    from_response_at(status, headers, body, SystemTime::now())
}

/// [`from_response`] at a given wall-clock time (for `Retry-After` dates).
pub fn from_response_at(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> GatewayError {
    match status.as_u16() {
        400 | 422 => invalid_request(body),
        401 => GatewayError::new(
            ErrorKind::UpstreamAuth,
            "the upstream refused the account's credential",
        ),
        403 if UpstreamError::read(body).is_content_policy() => GatewayError::new(
            ErrorKind::ContentPolicy,
            "the provider refused this request under its content policy",
        ),
        403 => GatewayError::new(
            ErrorKind::UpstreamAuth,
            "the upstream refused the account's credential or its permissions",
        ),
        404 => GatewayError::new(
            ErrorKind::ModelNotFound,
            "the upstream does not serve the requested model",
        ),
        408 => timeout(),
        429 => {
            let error = GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                "the upstream is rate limiting this account",
            );
            match retry_after_secs(headers, now) {
                Some(secs) => error.with_retry_after(secs),
                None => error,
            }
        }
        529 => overloaded(),
        503 if UpstreamError::read(body).is_overloaded() => overloaded(),
        _ if UpstreamError::read(body).has_code(&[OVERLOADED_TYPE]) => overloaded(),
        code => GatewayError::new(
            ErrorKind::UpstreamError,
            format!("the upstream answered with status {code}"),
        ),
    }
}

/// Anthropic's error type for an overloaded API.
const OVERLOADED_TYPE: &str = "overloaded_error";

/// The upstream said it is overloaded (the message is fixed: the
/// upstream's own may name its hosts).
pub fn overloaded() -> GatewayError {
    GatewayError::new(ErrorKind::Overloaded, "the upstream is overloaded")
}

/// The error for a request that got no usable HTTP answer.
pub fn from_transport(error: &HttpError) -> GatewayError {
    match error {
        HttpError::ConnectTimeout => timeout(),
        HttpError::Connect(_) | HttpError::Tls(_) | HttpError::Closed => {
            GatewayError::new(ErrorKind::Unavailable, "the upstream could not be reached")
        }
        HttpError::InvalidUrl => unusable_base_url(),
        HttpError::Exchange(_) => unreadable(),
    }
}

/// The account's base URL does not make a request URL.
pub fn unusable_base_url() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamError,
        "the account's base URL is not usable",
    )
}

pub fn timeout() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamTimeout,
        "the upstream did not answer in time",
    )
}

/// The upstream's answer could not be read or parsed.
pub fn unreadable() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamError,
        "the upstream's answer could not be read",
    )
}

/// A stream that ended (or broke) before its `[DONE]` marker.
pub fn stream_cut() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamError,
        "the upstream stream ended before it was complete",
    )
}

/// An error object sent inside a stream that had already started.
pub fn stream_error_event() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamError,
        "the upstream reported an error during the stream",
    )
}

fn invalid_request(body: &[u8]) -> GatewayError {
    let upstream = UpstreamError::read(body);
    let kind = if upstream.is_context_length() {
        ErrorKind::ContextLengthExceeded
    } else if upstream.is_content_policy() {
        ErrorKind::ContentPolicy
    } else {
        ErrorKind::InvalidRequest
    };
    let message = upstream
        .message
        .map(|text| truncate(text.trim(), MAX_RELAYED_MESSAGE).to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "the upstream rejected the request as invalid".to_owned());
    let error = GatewayError::new(kind, message);
    match upstream.param {
        Some(param) => error.with_param(param),
        None => error,
    }
}

/// Error envelopes seen in the wild: OpenAI's `{"error":{"message","param"}}`,
/// Ollama's `{"error":"text"}`, and a bare `{"message"}`.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

/// What an upstream's error body says.
#[derive(Debug, Default)]
struct UpstreamError {
    message: Option<String>,
    param: Option<String>,
    /// `code`, `type` and `status` of the error object, lower case.
    codes: Vec<String>,
}

impl UpstreamError {
    fn read(body: &[u8]) -> Self {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
            return Self::default();
        };
        match envelope.error {
            Some(Value::Object(mut error)) => {
                let text = |value: Option<Value>| match value {
                    Some(Value::String(text)) => Some(text),
                    _ => None,
                };
                let codes = ["code", "type", "status"]
                    .into_iter()
                    .filter_map(|field| text(error.remove(field)))
                    .map(|code| code.to_ascii_lowercase())
                    .collect();
                Self {
                    message: text(error.remove("message")),
                    param: text(error.remove("param")),
                    codes,
                }
            }
            Some(Value::String(message)) => Self {
                message: Some(message),
                ..Self::default()
            },
            _ => Self {
                message: envelope.message,
                ..Self::default()
            },
        }
    }

    fn has_code(&self, names: &[&str]) -> bool {
        self.codes.iter().any(|code| names.contains(&code.as_str()))
    }

    fn says(&self, phrases: &[&str]) -> bool {
        self.message.as_deref().is_some_and(|message| {
            let message = message.to_ascii_lowercase();
            phrases.iter().any(|phrase| message.contains(phrase))
        })
    }

    /// OpenAI's `context_length_exceeded`, and the wording of Anthropic
    /// ("prompt is too long"), Gemini ("exceeds the maximum number of
    /// tokens") and OpenAI-compatible servers ("maximum context length").
    fn is_context_length(&self) -> bool {
        self.has_code(&["context_length_exceeded", "string_above_max_length"])
            || self.says(&[
                "maximum context length",
                "context length",
                "context window",
                "prompt is too long",
                "exceeds the maximum number of tokens",
                "too many tokens",
            ])
    }

    /// Anthropic's `overloaded_error` type, and the wording of Gemini's
    /// and OpenAI's overloaded 503s and of Ollama's full queue ("server
    /// busy, please try again.  maximum pending requests exceeded").
    fn is_overloaded(&self) -> bool {
        self.has_code(&[OVERLOADED_TYPE]) || self.says(&["overloaded", "server busy"])
    }

    /// Azure's and OpenAI's content filter codes, and moderation wording
    /// ("flagged", OpenRouter's moderation 403).
    fn is_content_policy(&self) -> bool {
        self.has_code(&[
            "content_filter",
            "content_policy_violation",
            "moderation",
            "safety",
        ]) || self.says(&[
            "flagged",
            "content policy",
            "content management policy",
            "moderation",
        ])
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn map(status: u16, pairs: &[(&'static str, &str)], body: &str) -> GatewayError {
        from_response(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            body.as_bytes(),
        )
    }

    #[test]
    fn bad_request_keeps_the_upstream_message_and_param() {
        let error = map(
            400,
            &[],
            r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#,
        );
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert_eq!(error.message, "Invalid value for 'temperature'");
        assert_eq!(error.param.as_deref(), Some("temperature"));

        let error = map(422, &[], r#"{"error":"model is required"}"#);
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert_eq!(error.message, "model is required");
        assert_eq!(error.param, None);

        let error = map(400, &[], "<html>bad</html>");
        assert_eq!(
            error.message,
            "the upstream rejected the request as invalid"
        );

        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "\u{e9}".repeat(900));
        assert!(map(400, &[], &long).message.len() <= MAX_RELAYED_MESSAGE);
    }

    #[test]
    fn auth_failures_never_echo_upstream_text() {
        let error = map(
            401,
            &[],
            r#"{"error":{"message":"Incorrect API key provided: sk-abc***wxyz","code":"invalid_api_key"}}"#,
        );
        assert_eq!(error.kind, ErrorKind::UpstreamAuth);
        assert!(!error.message.contains("sk-"), "{}", error.message);
    }

    #[test]
    fn forbidden_blames_the_account_unless_it_is_moderation() {
        // OpenRouter's moderation verdict on the prompt: the request's.
        let error = map(
            403,
            &[],
            r#"{"error":{"message":"Your prompt was flagged: self-harm (acct org-42)","code":403}}"#,
        );
        assert_eq!(error.kind, ErrorKind::ContentPolicy);
        assert!(!error.message.contains("org-42"), "{}", error.message);
        assert_eq!(error.param, None);
        assert!(!error.kind.is_retryable());
        // Anthropic's permission_error, OpenAI's region refusal, an empty
        // body: the account's.
        for body in [
            r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#,
            r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","type":"request_forbidden"}}"#,
            "",
        ] {
            let error = map(403, &[], body);
            assert_eq!(error.kind, ErrorKind::UpstreamAuth, "{body}");
            assert!(error.kind.is_retryable());
            assert!(!error.message.contains("permission to use"));
        }
    }

    #[test]
    fn context_length_and_content_filters_are_told_apart() {
        let cases = [
            (
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                ErrorKind::ContextLengthExceeded,
            ),
            (
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
                ErrorKind::ContextLengthExceeded,
            ),
            (
                r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
                ErrorKind::ContextLengthExceeded,
            ),
            (
                r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#,
                ErrorKind::ContentPolicy,
            ),
            (
                r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#,
                ErrorKind::InvalidRequest,
            ),
        ];
        for (body, kind) in cases {
            let error = map(400, &[], body);
            assert_eq!(error.kind, kind, "{body}");
            assert_eq!(error.kind.http_status(), 400);
        }
        let error = map(400, &[], cases[0].0);
        assert!(
            error
                .message
                .starts_with("This model's maximum context length")
        );
        assert_eq!(error.param.as_deref(), Some("messages"));
    }

    #[test]
    fn rate_limits_carry_the_upstream_delay() {
        let error = map(429, &[("retry-after", "7")], "{}");
        assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
        assert_eq!(error.retry_after_secs, Some(7));
        assert_eq!(map(429, &[], "{}").retry_after_secs, None);
    }

    #[test]
    fn overloaded_upstreams_are_told_apart_from_other_server_errors() {
        let overloaded = [
            // Anthropic's 529, and its error type on another status.
            (
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
            ),
            (
                500,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            // Gemini's 503.
            (
                503,
                r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
            ),
            // OpenAI's 503s.
            (
                503,
                r#"{"error":{"message":"The engine is currently overloaded, please try again later.","type":"server_error","param":null,"code":null}}"#,
            ),
            (
                503,
                r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error"}}"#,
            ),
            // Ollama's full queue.
            (
                503,
                r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
            ),
        ];
        for (status, body) in overloaded {
            let error = map(status, &[], body);
            assert_eq!(error.kind, ErrorKind::Overloaded, "{status} {body}");
            assert_eq!(error.message, "the upstream is overloaded");
            assert!(error.kind.is_retryable());
        }
        // A 503 that says something else, and a 500 that mentions load,
        // are plain upstream errors.
        for (status, body) in [
            (
                503,
                r#"{"error":{"message":"Service Unavailable","type":"server_error"}}"#,
            ),
            (
                500,
                r#"{"error":{"message":"The server is overloaded","type":"server_error"}}"#,
            ),
            (503, ""),
        ] {
            assert_eq!(
                map(status, &[], body).kind,
                ErrorKind::UpstreamError,
                "{body}"
            );
        }
    }

    #[test]
    fn status_table() {
        let kind = |status| map(status, &[], "{}").kind;
        assert_eq!(kind(404), ErrorKind::ModelNotFound);
        assert_eq!(kind(408), ErrorKind::UpstreamTimeout);
        assert_eq!(kind(429), ErrorKind::UpstreamRateLimited);
        for status in [500, 502, 503, 504] {
            assert_eq!(kind(status), ErrorKind::UpstreamError, "{status}");
        }
        assert_eq!(kind(529), ErrorKind::Overloaded);
        assert_eq!(kind(402), ErrorKind::UpstreamError);
        let error = map(
            503,
            &[],
            r#"{"error":{"message":"internal host db-7 down"}}"#,
        );
        assert!(!error.message.contains("db-7"));
    }
}
