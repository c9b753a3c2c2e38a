//! The admin API under `/admin/v1`, behind the admin bearer token: keys,
//! accounts and usage, served by calling quota and analytics. JSON is
//! converted to and from the protobuf messages at this boundary.

pub mod accounts;
pub mod fields;
pub mod keys;
pub mod usage;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tollgate_core::GatewayError;

use crate::auth::require_admin;
use crate::body;
use crate::error::ApiError;
use crate::routes::fallback;
use crate::state::EdgeState;

/// The routes under `/admin/v1`; every one (unknown paths included) checks
/// the admin token first.
pub fn router(state: EdgeState) -> Router<EdgeState> {
    Router::new()
        .route("/keys", post(keys::create).get(keys::list))
        .route(
            "/keys/{id}",
            get(keys::get).patch(keys::update).delete(keys::delete),
        )
        .route("/accounts", post(accounts::create).get(accounts::list))
        .route(
            "/accounts/{id}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route("/accounts/{id}/usage", get(usage::for_account))
        .route("/usage", get(usage::query))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(from_fn_with_state(state, require_admin))
}

/// An admin request body under the admin size limit, parsed as `T`.
async fn read_json<T: DeserializeOwned>(
    state: &EdgeState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, GatewayError> {
    let bytes = body::read_limited(headers, body, state.settings.admin_max_body_bytes).await?;
    body::parse_json(&bytes)
}

/// The `{id}` of an admin object's path; a bad one is an OpenAI-style 400.
pub struct ObjectId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ObjectId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(rejection) => Err(ApiError(GatewayError::invalid("id", rejection.body_text()))),
        }
    }
}
