//! Control data: client keys, provider accounts, profiles (teams), routes
//! (model aliases), and the audit log of admin writes.
//!
//! [`ControlStore`] is what the quota service reads and writes; the records
//! are plain domain structs (no wire types). A key is stored only as the
//! SHA-256 of its plaintext plus its display prefix and last four
//! characters; an account's secret only as sealed by [`crypto`], which
//! lives here beside the records it protects.
//! Every implementation passes the conformance suite in this crate.

mod audit;
#[cfg(test)]
pub(crate) mod conformance;
pub mod crypto;
mod postgres;
#[cfg(test)]
mod postgres_tests;
mod profile;
mod route;
mod rows;
mod sqlite;

pub use audit::{AuditRecord, NewAuditEntry, redact_secrets};
pub use postgres::{PG_MIGRATOR, PG_SCHEMA, PgControlStore, PgOpenError};
pub use profile::{NewProfile, ProfilePatch, ProfileRecord};
pub use route::{
    Deployment, NewRoute, RoutePatch, RouteRecord, STRATEGIES, parse_strategy, strategy_name,
};
pub use sqlite::{MIGRATOR, SqliteControlStore};

use async_trait::async_trait;
use tollgate_core::Provider;
use tollgate_core::catalog::Rates;

/// The profile a key or account belongs to when none is given.
pub const DEFAULT_PROFILE: &str = "default";

/// A stored client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// Lower-case hex SHA-256 of the plaintext key.
    pub key_hash: String,
    /// The key's first characters (`tg-abcd`), for display.
    pub prefix: String,
    pub last4: String,
    /// The profile requests use unless they select another.
    pub profile: String,
    /// Further profiles the key may select.
    pub profiles: Vec<String>,
    /// Models the key may use; empty means all.
    pub models: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub daily_token_budget: Option<u64>,
    pub monthly_budget_micro_usd: Option<i64>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<i64>,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl KeyRecord {
    /// Whether the key has expired at `now_secs` (unix seconds).
    pub fn is_expired(&self, now_secs: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_secs)
    }
}

/// A key to insert; the store assigns its id and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub last4: String,
    pub profile: String,
    pub profiles: Vec<String>,
    pub models: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub daily_token_budget: Option<u64>,
    pub monthly_budget_micro_usd: Option<i64>,
    pub expires_at: Option<i64>,
    pub enabled: bool,
}

/// A partial update of a key: `None` leaves a field unchanged; for optional
/// fields `Some(None)` clears the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub profile: Option<String>,
    pub profiles: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<Option<u32>>,
    pub tpm: Option<Option<u32>>,
    pub daily_token_budget: Option<Option<u64>>,
    pub monthly_budget_micro_usd: Option<Option<i64>>,
    pub expires_at: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

impl KeyPatch {
    /// The record as it will be once the patch is applied (timestamps
    /// aside).
    pub fn applied_to(&self, record: &KeyRecord) -> KeyRecord {
        let mut next = record.clone();
        set(&mut next.name, &self.name);
        set(&mut next.profile, &self.profile);
        set(&mut next.profiles, &self.profiles);
        set(&mut next.models, &self.models);
        set(&mut next.rpm, &self.rpm);
        set(&mut next.tpm, &self.tpm);
        set(&mut next.daily_token_budget, &self.daily_token_budget);
        set(
            &mut next.monthly_budget_micro_usd,
            &self.monthly_budget_micro_usd,
        );
        set(&mut next.expires_at, &self.expires_at);
        set(&mut next.enabled, &self.enabled);
        next
    }
}

/// A stored provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub provider: Provider,
    pub name: String,
    pub email: Option<String>,
    /// The secret as sealed by [`crate::crypto::SecretBox::seal`].
    pub sealed_secret: Option<String>,
    /// The API base URL; `None` means the provider's default.
    pub base_url: Option<String>,
    pub profile: String,
    /// Upstream models it serves; empty means any model of its provider
    /// when asked for as `provider/model`.
    pub models: Vec<String>,
    /// Tokens it may use per UTC day; `None` means unlimited.
    pub daily_token_limit: Option<u64>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub priority: i32,
    pub weight: u32,
    /// Prompts are reserved at their worst case (one token per byte), so
    /// the daily limit holds even when an estimate is low.
    pub strict_cap: bool,
    /// Probed while cooling down or its circuit is open, and put back in
    /// service by a probe that succeeds.
    pub health_probe: bool,
    /// Its provider settings, as the canonical JSON object of
    /// [`tollgate_core::ProviderSettings::to_json`]; `None` when it has none.
    pub settings: Option<String>,
    /// Its own prices, replacing the model catalog's for every request it
    /// serves; `None`: the catalog's.
    pub prices: Option<Rates>,
    pub enabled: bool,
    /// Why it was disabled automatically (e.g. the upstream refused its
    /// credential); cleared when it is enabled again.
    pub disabled_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// An account to insert; the store assigns its id and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub provider: Provider,
    pub name: String,
    pub email: Option<String>,
    /// Already sealed; plaintext never reaches the store.
    pub sealed_secret: Option<String>,
    pub base_url: Option<String>,
    pub profile: String,
    pub models: Vec<String>,
    pub daily_token_limit: Option<u64>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub priority: i32,
    pub weight: u32,
    pub strict_cap: bool,
    pub health_probe: bool,
    /// Canonical provider settings, checked by the caller.
    pub settings: Option<String>,
    pub prices: Option<Rates>,
    pub enabled: bool,
}

impl NewAccount {
    /// An enabled account in the default profile with weight 1, priority 0,
    /// no secret, no limits and no models; strict about its cap when its
    /// provider's accounts are locked once they pass it (Rovo Dev).
    pub fn new(provider: Provider, name: impl Into<String>) -> Self {
        Self {
            provider,
            name: name.into(),
            email: None,
            sealed_secret: None,
            base_url: None,
            profile: DEFAULT_PROFILE.to_owned(),
            models: Vec::new(),
            daily_token_limit: None,
            rpm: None,
            tpm: None,
            priority: 0,
            weight: 1,
            strict_cap: provider.strict_cap_by_default(),
            health_probe: false,
            settings: None,
            prices: None,
            enabled: true,
        }
    }
}

/// A partial update of an account, like [`KeyPatch`]. Setting `enabled` to
/// `true` also clears `disabled_reason`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub sealed_secret: Option<Option<String>>,
    pub base_url: Option<Option<String>>,
    pub profile: Option<String>,
    pub models: Option<Vec<String>>,
    pub daily_token_limit: Option<Option<u64>>,
    pub rpm: Option<Option<u32>>,
    pub tpm: Option<Option<u32>>,
    pub priority: Option<i32>,
    pub weight: Option<u32>,
    pub strict_cap: Option<bool>,
    pub health_probe: Option<bool>,
    /// New settings, replacing the old whole; `Some(None)` removes them.
    pub settings: Option<Option<String>>,
    /// `Some(None)` goes back to the catalog's prices.
    pub prices: Option<Option<Rates>>,
    pub enabled: Option<bool>,
}

impl AccountPatch {
    /// The record as it will be once the patch is applied (timestamps
    /// aside), so a caller can validate the result before writing it.
    pub fn applied_to(&self, record: &AccountRecord) -> AccountRecord {
        let mut next = record.clone();
        set(&mut next.name, &self.name);
        set(&mut next.email, &self.email);
        set(&mut next.sealed_secret, &self.sealed_secret);
        set(&mut next.base_url, &self.base_url);
        set(&mut next.profile, &self.profile);
        set(&mut next.models, &self.models);
        set(&mut next.daily_token_limit, &self.daily_token_limit);
        set(&mut next.rpm, &self.rpm);
        set(&mut next.tpm, &self.tpm);
        set(&mut next.priority, &self.priority);
        set(&mut next.weight, &self.weight);
        set(&mut next.strict_cap, &self.strict_cap);
        set(&mut next.health_probe, &self.health_probe);
        set(&mut next.settings, &self.settings);
        set(&mut next.prices, &self.prices);
        set(&mut next.enabled, &self.enabled);
        if self.enabled == Some(true) {
            next.disabled_reason = None;
        }
        next
    }
}

fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *field = value.clone();
    }
}

/// What went wrong in a control store. Only `NotFound`, `DuplicateKey`,
/// `DuplicateAlias` and `DuplicateProfile` are the caller's doing; the rest
/// are internal and must not reach clients verbatim.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("a key with this hash already exists")]
    DuplicateKey,
    #[error("a route with this alias already exists in its profile")]
    DuplicateAlias,
    #[error("a profile with this name already exists")]
    DuplicateProfile,
    #[error("stored {what} has an invalid {field}")]
    Corrupt {
        what: &'static str,
        field: &'static str,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Keys, accounts, profiles, routes and the audit log, whatever holds them.
#[async_trait]
pub trait ControlStore: Send + Sync {
    async fn insert_key(&self, key: NewKey) -> Result<KeyRecord, ControlError>;
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, ControlError>;
    /// The key whose plaintext hashes to `key_hash` (lower-case hex SHA-256).
    async fn get_key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, ControlError>;
    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, ControlError>;
    /// `NotFound` when no key has this id.
    async fn update_key(&self, id: &str, patch: KeyPatch) -> Result<KeyRecord, ControlError>;
    /// `NotFound` when no key has this id.
    async fn delete_key(&self, id: &str) -> Result<(), ControlError>;

    async fn insert_account(&self, account: NewAccount) -> Result<AccountRecord, ControlError>;
    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, ControlError>;
    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, ControlError>;
    /// `NotFound` when no account has this id.
    async fn update_account(
        &self,
        id: &str,
        patch: AccountPatch,
    ) -> Result<AccountRecord, ControlError>;
    /// `NotFound` when no account has this id.
    async fn delete_account(&self, id: &str) -> Result<(), ControlError>;
    /// Disables the account and records why. `NotFound` when no account has
    /// this id.
    async fn set_account_disabled(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<AccountRecord, ControlError>;

    /// `DuplicateProfile` when a profile of this name exists.
    async fn insert_profile(&self, profile: NewProfile) -> Result<ProfileRecord, ControlError>;
    async fn get_profile(&self, name: &str) -> Result<Option<ProfileRecord>, ControlError>;
    /// Every profile, by name.
    async fn list_profiles(&self) -> Result<Vec<ProfileRecord>, ControlError>;
    /// `NotFound` when no profile has this name.
    async fn update_profile(
        &self,
        name: &str,
        patch: ProfilePatch,
    ) -> Result<ProfileRecord, ControlError>;
    /// `NotFound` when no profile has this name. Keys, accounts and routes
    /// naming it are left as they are: refusing while it is in use is the
    /// caller's policy.
    async fn delete_profile(&self, name: &str) -> Result<(), ControlError>;

    /// `DuplicateAlias` when the profile already has a route of this alias.
    async fn insert_route(&self, route: NewRoute) -> Result<RouteRecord, ControlError>;
    async fn get_route(&self, id: &str) -> Result<Option<RouteRecord>, ControlError>;
    /// Every route, oldest first.
    async fn list_routes(&self) -> Result<Vec<RouteRecord>, ControlError>;
    /// `NotFound` when no route has this id; `DuplicateAlias` when the
    /// patched alias is taken in the patched profile.
    async fn update_route(&self, id: &str, patch: RoutePatch) -> Result<RouteRecord, ControlError>;
    /// `NotFound` when no route has this id.
    async fn delete_route(&self, id: &str) -> Result<(), ControlError>;

    /// Appends an entry to the audit log, its summary stripped of secrets
    /// ([`redact_secrets`]) before it is written.
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<AuditRecord, ControlError>;
    /// The newest `limit` entries, newest first.
    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, ControlError>;
}
