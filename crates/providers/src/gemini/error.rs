//! Gemini's errors: Google's envelope `{"error": {"code", "message",
//! "status", "details": [...]}}`, read like every provider's
//! ([`crate::errors`]) with two Google rules first: an invalid API key is a
//! 400 whose `ErrorInfo` reason is `API_KEY_INVALID` (the account's fault,
//! not the request's), and a 429 says its delay in a `RetryInfo` detail
//! (`"retryDelay": "37s"`) rather than in `Retry-After`. A 503
//! `UNAVAILABLE` saying "The model is overloaded" is the overloaded class.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError};

use crate::errors;

#[derive(Debug, Default, Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Option<GoogleError>,
}

#[derive(Debug, Default, Deserialize)]
struct GoogleError {
    #[serde(default)]
    details: Vec<Value>,
}

pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> GatewayError {
    let details = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|envelope| envelope.error)
        .map(|error| error.details)
        .unwrap_or_default();
    let reason_is = |wanted: &str| details.iter().any(|detail| detail["reason"] == wanted);
    if reason_is("API_KEY_INVALID") || reason_is("API_KEY_EXPIRED") {
        return GatewayError::new(
            ErrorKind::UpstreamAuth,
            "the upstream refused the account's credential",
        );
    }
    let error = errors::from_response(status, headers, body);
    if error.kind == ErrorKind::UpstreamRateLimited && error.retry_after_secs.is_none() {
        let delay = details
            .iter()
            .filter_map(|detail| detail["retryDelay"].as_str())
            .find_map(seconds_of);
        if let Some(secs) = delay {
            return error.with_retry_after(secs);
        }
    }
    error
}

/// A protobuf JSON duration (`"37s"`, `"0.5s"`) in whole seconds, rounded
/// up.
fn seconds_of(duration: &str) -> Option<u64> {
    let secs: f64 = duration.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| secs.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(status: u16, body: Value) -> GatewayError {
        from_response(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.to_string().as_bytes(),
        )
    }

    #[test]
    fn an_invalid_key_blames_the_account() {
        let error = read(
            400,
            json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}),
        );
        assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    }

    #[test]
    fn a_rate_limit_takes_its_delay_from_retry_info() {
        let error = read(
            429,
            json!({"error": {"code": 429, "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "36.2s"}]}}),
        );
        assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
        assert_eq!(error.retry_after_secs, Some(37));
    }

    #[test]
    fn other_errors_map_like_every_provider() {
        let error = read(
            400,
            json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}),
        );
        assert_eq!(error.kind, ErrorKind::ContextLengthExceeded);
        assert_eq!(
            read(
                403,
                json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}})
            )
            .kind,
            ErrorKind::UpstreamAuth
        );
        assert_eq!(read(503, json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}})).kind,
            ErrorKind::Overloaded);
        assert_eq!(read(500, json!({"error": {"code": 500, "status": "INTERNAL", "message": "Internal error encountered."}})).kind,
            ErrorKind::UpstreamError);
    }
}
