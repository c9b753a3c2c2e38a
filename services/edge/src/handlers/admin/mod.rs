//! The admin API under `/admin/v1`, behind the admin bearer token: keys,
//! accounts (and their test call), routes, profiles and their stats, and usage, served
//! by calling quota, the router and analytics. JSON is converted to and from
//! the protobuf messages at this boundary. Its OpenAPI document is served
//! beside it, at `/admin/openapi.json` (see [`openapi`]).

pub mod account_test;
pub mod accounts;
pub mod audit;
pub mod fields;
pub mod keys;
pub mod openapi;
pub mod prices;
pub mod profiles;
pub mod routes;
pub mod stored_profiles;
pub mod sync;
pub mod usage;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde::de::DeserializeOwned;
use tollgate_core::GatewayError;
use tollgate_proto::v1::Deleted;

use crate::auth::require_admin;
use crate::body;
use crate::error::{ApiError, json_response};
use crate::handlers::fallback;
use crate::state::EdgeState;

/// The routes under `/admin/v1`; every one (unknown paths included) checks
/// the admin token first.
pub fn router(state: EdgeState) -> Router<EdgeState> {
    route_table()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(from_fn_with_state(state, require_admin))
}

/// Every route under `/admin/v1`, by path. The router is built from this
/// table, and the OpenAPI document is tested against it, so a route cannot
/// be added without being described.
fn route_table() -> Vec<(&'static str, MethodRouter<EdgeState>)> {
    vec![
        ("/keys", post(keys::create).get(keys::list)),
        (
            "/keys/{id}",
            get(keys::get).patch(keys::update).delete(keys::delete),
        ),
        ("/accounts", post(accounts::create).get(accounts::list)),
        (
            "/accounts/{id}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        ),
        ("/routes", post(routes::create).get(routes::list)),
        (
            "/routes/{id}",
            get(routes::get)
                .patch(routes::update)
                .delete(routes::delete),
        ),
        ("/accounts/{id}/usage", get(usage::for_account)),
        ("/accounts/{id}/test", post(account_test::test)),
        ("/accounts/{id}/reset", post(accounts::reset)),
        (
            "/profiles",
            post(stored_profiles::create).get(stored_profiles::list),
        ),
        // The same parameter name as the stats path below: the router
        // refuses two names for one path segment.
        (
            "/profiles/{profile}",
            get(stored_profiles::get)
                .patch(stored_profiles::update)
                .delete(stored_profiles::delete),
        ),
        ("/profiles/{profile}/stats", get(profiles::stats)),
        ("/accounts/sync", post(sync::accounts)),
        ("/usage", get(usage::query)),
        ("/audit", get(audit::list)),
        ("/master-key/reseal", post(audit::reseal)),
    ]
}

/// The answer to a delete: `{"<field>": <id>, "deleted": true}`, naming the
/// id quota reports (the one asked for when it reports none).
fn deleted_response(field: &str, requested: String, deleted: &Deleted) -> Response {
    let id = if deleted.id.is_empty() {
        requested
    } else {
        deleted.id.clone()
    };
    json_response(
        StatusCode::OK,
        &serde_json::json!({ field: id, "deleted": true }),
    )
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

/// An optional admin request body: `None` when it is empty (or only
/// white space), else parsed as `T`.
async fn read_optional_json<T: DeserializeOwned>(
    state: &EdgeState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<T>, GatewayError> {
    let bytes = body::read_limited(headers, body, state.settings.admin_max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    body::parse_json(&bytes).map(Some)
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

/// Who makes an admin write, for the audit log: the holder of the admin
/// token, with the name the client gives in `x-tollgate-actor` (the CLI
/// sends `cli:<user>`), e.g. `admin (cli:alice)`.
pub struct Actor(String);

/// The header an admin client names itself in.
const ACTOR_HEADER: &str = "x-tollgate-actor";

/// The longest client-given name kept.
const MAX_ACTOR_NAME: usize = 64;

impl Actor {
    fn from_headers(headers: &HeaderMap) -> Self {
        let named: String = headers
            .get(ACTOR_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(MAX_ACTOR_NAME)
            .collect();
        if named.is_empty() {
            Self("admin".to_owned())
        } else {
            Self(format!("admin ({named})"))
        }
    }

    /// A quota request carrying this actor.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = self.0.parse() {
            request
                .metadata_mut()
                .insert(tollgate_proto::ACTOR_METADATA, value);
        }
        request
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod actor_tests {
    use super::*;

    #[test]
    fn the_actor_is_the_admin_with_the_name_the_client_gives() {
        let mut headers = HeaderMap::new();
        assert_eq!(Actor::from_headers(&headers).0, "admin");
        headers.insert(ACTOR_HEADER, "cli: alice".parse().unwrap());
        assert_eq!(Actor::from_headers(&headers).0, "admin (cli:alice)");
        let request = Actor::from_headers(&headers).request(());
        assert_eq!(
            request
                .metadata()
                .get(tollgate_proto::ACTOR_METADATA)
                .unwrap(),
            "admin (cli:alice)"
        );
    }
}
