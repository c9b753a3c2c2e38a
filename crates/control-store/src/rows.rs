//! Converting between rows of the control tables (SQLite or Postgres) and
//! records: lists as JSON text, unsigned limits in signed columns,
//! out-of-range values reported as corrupt instead of wrapped.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use tollgate_core::catalog::Rates;
use tollgate_core::{Provider, Strategy};

use super::route::{parse_strategy, strategy_name};
use super::{
    AccountRecord, AuditRecord, ControlError, Deployment, KeyRecord, ProfileRecord, RouteRecord,
};

/// An account's own prices as its `prices` column holds them (JSON), or
/// NULL for the catalog's.
pub(super) fn json_prices(prices: Option<&Rates>) -> Option<String> {
    prices.and_then(|rates| serde_json::to_string(rates).ok())
}

pub(super) fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// A deployment as stored in a route's JSON `deployments` column.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredDeployment {
    provider: String,
    model: String,
    weight: u32,
    priority: i32,
}

pub(super) fn json_deployments(deployments: &[Deployment]) -> String {
    let stored: Vec<StoredDeployment> = deployments
        .iter()
        .map(|deployment| StoredDeployment {
            provider: deployment.provider.as_str().to_owned(),
            model: deployment.model.clone(),
            weight: deployment.weight,
            priority: deployment.priority,
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn db_strategy(strategy: Option<Strategy>) -> Option<&'static str> {
    strategy.map(strategy_name)
}

pub(super) fn db_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The typed column reads a backend's rows offer; booleans are the one
/// type the backends store differently (SQLite integer, Postgres boolean).
pub(super) trait StoredRow {
    fn text(&self, field: &'static str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, field: &'static str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, field: &'static str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, field: &'static str) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, field: &'static str) -> Result<bool, sqlx::Error>;
}

macro_rules! stored_row {
    ($row:ty, |$this:ident, $field:ident| $flag:expr) => {
        impl StoredRow for $row {
            fn text(&self, field: &'static str) -> Result<String, sqlx::Error> {
                self.try_get(field)
            }

            fn opt_text(&self, field: &'static str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(field)
            }

            fn int(&self, field: &'static str) -> Result<i64, sqlx::Error> {
                self.try_get(field)
            }

            fn opt_int(&self, field: &'static str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(field)
            }

            fn flag(&self, $field: &'static str) -> Result<bool, sqlx::Error> {
                let $this = self;
                $flag
            }
        }
    };
}

stored_row!(SqliteRow, |row, field| Ok(
    row.try_get::<i64, _>(field)? != 0
));
stored_row!(PgRow, |row, field| row.try_get::<bool, _>(field));

/// Reads typed columns of one row, reporting which one is out of range.
struct Columns<'r, R> {
    row: &'r R,
    what: &'static str,
}

impl<R: StoredRow> Columns<'_, R> {
    fn text(&self, field: &'static str) -> Result<String, ControlError> {
        Ok(self.row.text(field)?)
    }

    fn opt_text(&self, field: &'static str) -> Result<Option<String>, ControlError> {
        Ok(self.row.opt_text(field)?)
    }

    fn int(&self, field: &'static str) -> Result<i64, ControlError> {
        Ok(self.row.int(field)?)
    }

    fn opt_int(&self, field: &'static str) -> Result<Option<i64>, ControlError> {
        Ok(self.row.opt_int(field)?)
    }

    fn corrupt(&self, field: &'static str) -> ControlError {
        ControlError::Corrupt {
            what: self.what,
            field,
        }
    }

    fn opt_u32(&self, field: &'static str) -> Result<Option<u32>, ControlError> {
        self.opt_int(field)?
            .map(|value| u32::try_from(value).map_err(|_| self.corrupt(field)))
            .transpose()
    }

    fn opt_u64(&self, field: &'static str) -> Result<Option<u64>, ControlError> {
        self.opt_int(field)?
            .map(|value| u64::try_from(value).map_err(|_| self.corrupt(field)))
            .transpose()
    }

    fn list(&self, field: &'static str) -> Result<Vec<String>, ControlError> {
        serde_json::from_str(&self.text(field)?).map_err(|_| self.corrupt(field))
    }

    fn flag(&self, field: &'static str) -> Result<bool, ControlError> {
        Ok(self.row.flag(field)?)
    }
}

pub(super) fn key_from_row<R: StoredRow>(row: &R) -> Result<KeyRecord, ControlError> {
    let c = Columns { row, what: "key" };
    Ok(KeyRecord {
        id: c.text("id")?,
        name: c.text("name")?,
        key_hash: c.text("key_hash")?,
        prefix: c.text("prefix")?,
        last4: c.text("last4")?,
        profile: c.text("profile")?,
        profiles: c.list("profiles")?,
        models: c.list("models")?,
        rpm: c.opt_u32("rpm")?,
        tpm: c.opt_u32("tpm")?,
        daily_token_budget: c.opt_u64("daily_token_budget")?,
        monthly_budget_micro_usd: c.opt_int("monthly_budget_micro_usd")?,
        expires_at: c.opt_int("expires_at")?,
        enabled: c.flag("enabled")?,
        created_at: c.int("created_at")?,
        updated_at: c.int("updated_at")?,
    })
}

pub(super) fn account_from_row<R: StoredRow>(row: &R) -> Result<AccountRecord, ControlError> {
    let c = Columns {
        row,
        what: "account",
    };
    let provider: Provider = c
        .text("provider")?
        .parse()
        .map_err(|_| c.corrupt("provider"))?;
    let weight = u32::try_from(c.int("weight")?).map_err(|_| c.corrupt("weight"))?;
    let priority = i32::try_from(c.int("priority")?).map_err(|_| c.corrupt("priority"))?;
    Ok(AccountRecord {
        id: c.text("id")?,
        provider,
        name: c.text("name")?,
        email: c.opt_text("email")?,
        sealed_secret: c.opt_text("secret_sealed")?,
        base_url: c.opt_text("base_url")?,
        profile: c.text("profile")?,
        models: c.list("models")?,
        daily_token_limit: c.opt_u64("daily_token_limit")?,
        rpm: c.opt_u32("rpm")?,
        tpm: c.opt_u32("tpm")?,
        priority,
        weight,
        strict_cap: c.flag("strict_cap")?,
        health_probe: c.flag("health_probe")?,
        settings: c.opt_text("settings")?,
        prices: c
            .opt_text("prices")?
            .map(|text| serde_json::from_str(&text).map_err(|_| c.corrupt("prices")))
            .transpose()?,
        enabled: c.flag("enabled")?,
        disabled_reason: c.opt_text("disabled_reason")?,
        created_at: c.int("created_at")?,
        updated_at: c.int("updated_at")?,
    })
}

pub(super) fn route_from_row<R: StoredRow>(row: &R) -> Result<RouteRecord, ControlError> {
    let c = Columns { row, what: "route" };
    let stored: Vec<StoredDeployment> =
        serde_json::from_str(&c.text("deployments")?).map_err(|_| c.corrupt("deployments"))?;
    let deployments = stored
        .into_iter()
        .map(|deployment| {
            Ok(Deployment {
                provider: deployment
                    .provider
                    .parse()
                    .map_err(|_| c.corrupt("deployments"))?,
                model: deployment.model,
                weight: deployment.weight,
                priority: deployment.priority,
            })
        })
        .collect::<Result<Vec<_>, ControlError>>()?;
    let strategy = c
        .opt_text("strategy")?
        .map(|name| parse_strategy(&name).ok_or_else(|| c.corrupt("strategy")))
        .transpose()?;
    Ok(RouteRecord {
        id: c.text("id")?,
        alias: c.text("alias")?,
        profile: c.text("profile")?,
        deployments,
        strategy,
        fallbacks: c.list("fallbacks")?,
        context_window_fallbacks: c.list("context_window_fallbacks")?,
        content_policy_fallbacks: c.list("content_policy_fallbacks")?,
        first_byte_timeout_ms: c.opt_u32("first_byte_timeout_ms")?,
        deadline_ms: c.opt_u32("deadline_ms")?,
        enabled: c.flag("enabled")?,
        created_at: c.int("created_at")?,
        updated_at: c.int("updated_at")?,
    })
}

pub(super) fn profile_from_row<R: StoredRow>(row: &R) -> Result<ProfileRecord, ControlError> {
    let c = Columns {
        row,
        what: "profile",
    };
    let strategy = c
        .opt_text("strategy")?
        .map(|name| parse_strategy(&name).ok_or_else(|| c.corrupt("strategy")))
        .transpose()?;
    Ok(ProfileRecord {
        name: c.text("name")?,
        description: c.text("description")?,
        strategy,
        created_at: c.int("created_at")?,
        updated_at: c.int("updated_at")?,
    })
}

// The same parameters in the same order for both backends: only the SQL
// text (placeholders, schema) differs between them.

/// Binds a new key, in the column order of the insert statements.
macro_rules! bind_new_key {
    ($query:expr, $key:expr, $now:expr) => {
        $query
            .bind(ids::prefixed("key"))
            .bind(&$key.name)
            .bind(&$key.key_hash)
            .bind(&$key.prefix)
            .bind(&$key.last4)
            .bind(&$key.profile)
            .bind(json_list(&$key.profiles))
            .bind(json_list(&$key.models))
            .bind($key.rpm.map(i64::from))
            .bind($key.tpm.map(i64::from))
            .bind($key.daily_token_budget.map(db_u64))
            .bind($key.monthly_budget_micro_usd)
            .bind($key.expires_at)
            .bind($key.enabled)
            .bind($now)
            .bind($now)
    };
}
pub(super) use bind_new_key;

/// Binds a key patch (`Some(None)` clears: a flag then the value), then
/// the update time and the id, in the order of the update statements.
macro_rules! bind_key_patch {
    ($query:expr, $patch:expr, $id:expr) => {
        $query
            .bind($patch.name)
            .bind($patch.profile)
            .bind($patch.profiles.as_deref().map(json_list))
            .bind($patch.models.as_deref().map(json_list))
            .bind($patch.rpm.is_some())
            .bind($patch.rpm.flatten().map(i64::from))
            .bind($patch.tpm.is_some())
            .bind($patch.tpm.flatten().map(i64::from))
            .bind($patch.daily_token_budget.is_some())
            .bind($patch.daily_token_budget.flatten().map(db_u64))
            .bind($patch.monthly_budget_micro_usd.is_some())
            .bind($patch.monthly_budget_micro_usd.flatten())
            .bind($patch.expires_at.is_some())
            .bind($patch.expires_at.flatten())
            .bind($patch.enabled)
            .bind(now_secs())
            .bind($id)
    };
}
pub(super) use bind_key_patch;

/// Binds a new account, in the column order of the insert statements.
macro_rules! bind_new_account {
    ($query:expr, $account:expr, $now:expr) => {
        $query
            .bind(ids::prefixed("acct"))
            .bind($account.provider.as_str())
            .bind(&$account.name)
            .bind(&$account.email)
            .bind(&$account.sealed_secret)
            .bind(&$account.base_url)
            .bind(&$account.profile)
            .bind(json_list(&$account.models))
            .bind($account.daily_token_limit.map(db_u64))
            .bind($account.rpm.map(i64::from))
            .bind($account.tpm.map(i64::from))
            .bind(i64::from($account.priority))
            .bind(i64::from($account.weight))
            .bind($account.enabled)
            .bind($account.strict_cap)
            .bind($account.health_probe)
            .bind(&$account.settings)
            .bind(json_prices($account.prices.as_ref()))
            .bind($now)
            .bind($now)
    };
}
pub(super) use bind_new_account;

/// Binds an account patch, then the update time and the id, in the order
/// of the update statements.
macro_rules! bind_account_patch {
    ($query:expr, $patch:expr, $id:expr) => {
        $query
            .bind($patch.name)
            .bind($patch.email.is_some())
            .bind($patch.email.flatten())
            .bind($patch.sealed_secret.is_some())
            .bind($patch.sealed_secret.flatten())
            .bind($patch.base_url.is_some())
            .bind($patch.base_url.flatten())
            .bind($patch.profile)
            .bind($patch.models.as_deref().map(json_list))
            .bind($patch.daily_token_limit.is_some())
            .bind($patch.daily_token_limit.flatten().map(db_u64))
            .bind($patch.rpm.is_some())
            .bind($patch.rpm.flatten().map(i64::from))
            .bind($patch.tpm.is_some())
            .bind($patch.tpm.flatten().map(i64::from))
            .bind($patch.priority.map(i64::from))
            .bind($patch.weight.map(i64::from))
            .bind($patch.enabled)
            .bind($patch.enabled == Some(true))
            .bind($patch.strict_cap)
            .bind($patch.health_probe)
            .bind($patch.settings.is_some())
            .bind($patch.settings.flatten())
            .bind($patch.prices.is_some())
            .bind(json_prices($patch.prices.flatten().as_ref()))
            .bind(now_secs())
            .bind($id)
    };
}
pub(super) use bind_account_patch;

/// Binds a new route, in the column order of the insert statements.
macro_rules! bind_new_route {
    ($query:expr, $route:expr, $now:expr) => {
        $query
            .bind(ids::prefixed("route"))
            .bind(&$route.alias)
            .bind(&$route.profile)
            .bind(json_deployments(&$route.deployments))
            .bind(db_strategy($route.strategy))
            .bind(json_list(&$route.fallbacks))
            .bind(json_list(&$route.context_window_fallbacks))
            .bind(json_list(&$route.content_policy_fallbacks))
            .bind($route.first_byte_timeout_ms.map(i64::from))
            .bind($route.deadline_ms.map(i64::from))
            .bind($route.enabled)
            .bind($now)
            .bind($now)
    };
}
pub(super) use bind_new_route;

/// Binds a route patch (the strategy and each timeout as a flag then the
/// value), then the update time and the id, in the order of the update
/// statements.
macro_rules! bind_route_patch {
    ($query:expr, $patch:expr, $id:expr) => {
        $query
            .bind($patch.alias)
            .bind($patch.profile)
            .bind($patch.deployments.as_deref().map(json_deployments))
            .bind($patch.strategy.is_some())
            .bind(db_strategy($patch.strategy.flatten()))
            .bind($patch.fallbacks.as_deref().map(json_list))
            .bind($patch.context_window_fallbacks.as_deref().map(json_list))
            .bind($patch.content_policy_fallbacks.as_deref().map(json_list))
            .bind($patch.first_byte_timeout_ms.is_some())
            .bind($patch.first_byte_timeout_ms.flatten().map(i64::from))
            .bind($patch.deadline_ms.is_some())
            .bind($patch.deadline_ms.flatten().map(i64::from))
            .bind($patch.enabled)
            .bind(now_secs())
            .bind($id)
    };
}
pub(super) use bind_route_patch;

/// Binds a new profile, in the column order of the insert statements.
macro_rules! bind_new_profile {
    ($query:expr, $profile:expr, $now:expr) => {
        $query
            .bind(&$profile.name)
            .bind(&$profile.description)
            .bind(db_strategy($profile.strategy))
            .bind($now)
            .bind($now)
    };
}
pub(super) use bind_new_profile;

/// Binds a profile patch (the strategy as a flag then the value), then the
/// update time and the name, in the order of the update statements.
macro_rules! bind_profile_patch {
    ($query:expr, $patch:expr, $name:expr) => {
        $query
            .bind($patch.description)
            .bind($patch.strategy.is_some())
            .bind(db_strategy($patch.strategy.flatten()))
            .bind(now_secs())
            .bind($name)
    };
}
pub(super) use bind_profile_patch;

/// An audit entry; `summary` is JSON text (Postgres reads its JSONB as
/// `summary::text`).
pub(super) fn audit_from_row(row: &impl StoredRow) -> Result<AuditRecord, ControlError> {
    let summary = row.text("summary")?;
    Ok(AuditRecord {
        id: row.int("id")?,
        at: row.int("at")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        object_kind: row.text("object_kind")?,
        object_id: row.text("object_id")?,
        summary: serde_json::from_str(&summary).map_err(|_| ControlError::Corrupt {
            what: "audit entry",
            field: "summary",
        })?,
    })
}
