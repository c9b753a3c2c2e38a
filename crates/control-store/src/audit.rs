//! The audit log of admin writes: who did what to which object, when, with
//! a JSON summary of the object.
//!
//! A summary never holds a secret: [`ControlStore::record_audit`] removes
//! members whose names denote credentials and masks any string that looks
//! like a client key or a sealed secret ([`redact_secrets`]) before writing.
//!
//! [`ControlStore::record_audit`]: super::ControlStore::record_audit

use serde_json::{Map, Value, json};
use tollgate_core::apikey;

use super::route::strategy_name;
use super::{AccountRecord, KeyRecord, ProfileRecord, RouteRecord};
use crate::crypto;

/// What replaces a value that looked like a secret.
const REDACTED: &str = "[redacted]";

/// An admin write to record; the store assigns its id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// Who made the change (an admin identity, `system`, …).
    pub actor: String,
    /// What was done (`create`, `update`, `delete`, `disable`, …).
    pub action: String,
    /// The kind of object changed (`key`, `account`, …).
    pub object_kind: String,
    pub object_id: String,
    /// A JSON summary of the change; secrets are removed before writing.
    pub summary: Value,
}

impl NewAuditEntry {
    /// An entry about a key, summarised by its non-secret fields.
    pub fn for_key(actor: &str, action: &str, key: &KeyRecord) -> Self {
        Self {
            actor: actor.to_owned(),
            action: action.to_owned(),
            object_kind: "key".to_owned(),
            object_id: key.id.clone(),
            summary: json!({
                "name": key.name,
                "prefix": key.prefix,
                "last4": key.last4,
                "profile": key.profile,
                "profiles": key.profiles,
                "models": key.models,
                "enabled": key.enabled,
            }),
        }
    }

    /// An entry about an account, summarised by its non-secret fields (the
    /// secret only as whether there is one).
    pub fn for_account(actor: &str, action: &str, account: &AccountRecord) -> Self {
        Self {
            actor: actor.to_owned(),
            action: action.to_owned(),
            object_kind: "account".to_owned(),
            object_id: account.id.clone(),
            summary: json!({
                "provider": account.provider.as_str(),
                "name": account.name,
                "profile": account.profile,
                "models": account.models,
                "daily_token_limit": account.daily_token_limit,
                "enabled": account.enabled,
                "has_secret": account.sealed_secret.is_some(),
                "settings": account
                    .settings
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok()),
            }),
        }
    }

    /// An entry about a profile (a profile holds no secret).
    pub fn for_profile(actor: &str, action: &str, profile: &ProfileRecord) -> Self {
        Self {
            actor: actor.to_owned(),
            action: action.to_owned(),
            object_kind: "profile".to_owned(),
            object_id: profile.name.clone(),
            summary: json!({
                "name": profile.name,
                "description": profile.description,
                "strategy": profile.strategy.map(strategy_name),
            }),
        }
    }

    /// An entry about a route (a route holds no secret).
    pub fn for_route(actor: &str, action: &str, route: &RouteRecord) -> Self {
        let deployments: Vec<Value> = route
            .deployments
            .iter()
            .map(|deployment| {
                json!({
                    "provider": deployment.provider.as_str(),
                    "model": deployment.model,
                    "weight": deployment.weight,
                    "priority": deployment.priority,
                })
            })
            .collect();
        Self {
            actor: actor.to_owned(),
            action: action.to_owned(),
            object_kind: "route".to_owned(),
            object_id: route.id.clone(),
            summary: json!({
                "alias": route.alias,
                "profile": route.profile,
                "deployments": deployments,
                "strategy": route.strategy.map(strategy_name),
                "fallbacks": route.fallbacks,
                "context_window_fallbacks": route.context_window_fallbacks,
                "content_policy_fallbacks": route.content_policy_fallbacks,
                "first_byte_timeout_ms": route.first_byte_timeout_ms,
                "deadline_ms": route.deadline_ms,
                "enabled": route.enabled,
            }),
        }
    }
}

/// A recorded admin write.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Increases with every entry.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub summary: Value,
}

/// Whether a JSON member of this name holds a credential.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "key"
        || name == "key_hash"
        || name == "authorization"
        || name.contains("secret")
        || name.contains("password")
        || name.contains("api_key")
        || name.contains("apikey")
}

/// Whether a string value looks like a client key or a sealed secret.
fn is_secret_value(text: &str) -> bool {
    apikey::looks_like_key(text) || crypto::sealed_key_id(text).is_some()
}

/// `summary` without members whose names denote credentials (unless the
/// value is a flag or null, as in `has_secret`), with secret-looking strings
/// masked.
pub fn redact_secrets(summary: Value) -> Value {
    match summary {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(name, value)| {
                    matches!(value, Value::Bool(_) | Value::Null) || !is_secret_name(name)
                })
                .map(|(name, value)| (name, redact_secrets(value)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_secrets).collect()),
        Value::String(text) if is_secret_value(&text) => Value::String(REDACTED.to_owned()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_masks_keys_and_keeps_limits() {
        let key = tollgate_core::apikey::PlaintextKey::generate().unwrap();
        let summary = redact_secrets(json!({
            "key": "x",
            "label": key.expose(),
            "tpm": 1,
            "key_hash": "ab",
            "has_secret": false,
            "client_secret": {"value": "x"},
        }));
        assert_eq!(
            summary,
            json!({"label": "[redacted]", "tpm": 1, "has_secret": false})
        );
    }
}
