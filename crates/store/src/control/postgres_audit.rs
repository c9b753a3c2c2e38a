//! The audit log of admin writes in the Postgres control schema: who did
//! what to which object, when, with a JSON summary of the object.
//!
//! A summary never holds a secret: [`PgControlStore::record_audit`] removes
//! members whose names denote credentials and masks any string that looks
//! like a client key or a sealed secret before writing it.

use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tollgate_core::{apikey, clock};

use super::{AccountRecord, ControlError, KeyRecord, PgControlStore};
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

fn audit_from_row(row: &PgRow) -> Result<AuditRecord, ControlError> {
    let summary: String = row.try_get("summary")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object_kind: row.try_get("object_kind")?,
        object_id: row.try_get("object_id")?,
        summary: serde_json::from_str(&summary).map_err(|_| ControlError::Corrupt {
            what: "audit entry",
            field: "summary",
        })?,
    })
}

impl PgControlStore {
    /// Appends an entry to the audit log, its summary stripped of secrets
    /// ([`redact_secrets`]).
    pub async fn record_audit(&self, entry: NewAuditEntry) -> Result<AuditRecord, ControlError> {
        let summary = redact_secrets(entry.summary).to_string();
        let row = sqlx::query(
            "INSERT INTO control.audit_log (at, actor, action, object_kind, object_id, summary) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb) \
             RETURNING id, at, actor, action, object_kind, object_id, summary::text AS summary",
        )
        .bind(clock::now_ms().div_euclid(1000))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.object_kind)
        .bind(&entry.object_id)
        .bind(summary)
        .fetch_one(self.pool())
        .await?;
        audit_from_row(&row)
    }

    /// The newest `limit` entries, newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, ControlError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, object_kind, object_id, summary::text AS summary \
             FROM control.audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}
