//! `GET /admin/openapi.json`: the OpenAPI 3.1 document of the admin API.
//!
//! The schemas of the admin objects defined once in `tollgate-admin-api`
//! are derived from those Rust types (`utoipa`), so they cannot drift from
//! what the handlers read and write. The rest (paths and operations, the
//! error shape, the security scheme, and the smaller shapes: lists,
//! reports, stats, audit) is written by hand in `openapi.json`
//! beside this file. The two are joined once, at first use. Its tests (`openapi/tests.rs`) hold the
//! joined document to the code: every route of the admin router with the
//! methods it serves and nothing more, every documented request field
//! accepted (and `null` where the document says a PATCH may clear it), and
//! the read shapes the handlers write.
//!
//! It is served without the admin token, like `/metrics`: it describes the
//! API and holds no secret, and tools read it before they hold a token.
//! Every `/admin/v1` route still requires the token.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tollgate_admin_api::{
    Account, AccountPatch, CreatedKey, Deployment, Key, KeyPatch, NewAccount, NewKey, NewProfile,
    NewRoute, Profile, ProfilePatch, Route, RoutePatch, UsageReport, UsageRow,
};
use utoipa::OpenApi;

/// Where the document is served on the admin listener.
pub const PATH: &str = "/admin/openapi.json";

/// The part of the document written by hand.
const WRITTEN: &str = include_str!("openapi.json");

/// The schemas derived from the admin objects' types.
#[derive(OpenApi)]
#[openapi(components(schemas(
    NewKey,
    KeyPatch,
    Key,
    CreatedKey,
    NewAccount,
    AccountPatch,
    Account,
    Deployment,
    NewRoute,
    RoutePatch,
    Route,
    NewProfile,
    ProfilePatch,
    Profile,
    UsageReport,
    UsageRow,
)))]
struct Derived;

/// The document, as served.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document_json().to_string());

/// The written document with the derived schemas added to its
/// `components.schemas`. (The written part is compiled in and its tests
/// parse it, so it is JSON.)
fn document_json() -> Value {
    let mut document: Value = serde_json::from_str(WRITTEN).unwrap_or_default();
    let derived = serde_json::to_value(Derived::openapi()).unwrap_or_default();
    if let (Some(schemas), Value::Object(derived)) = (
        document
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut),
        &derived["components"]["schemas"],
    ) {
        schemas.extend(derived.clone());
    }
    document
}

pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
