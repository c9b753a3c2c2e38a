//! The request id: made fresh by the edge for every request, handed to
//! handlers and set on every response (errors and unknown routes included).
//!
//! A client's own `x-request-id` is never taken as ours: the id is the
//! primary key of the usage table, so a reused id would make the usage of a
//! later request count as a duplicate of an earlier one.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tollgate_core::ids;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Middleware: assigns a new id, runs the request in a span carrying it,
/// and sets `x-request-id` on the response (replacing any the client sent).
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = ids::request_id();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::middleware::from_fn;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A route answering with the id it was handed.
    fn echo() -> Router {
        Router::new()
            .route(
                "/",
                get(|axum::Extension(RequestId(id)): axum::Extension<RequestId>| async move { id }),
            )
            .layer(from_fn(assign))
    }

    async fn call(client_id: Option<&str>) -> (String, String) {
        let mut request = Request::builder().uri("/");
        if let Some(id) = client_id {
            request = request.header(REQUEST_ID, id);
        }
        let response = echo()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let header = response.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (header, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn handlers_and_responses_get_the_same_fresh_id() {
        let (header, handed) = call(None).await;
        assert!(header.starts_with("req_"), "{header}");
        assert_eq!(header, handed);
        let (again, _) = call(None).await;
        assert_ne!(header, again);
    }

    #[tokio::test]
    async fn a_client_sent_id_is_never_ours() {
        let (header, handed) = call(Some("client-42")).await;
        assert!(header.starts_with("req_"), "{header}");
        assert_eq!(header, handed);
        // Sending back an id we issued does not make us reuse it either.
        let (again, handed) = call(Some(&header)).await;
        assert_ne!(again, header);
        assert_eq!(again, handed);
    }
}
