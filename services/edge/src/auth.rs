//! Who is calling: the client key from `Authorization: Bearer` or
//! `x-api-key`, resolved through quota behind a short-lived cache; and the
//! admin token check of the admin API.
//!
//! Only the key's SHA-256 leaves this module. A key that has the wrong shape
//! is refused without a lookup, and one quota refused a moment ago without
//! another; disabled and expired keys are refused at every use, cached or
//! not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use tollgate_core::apikey::{KeyHash, looks_like_key};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::{KeyRecord, ResolveKeyRequest};

use crate::error::ApiError;
use crate::state::EdgeState;

fn unauthenticated(message: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidApiKey, message)
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched
/// case-insensitively), if that is what `headers` carry.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The hash of the client key presented in `headers`: the bearer token, or
/// else `x-api-key`. Refuses a missing or malformed key without any lookup.
pub fn credential(headers: &HeaderMap) -> Result<KeyHash, GatewayError> {
    let presented = match bearer_token(headers) {
        Some(token) => Some(token),
        None => headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|key| !key.is_empty()),
    };
    let Some(presented) = presented else {
        return Err(unauthenticated(
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        ));
    };
    if !looks_like_key(presented) {
        return Err(unauthenticated("invalid API key"));
    }
    Ok(KeyHash::of(presented))
}

/// Refuses a key that is disabled or past its expiry (`now_secs`: unix
/// seconds).
pub fn check_usable(record: &KeyRecord, now_secs: i64) -> Result<(), GatewayError> {
    if !record.enabled {
        return Err(unauthenticated("API key is disabled"));
    }
    if record.expires_at.is_some_and(|expiry| expiry <= now_secs) {
        return Err(unauthenticated("API key has expired"));
    }
    Ok(())
}

/// The key record behind `hash`, from the cache or from quota, refused if
/// unknown, disabled or expired. A key quota refuses is remembered for a
/// moment, so repeating it costs no lookup.
pub async fn resolve(state: &EdgeState, hash: &KeyHash) -> Result<Arc<KeyRecord>, GatewayError> {
    let record = match state.keys.get(hash) {
        Some(record) => record,
        None if state.keys.is_unknown(hash) => return Err(unauthenticated("invalid API key")),
        None => {
            let generation = state.keys.generation();
            let request = tonic::Request::new(ResolveKeyRequest {
                key_hash: hash.as_str().to_owned(),
            });
            let record = match state.quota.resolve_key(request).await {
                Ok(response) => Arc::new(response.into_inner()),
                Err(status) => {
                    let error = resolve_failure(&status);
                    if error.kind == ErrorKind::InvalidApiKey {
                        state.keys.insert_unknown(hash, generation);
                    }
                    return Err(error);
                }
            };
            state.keys.insert(hash, Arc::clone(&record), generation);
            record
        }
    };
    check_usable(&record, tollgate_core::clock::now_ms().div_euclid(1000))?;
    Ok(record)
}

/// An unknown key is a 401 whatever words quota used; other failures (quota
/// down) pass through.
fn resolve_failure(status: &tonic::Status) -> GatewayError {
    let error = GatewayError::from_status(status);
    match error.kind {
        ErrorKind::NotFound | ErrorKind::InvalidApiKey => unauthenticated("invalid API key"),
        _ => error,
    }
}

/// Middleware of the admin API: requires `Authorization: Bearer <admin
/// token>`. Both sides are hashed and the hashes compared in constant time,
/// so neither the token's bytes nor its length leak through timing.
pub async fn require_admin(
    State(state): State<EdgeState>,
    request: Request,
    next: Next,
) -> Response {
    let expected = state.settings.admin_token.expose_secret();
    let allowed = !expected.is_empty()
        && bearer_token(request.headers())
            .is_some_and(|token| KeyHash::of(token).matches(&KeyHash::of(expected)));
    if allowed {
        next.run(request).await
    } else {
        ApiError(unauthenticated("missing or invalid admin token")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &str = "tg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        let map = headers(&[("authorization", &format!("bearer  {KEY} "))]);
        assert_eq!(bearer_token(&map), Some(KEY));
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(bearer_token(&headers(&[("authorization", "Bearer")])), None);
    }

    #[test]
    fn credential_from_bearer_or_x_api_key() {
        let expected = KeyHash::of(KEY);
        let bearer = headers(&[("authorization", &format!("Bearer {KEY}"))]);
        assert_eq!(credential(&bearer).unwrap(), expected);
        let api_key = headers(&[("x-api-key", KEY)]);
        assert_eq!(credential(&api_key).unwrap(), expected);
    }

    #[test]
    fn credential_refuses_missing_and_malformed_keys() {
        let missing = credential(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.kind, ErrorKind::InvalidApiKey);
        assert!(missing.message.contains("missing"));
        let malformed = credential(&headers(&[("x-api-key", "sk-not-ours")])).unwrap_err();
        assert_eq!(malformed.kind, ErrorKind::InvalidApiKey);
        let basic = credential(&headers(&[("authorization", "Basic abc")])).unwrap_err();
        assert_eq!(basic.kind, ErrorKind::InvalidApiKey);
    }

    #[test]
    fn disabled_and_expired_keys_are_unusable() {
        let mut key = KeyRecord {
            enabled: true,
            expires_at: Some(100),
            ..KeyRecord::default()
        };
        assert!(check_usable(&key, 99).is_ok());
        assert_eq!(
            check_usable(&key, 100).unwrap_err().kind,
            ErrorKind::InvalidApiKey
        );
        key.expires_at = None;
        key.enabled = false;
        assert_eq!(
            check_usable(&key, 0).unwrap_err().kind,
            ErrorKind::InvalidApiKey
        );
    }

    #[test]
    fn unknown_key_from_quota_is_401() {
        let not_found = tonic::Status::not_found("no such key");
        assert_eq!(resolve_failure(&not_found).kind, ErrorKind::InvalidApiKey);
        let down = tonic::Status::unavailable("refused");
        assert_eq!(resolve_failure(&down).kind, ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_refused_key_is_refused_again_without_a_lookup() {
        let state = crate::state::testing::services_down();
        let hash = KeyHash::of(KEY);
        // Quota is down: 503, and nothing is remembered.
        let error = resolve(&state, &hash).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(!state.keys.is_unknown(&hash));
        // Quota is still down, so only the memory of a refusal can say 401.
        state.keys.insert_unknown(&hash, state.keys.generation());
        let error = resolve(&state, &hash).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidApiKey);
        assert_eq!(error.message, "invalid API key");
    }
}
