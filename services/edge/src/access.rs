//! What a client key may use: its model allow-list and its profiles.
//!
//! An allow-list entry is a bare model (`gpt-4o`), which allows that model
//! from any provider (`gpt-4o`, `openai/gpt-4o`), or a qualified one
//! (`openai/gpt-4o`), which allows only that provider's model. An empty list
//! allows every model.

use axum::http::HeaderMap;
use tollgate_core::{ErrorKind, GatewayError, ModelRef};
use tollgate_proto::v1::{KeyRecord, ModelEntry};

/// Whether `entry` allows a request for `requested`.
fn entry_allows(entry: &str, requested: &ModelRef) -> bool {
    match ModelRef::parse(entry) {
        Some(allowed) => {
            allowed.model == requested.model
                && (allowed.provider.is_none() || allowed.provider == requested.provider)
        }
        None => false,
    }
}

/// Whether a key with `allow_list` may request `model`.
pub fn model_allowed(allow_list: &[String], model: &str) -> bool {
    if allow_list.is_empty() {
        return true;
    }
    ModelRef::parse(model).is_some_and(|requested| {
        allow_list
            .iter()
            .any(|entry| entry_allows(entry, &requested))
    })
}

/// Refuses a model outside the key's allow-list with 403.
pub fn check_model(key: &KeyRecord, model: &str) -> Result<(), GatewayError> {
    if model_allowed(&key.models, model) {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorKind::PermissionDenied,
            "this API key may not use the requested model",
        )
        .with_param("model"))
    }
}

/// The name under which a served model is shown to a key, if the key may
/// use it: its own id, or its provider-qualified id when only that form is
/// allowed, so every listed name can be requested as shown.
pub fn listed_name(allow_list: &[String], entry: &ModelEntry) -> Option<String> {
    if model_allowed(allow_list, &entry.id) {
        return Some(entry.id.clone());
    }
    let qualified = format!("{}/{}", entry.provider, entry.id);
    let is_bare = ModelRef::parse(&entry.id).is_some_and(|model| model.provider.is_none());
    (is_bare && model_allowed(allow_list, &qualified)).then_some(qualified)
}

pub const PROFILE_HEADER: &str = "x-profile";

/// The profile a request runs under: `X-Profile` when the key is granted it,
/// else the key's own profile.
pub fn select_profile(key: &KeyRecord, headers: &HeaderMap) -> Result<String, GatewayError> {
    let Some(value) = headers.get(PROFILE_HEADER) else {
        return Ok(key.profile.clone());
    };
    let requested = value
        .to_str()
        .map_err(|_| GatewayError::invalid(PROFILE_HEADER, "`X-Profile` must be ASCII text"))?
        .trim();
    if requested.is_empty() || requested == key.profile {
        return Ok(key.profile.clone());
    }
    if key.profiles.iter().any(|profile| profile == requested) {
        Ok(requested.to_owned())
    } else {
        Err(GatewayError::new(
            ErrorKind::PermissionDenied,
            "this API key may not use the requested profile",
        )
        .with_param(PROFILE_HEADER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|entry| (*entry).to_owned()).collect()
    }

    #[test]
    fn empty_allow_list_allows_everything() {
        assert!(model_allowed(&[], "anything"));
    }

    #[test]
    fn bare_entries_allow_any_provider_qualified_entries_only_theirs() {
        let allow = list(&["gpt-4o", "anthropic/claude-3-5-haiku"]);
        assert!(model_allowed(&allow, "gpt-4o"));
        assert!(model_allowed(&allow, "openai/gpt-4o"));
        assert!(model_allowed(&allow, "openrouter/gpt-4o"));
        assert!(model_allowed(&allow, "anthropic/claude-3-5-haiku"));
        assert!(!model_allowed(&allow, "claude-3-5-haiku"));
        assert!(!model_allowed(&allow, "openrouter/claude-3-5-haiku"));
        assert!(!model_allowed(&allow, "gpt-4o-mini"));
        assert!(!model_allowed(&allow, "GPT-4O"));
    }

    #[test]
    fn listing_shows_requestable_names() {
        let entry = ModelEntry {
            id: "gpt-4o".into(),
            provider: "openai".into(),
            ..ModelEntry::default()
        };
        assert_eq!(listed_name(&[], &entry).as_deref(), Some("gpt-4o"));
        let qualified_only = list(&["openai/gpt-4o"]);
        assert_eq!(
            listed_name(&qualified_only, &entry).as_deref(),
            Some("openai/gpt-4o")
        );
        let other = list(&["azure_openai/gpt-4o"]);
        assert_eq!(listed_name(&other, &entry), None);
    }

    fn key() -> KeyRecord {
        KeyRecord {
            profile: "default".into(),
            profiles: list(&["team-a"]),
            ..KeyRecord::default()
        }
    }

    fn profile_header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(PROFILE_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn profile_defaults_to_the_keys_own() {
        assert_eq!(
            select_profile(&key(), &HeaderMap::new()).unwrap(),
            "default"
        );
        assert_eq!(
            select_profile(&key(), &profile_header("default")).unwrap(),
            "default"
        );
        assert_eq!(
            select_profile(&key(), &profile_header(" ")).unwrap(),
            "default"
        );
    }

    #[test]
    fn granted_profiles_only() {
        assert_eq!(
            select_profile(&key(), &profile_header("team-a")).unwrap(),
            "team-a"
        );
        let denied = select_profile(&key(), &profile_header("team-b")).unwrap_err();
        assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    }

    #[test]
    fn model_denial_is_403_on_model() {
        let key = KeyRecord {
            models: list(&["mock-echo"]),
            ..KeyRecord::default()
        };
        assert!(check_model(&key, "mock-echo").is_ok());
        let denied = check_model(&key, "gpt-4o").unwrap_err();
        assert_eq!(denied.kind.http_status(), 403);
        assert_eq!(denied.param.as_deref(), Some("model"));
    }
}
