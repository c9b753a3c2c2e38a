//! Provider accounts: the body that creates one, the PATCH that changes
//! one, and an account as read. The secret is write-only: reads show only
//! its mask.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::patch::present;
use crate::prices::Prices;
use crate::schema;

/// The body of `POST /admin/v1/accounts`.
//
// Absent strings are empty, which quota reads as unset; an absent
// `profile` is the default profile. Not `Debug`: it holds a secret.
#[derive(Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    #[serde(default)]
    #[schema(schema_with = schema::provider, required = true)]
    pub provider: String,
    #[serde(default)]
    #[schema(min_length = 1, required = true)]
    pub name: String,
    /// Rovo Dev: the account's email.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The provider credential. Write-only: never returned, logged or
    /// echoed. Required by providers that authenticate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(write_only)]
    pub secret: String,
    /// Default: the provider's public API.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_url: String,
    /// Default: `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Upstream models the account serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Tokens per UTC day; Rovo Dev default 20,000,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_token_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
    /// Default: 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Default: 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Prompts are reserved at their worst case (one token per byte of the
    /// request, plus an allowance per image fetched by URL), so the
    /// account's daily limit holds even when a prompt estimate is low.
    /// Default: true for rovodev accounts, false for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_cap: Option<bool>,
    /// While the account is cooling down or its circuit is open, the
    /// gateway sends it a minimal pinned request (at most one per probe
    /// interval across replicas), and a success ends its cooldown and
    /// closes its circuit. Every probe is a real, paid call. Default: false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_probe: Option<bool>,
    /// Per-provider settings (Azure's `api_version` and `deployments`, an
    /// OpenAI-compatible `preset`, OpenRouter's attribution). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::provider_settings)]
    pub settings: Option<Map<String, Value>>,
    /// The account's own prices, replacing the model catalog's for every
    /// request it serves (a negotiated rate, or a model the catalog does
    /// not price). Default: the catalog's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prices: Option<Prices>,
}

/// Present fields change; `null` clears a limit or the secret, or empties
/// `email` and `base_url`. The provider cannot change.
//
// Each field is absent (`None`), `null` (`Some(None)`) or a value; the
// fields whose schema says they are not nullable refuse `null` where the
// edge converts the patch. Not `Debug`: it may hold a secret.
#[derive(Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String)]
    pub name: Option<Option<String>>,
    /// `null` empties it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// The provider credential. Write-only: never returned, logged or
    /// echoed. `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, write_only)]
    pub secret: Option<Option<String>>,
    /// `null`: back to the provider's default.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String)]
    pub profile: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>)]
    pub models: Option<Option<Vec<String>>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u64>)]
    pub daily_token_limit: Option<Option<u64>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>)]
    pub rpm: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>)]
    pub tpm: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = i32)]
    pub priority: Option<Option<i32>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = u32)]
    pub weight: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub enabled: Option<Option<bool>>,
    /// Prompts are reserved at their worst case (one token per byte of the
    /// request, plus an allowance per image fetched by URL), so the
    /// account's daily limit holds even when a prompt estimate is low.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub strict_cap: Option<Option<bool>>,
    /// While the account is cooling down or its circuit is open, the
    /// gateway sends it a minimal pinned request (at most one per probe
    /// interval across replicas), and a success ends its cooldown and
    /// closes its circuit. Every probe is a real, paid call.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub health_probe: Option<Option<bool>>,
    /// Per-provider settings, replacing the account's whole; `null` or `{}`
    /// removes them.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::provider_settings_or_null)]
    pub settings: Option<Option<Map<String, Value>>>,
    /// The account's own prices; `null` goes back to the model catalog's.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Prices>)]
    pub prices: Option<Option<Prices>>,
}

/// A provider account as read: the secret only as its mask.
//
// Every field is always written, `null` when it has no value.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    #[schema(schema_with = schema::provider)]
    pub provider: String,
    pub name: String,
    /// The account's email (Rovo Dev); empty when none.
    pub email: String,
    /// The secret's mask, e.g. `sk-…abcd`; the secret itself is never read
    /// back.
    #[schema(read_only)]
    pub secret_mask: String,
    /// Empty: the provider's default.
    pub base_url: String,
    pub profile: String,
    /// Upstream models the account serves.
    pub models: Vec<String>,
    #[schema(required = true)]
    pub daily_token_limit: Option<u64>,
    #[schema(required = true)]
    pub rpm: Option<u32>,
    #[schema(required = true)]
    pub tpm: Option<u32>,
    pub priority: i32,
    pub weight: u32,
    /// Prompts are reserved at their worst case (one token per byte of the
    /// request, plus an allowance per image fetched by URL), so the
    /// account's daily limit holds even when a prompt estimate is low.
    pub strict_cap: bool,
    /// While the account is cooling down or its circuit is open, the
    /// gateway sends it a minimal pinned request (at most one per probe
    /// interval across replicas), and a success ends its cooldown and
    /// closes its circuit. Every probe is a real, paid call.
    pub health_probe: bool,
    /// Per-provider settings; `{}` when it has none.
    #[schema(schema_with = schema::provider_settings)]
    pub settings: Map<String, Value>,
    /// The account's own prices; `null`: the model catalog's.
    #[schema(required = true)]
    pub prices: Option<Prices>,
    pub enabled: bool,
    /// Why the gateway disabled the account, when it did.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    #[schema(schema_with = schema::account_state)]
    pub state: String,
    #[schema(required = true, format = DateTime)]
    pub cooling_down_until: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub circuit_open_until: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Tokens counted on the account this UTC day.
    pub tokens_used_today: u64,
    /// Tokens held by leases not settled yet.
    pub tokens_reserved: u64,
    /// When the account last served a request (its settle counted it a
    /// success).
    #[schema(required = true, format = DateTime)]
    pub last_used_at: Option<String>,
    /// When an upstream call on the account last failed.
    #[schema(required = true, format = DateTime)]
    pub last_error_at: Option<String>,
    #[schema(required = true, schema_with = schema::error_class)]
    pub last_error: Option<String>,
    /// Requests the account served this UTC day.
    pub successes_today: u64,
    /// Upstream failures recorded on the account this UTC day.
    pub errors_today: u64,
    /// Exponentially weighted moving average of the upstream latency of its
    /// served calls (to the whole answer, or to a stream's first event),
    /// each call weighing 0.2; `null` before the first. The
    /// `lowest_latency` strategy reads it.
    #[schema(required = true, minimum = 0)]
    pub latency_ewma_ms: Option<f64>,
}
