//! Client keys: the body that creates one, the PATCH that changes one, a
//! key as read, and the answer to a create, the one time the plaintext key
//! is shown.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::patch::present;
use crate::schema;

/// Every field is optional.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Default: empty.
    #[serde(default)]
    pub name: String,
    /// Default: `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, min_length = 1)]
    pub profile: Option<String>,
    /// Extra profiles the key may select.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Models the key may call; empty or absent: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Requests per minute; absent or `null`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute; absent or `null`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
    /// Tokens per UTC day; absent or `null`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_token_budget: Option<u64>,
    /// US dollars per UTC month; absent or `null`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub monthly_budget_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::timestamp)]
    pub expires_at: Option<Value>,
    /// Default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Present fields change; `null` clears a limit or the expiry. Other fields
/// cannot be `null`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String)]
    pub name: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String, min_length = 1)]
    pub profile: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>)]
    pub profiles: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>)]
    pub models: Option<Option<Vec<String>>>,
    /// Requests per minute; absent or `null`: unlimited.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>)]
    pub rpm: Option<Option<u32>>,
    /// Tokens per minute; absent or `null`: unlimited.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>)]
    pub tpm: Option<Option<u32>>,
    /// Tokens per UTC day; absent or `null`: unlimited.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>)]
    pub daily_token_budget: Option<Option<u64>>,
    /// US dollars per UTC month; absent or `null`: unlimited.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub monthly_budget_usd: Option<Option<f64>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::timestamp_or_null)]
    pub expires_at: Option<Option<Value>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub enabled: Option<Option<bool>>,
}

/// A client key as read: never the key itself.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct Key {
    pub id: String,
    pub name: String,
    /// The profile requests use unless they select another.
    pub profile: String,
    /// Extra profiles the key may select.
    pub profiles: Vec<String>,
    /// Models the key may call; empty: all.
    pub models: Vec<String>,
    #[schema(required = true)]
    pub rpm: Option<u32>,
    #[schema(required = true)]
    pub tpm: Option<u32>,
    #[schema(required = true)]
    pub daily_token_budget: Option<u64>,
    #[schema(required = true, minimum = 0)]
    pub monthly_budget_usd: Option<f64>,
    #[schema(required = true, format = DateTime)]
    pub expires_at: Option<String>,
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The start of the key, to recognise it; never the whole key.
    pub prefix: String,
    /// The key's last four characters.
    pub last4: String,
}

/// A new key, with its plaintext: shown this once and never again.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: Key,
    /// The plaintext key.
    #[schema(pattern = "^tg-[A-Za-z0-9_-]{43}$")]
    pub key: String,
}
