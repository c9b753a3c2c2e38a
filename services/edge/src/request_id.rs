//! The request id: taken from a client's `x-request-id` when it is safe to
//! reuse, made fresh otherwise, handed to handlers and echoed on every
//! response (errors and unknown routes included).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tollgate_core::ids;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The client's id if acceptable, else a new one.
pub fn choose(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| ids::is_acceptable_request_id(id))
        .map_or_else(ids::request_id, str::to_owned)
}

/// Middleware: assigns the id, runs the request in a span carrying it, and
/// sets `x-request-id` on the response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = choose(request.headers());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(id) {
            headers.insert(REQUEST_ID, value);
        }
        headers
    }

    #[test]
    fn reuses_a_safe_client_id() {
        assert_eq!(choose(&with_id("trace-42.a:b_c")), "trace-42.a:b_c");
    }

    #[test]
    fn replaces_missing_or_unsafe_ids() {
        assert!(choose(&HeaderMap::new()).starts_with("req_"));
        assert!(choose(&with_id("has space")).starts_with("req_"));
        assert!(choose(&with_id(&"x".repeat(129))).starts_with("req_"));
        assert!(choose(&with_id("")).starts_with("req_"));
    }
}
