//! `GET /admin/openapi.json`: the OpenAPI 3.1 document of the admin API.
//! It is written by hand in `openapi.json` beside this file and compiled
//! in, so what is served is what was reviewed. Its tests
//! (`openapi/tests.rs`) hold it to the code: every route of the admin
//! router with the methods it serves and nothing more, every documented
//! request field accepted (and `null` where the document says a PATCH may
//! clear it), and the read shapes the handlers write.
//!
//! It is served without the admin token, like `/metrics`: it describes the
//! API and holds no secret, and tools read it before they hold a token.
//! Every `/admin/v1` route still requires the token.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Where the document is served on the admin listener.
pub const PATH: &str = "/admin/openapi.json";

/// The document, as served.
const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
