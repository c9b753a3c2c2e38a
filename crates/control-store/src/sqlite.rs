//! The embedded control store: keys, accounts and routes in one SQLite file
//! (`control.db`).

use std::path::Path;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;
use tollgate_core::{clock, ids};
use tollgate_store_support::sqlite::{self as sqlite_db, OpenError};

use super::audit::redact_secrets;
use super::rows::{
    account_from_row, audit_from_row, bind_account_patch, bind_key_patch, bind_new_account,
    bind_new_key, bind_new_profile, bind_new_route, bind_profile_patch, bind_route_patch,
    db_strategy, db_u64, json_deployments, json_list, json_prices, key_from_row, profile_from_row,
    route_from_row,
};
use super::{
    AccountPatch, AccountRecord, AuditRecord, ControlError, ControlStore, KeyPatch, KeyRecord,
    NewAccount, NewAuditEntry, NewKey, NewProfile, NewRoute, ProfilePatch, ProfileRecord,
    RoutePatch, RouteRecord,
};

/// The control schema's migrations (`migrations/control`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/control");

/// The columns of `keys`, in the order every statement lists them. A macro so
/// that statements are assembled at compile time (`concat!`), never at run
/// time.
macro_rules! key_columns {
    () => {
        "id, name, key_hash, prefix, last4, profile, profiles, models, rpm, tpm, \
         daily_token_budget, monthly_budget_micro_usd, expires_at, enabled, created_at, updated_at"
    };
}

/// The columns of `accounts`, like [`key_columns`].
macro_rules! account_columns {
    () => {
        "id, provider, name, email, secret_sealed, base_url, profile, models, daily_token_limit, \
         rpm, tpm, priority, weight, enabled, disabled_reason, strict_cap, health_probe, settings, \
         prices, \
         created_at, updated_at"
    };
}

/// The columns of `routes`, like [`key_columns`].
macro_rules! route_columns {
    () => {
        "id, alias, profile, deployments, strategy, fallbacks, context_window_fallbacks, \
         content_policy_fallbacks, first_byte_timeout_ms, deadline_ms, enabled, created_at, \
         updated_at"
    };
}

/// The columns of `profiles`, like [`key_columns`].
macro_rules! profile_columns {
    () => {
        "name, description, strategy, created_at, updated_at"
    };
}

/// [`ControlStore`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteControlStore {
    pool: SqlitePool,
}

impl SqliteControlStore {
    /// Opens (creating if needed) the SQLite file at `path` and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        Ok(Self::from_pool(sqlite_db::open(path, &MIGRATOR).await?))
    }

    /// A fresh in-memory store, for tests.
    pub async fn open_in_memory() -> Result<Self, OpenError> {
        Ok(Self::from_pool(sqlite_db::open_in_memory(&MIGRATOR).await?))
    }

    /// Uses a pool whose schema is already up to date ([`MIGRATOR`]).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The underlying pool (for inspection in tests and for closing).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn now_secs() -> i64 {
    clock::now_ms().div_euclid(1000)
}

fn not_found(what: &'static str, id: &str) -> ControlError {
    ControlError::NotFound {
        what,
        id: id.to_owned(),
    }
}

/// Runs a `DELETE` of one row by its key (`sql` binds it once);
/// `NotFound` when no row had it.
async fn delete_one(
    pool: &SqlitePool,
    sql: &'static str,
    what: &'static str,
    id: &str,
) -> Result<(), ControlError> {
    let done = sqlx::query(sql).bind(id).execute(pool).await?;
    if done.rows_affected() == 0 {
        return Err(not_found(what, id));
    }
    Ok(())
}

/// A unique violation on `routes` is an alias already taken in its profile.
fn route_write_error(err: sqlx::Error) -> ControlError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ControlError::DuplicateAlias,
        _ => ControlError::Database(err),
    }
}

/// A unique violation on `profiles` is a name already taken.
fn profile_write_error(err: sqlx::Error) -> ControlError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ControlError::DuplicateProfile,
        _ => ControlError::Database(err),
    }
}

#[async_trait]
impl ControlStore for SqliteControlStore {
    async fn insert_key(&self, key: NewKey) -> Result<KeyRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO keys (",
            key_columns!(),
            ") \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            key_columns!()
        );
        let row = bind_new_key!(sqlx::query(sql), key, now)
            .fetch_one(&self.pool)
            .await
            .map_err(|err| match &err {
                sqlx::Error::Database(db) if db.is_unique_violation() => ControlError::DuplicateKey,
                _ => ControlError::Database(err),
            })?;
        key_from_row(&row)
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, ControlError> {
        let sql = concat!("SELECT ", key_columns!(), " FROM keys WHERE id = ?");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn get_key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, ControlError> {
        let sql = concat!("SELECT ", key_columns!(), " FROM keys WHERE key_hash = ?");
        let row = sqlx::query(sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn update_key(&self, id: &str, patch: KeyPatch) -> Result<KeyRecord, ControlError> {
        let sql = concat!(
            "UPDATE keys SET \
               name = COALESCE(?, name), \
               profile = COALESCE(?, profile), \
               profiles = COALESCE(?, profiles), \
               models = COALESCE(?, models), \
               rpm = CASE WHEN ? THEN ? ELSE rpm END, \
               tpm = CASE WHEN ? THEN ? ELSE tpm END, \
               daily_token_budget = CASE WHEN ? THEN ? ELSE daily_token_budget END, \
               monthly_budget_micro_usd = CASE WHEN ? THEN ? ELSE monthly_budget_micro_usd END, \
               expires_at = CASE WHEN ? THEN ? ELSE expires_at END, \
               enabled = COALESCE(?, enabled), \
               updated_at = ? \
             WHERE id = ? RETURNING ",
            key_columns!()
        );
        let row = bind_key_patch!(sqlx::query(sql), patch, id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(key_from_row)
            .transpose()?
            .ok_or_else(|| not_found("key", id))
    }

    async fn delete_key(&self, id: &str) -> Result<(), ControlError> {
        delete_one(&self.pool, "DELETE FROM keys WHERE id = ?", "key", id).await
    }

    async fn insert_account(&self, account: NewAccount) -> Result<AccountRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO accounts (",
            account_columns!(),
            ") \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?) \
             RETURNING ",
            account_columns!()
        );
        let row = bind_new_account!(sqlx::query(sql), account, now)
            .fetch_one(&self.pool)
            .await?;
        account_from_row(&row)
    }

    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, ControlError> {
        let sql = concat!("SELECT ", account_columns!(), " FROM accounts WHERE id = ?");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn update_account(
        &self,
        id: &str,
        patch: AccountPatch,
    ) -> Result<AccountRecord, ControlError> {
        let sql = concat!(
            "UPDATE accounts SET \
               name = COALESCE(?, name), \
               email = CASE WHEN ? THEN ? ELSE email END, \
               secret_sealed = CASE WHEN ? THEN ? ELSE secret_sealed END, \
               base_url = CASE WHEN ? THEN ? ELSE base_url END, \
               profile = COALESCE(?, profile), \
               models = COALESCE(?, models), \
               daily_token_limit = CASE WHEN ? THEN ? ELSE daily_token_limit END, \
               rpm = CASE WHEN ? THEN ? ELSE rpm END, \
               tpm = CASE WHEN ? THEN ? ELSE tpm END, \
               priority = COALESCE(?, priority), \
               weight = COALESCE(?, weight), \
               enabled = COALESCE(?, enabled), \
               disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, \
               strict_cap = COALESCE(?, strict_cap), \
               health_probe = COALESCE(?, health_probe), \
               settings = CASE WHEN ? THEN ? ELSE settings END, \
               prices = CASE WHEN ? THEN ? ELSE prices END, \
               updated_at = ? \
             WHERE id = ? RETURNING ",
            account_columns!()
        );
        let row = bind_account_patch!(sqlx::query(sql), patch, id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(account_from_row)
            .transpose()?
            .ok_or_else(|| not_found("account", id))
    }

    async fn delete_account(&self, id: &str) -> Result<(), ControlError> {
        delete_one(
            &self.pool,
            "DELETE FROM accounts WHERE id = ?",
            "account",
            id,
        )
        .await
    }

    async fn set_account_disabled(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<AccountRecord, ControlError> {
        let sql = concat!(
            "UPDATE accounts SET enabled = 0, disabled_reason = ?, updated_at = ? \
             WHERE id = ? RETURNING ",
            account_columns!()
        );
        let row = sqlx::query(sql)
            .bind(reason)
            .bind(now_secs())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(account_from_row)
            .transpose()?
            .ok_or_else(|| not_found("account", id))
    }

    async fn insert_profile(&self, profile: NewProfile) -> Result<ProfileRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO profiles (",
            profile_columns!(),
            ") VALUES (?, ?, ?, ?, ?) RETURNING ",
            profile_columns!()
        );
        let row = bind_new_profile!(sqlx::query(sql), profile, now)
            .fetch_one(&self.pool)
            .await
            .map_err(profile_write_error)?;
        profile_from_row(&row)
    }

    async fn get_profile(&self, name: &str) -> Result<Option<ProfileRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE name = ?"
        );
        let row = sqlx::query(sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(profile_from_row).transpose()
    }

    async fn list_profiles(&self) -> Result<Vec<ProfileRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles ORDER BY name"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(profile_from_row).collect()
    }

    async fn update_profile(
        &self,
        name: &str,
        patch: ProfilePatch,
    ) -> Result<ProfileRecord, ControlError> {
        let sql = concat!(
            "UPDATE profiles SET \
               description = COALESCE(?, description), \
               strategy = CASE WHEN ? THEN ? ELSE strategy END, \
               updated_at = ? \
             WHERE name = ? RETURNING ",
            profile_columns!()
        );
        let row = bind_profile_patch!(sqlx::query(sql), patch, name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(profile_from_row)
            .transpose()?
            .ok_or_else(|| not_found("profile", name))
    }

    async fn delete_profile(&self, name: &str) -> Result<(), ControlError> {
        delete_one(
            &self.pool,
            "DELETE FROM profiles WHERE name = ?",
            "profile",
            name,
        )
        .await
    }

    async fn insert_route(&self, route: NewRoute) -> Result<RouteRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO routes (",
            route_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            route_columns!()
        );
        let row = bind_new_route!(sqlx::query(sql), route, now)
            .fetch_one(&self.pool)
            .await
            .map_err(route_write_error)?;
        route_from_row(&row)
    }

    async fn get_route(&self, id: &str) -> Result<Option<RouteRecord>, ControlError> {
        let sql = concat!("SELECT ", route_columns!(), " FROM routes WHERE id = ?");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(route_from_row).transpose()
    }

    async fn list_routes(&self) -> Result<Vec<RouteRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            route_columns!(),
            " FROM routes ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(route_from_row).collect()
    }

    async fn update_route(&self, id: &str, patch: RoutePatch) -> Result<RouteRecord, ControlError> {
        let sql = concat!(
            "UPDATE routes SET \
               alias = COALESCE(?, alias), \
               profile = COALESCE(?, profile), \
               deployments = COALESCE(?, deployments), \
               strategy = CASE WHEN ? THEN ? ELSE strategy END, \
               fallbacks = COALESCE(?, fallbacks), \
               context_window_fallbacks = COALESCE(?, context_window_fallbacks), \
               content_policy_fallbacks = COALESCE(?, content_policy_fallbacks), \
               first_byte_timeout_ms = CASE WHEN ? THEN ? ELSE first_byte_timeout_ms END, \
               deadline_ms = CASE WHEN ? THEN ? ELSE deadline_ms END, \
               enabled = COALESCE(?, enabled), \
               updated_at = ? \
             WHERE id = ? RETURNING ",
            route_columns!()
        );
        let row = bind_route_patch!(sqlx::query(sql), patch, id)
            .fetch_optional(&self.pool)
            .await
            .map_err(route_write_error)?;
        row.as_ref()
            .map(route_from_row)
            .transpose()?
            .ok_or_else(|| not_found("route", id))
    }

    async fn delete_route(&self, id: &str) -> Result<(), ControlError> {
        delete_one(&self.pool, "DELETE FROM routes WHERE id = ?", "route", id).await
    }

    async fn record_audit(&self, entry: NewAuditEntry) -> Result<AuditRecord, ControlError> {
        let row = sqlx::query(
            "INSERT INTO audit_log (at, actor, action, object_kind, object_id, summary) \
             VALUES (?, ?, ?, ?, ?, ?) \
             RETURNING id, at, actor, action, object_kind, object_id, summary",
        )
        .bind(now_secs())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.object_kind)
        .bind(&entry.object_id)
        .bind(redact_secrets(entry.summary).to_string())
        .fetch_one(&self.pool)
        .await?;
        audit_from_row(&row)
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, ControlError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, object_kind, object_id, summary \
             FROM audit_log ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}

#[cfg(test)]
mod tests {

    use super::SqliteControlStore;
    use crate::conformance::control_conformance_tests;

    async fn fresh_file() -> (tempfile::TempDir, SqliteControlStore) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SqliteControlStore::open(&dir.path().join("control.db"))
            .await
            .unwrap();
        (dir, store)
    }

    control_conformance_tests!(fresh_file);

    mod in_memory {

        use super::SqliteControlStore;
        use crate::conformance::control_conformance_tests;

        async fn fresh() -> ((), SqliteControlStore) {
            ((), SqliteControlStore::open_in_memory().await.unwrap())
        }

        control_conformance_tests!(fresh);
    }

    /// The shared SQLite setup (`tollgate_store_support::sqlite`) on the
    /// control schema.
    mod database {

        use sqlx::Row;
        use tollgate_store_support::sqlite::{open, open_in_memory};

        use crate::MIGRATOR;

        #[tokio::test]
        async fn file_database_uses_wal_foreign_keys_and_migrations() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("nested/control.db");
            let pool = open(&path, &MIGRATOR).await.unwrap();
            assert!(path.exists());
            let mode: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
            assert_eq!(mode, "wal");
            let foreign_keys: i64 = sqlx::query("PRAGMA foreign_keys")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
            assert_eq!(foreign_keys, 1);
            let tables: i64 = sqlx::query(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('keys', 'accounts')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
            assert_eq!(tables, 2);
            pool.close().await;

            // Reopening an up-to-date file applies nothing and keeps the data.
            let pool = open(&path, &MIGRATOR).await.unwrap();
            pool.close().await;
        }

        #[tokio::test]
        async fn in_memory_database_keeps_its_schema_across_queries() {
            let pool = open_in_memory(&MIGRATOR).await.unwrap();
            for _ in 0..3 {
                sqlx::query("SELECT COUNT(*) FROM keys")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            }
        }
    }
}
