//! The cluster control store: keys, accounts and routes in Postgres, in the schema
//! `control`, so that several quota replicas share one control plane.
//!
//! The schema keeps its own migration history (`control._sqlx_migrations`),
//! apart from the usage store's in the same database; every statement names
//! its table with the schema, so any pool on the database works.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use tollgate_core::{clock, ids};

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

/// The Postgres control schema's migrations (`migrations/control_postgres`),
/// applied inside the schema `control`.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/control_postgres");

/// The schema holding the control tables and their migration history.
pub const PG_SCHEMA: &str = "control";

/// Connections [`PgControlStore::connect`] opens at most.
const MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The columns of `control.keys` written by an insert, in order.
macro_rules! key_insert_columns {
    () => {
        "id, name, key_hash, prefix, last4, profile, profiles, models, rpm, tpm, \
         daily_token_budget, monthly_budget_micro_usd, expires_at, enabled, created_at, updated_at"
    };
}

/// The columns of `control.keys` as every statement reads them (lists as
/// JSON text). A macro so that statements are assembled at compile time.
macro_rules! key_columns {
    () => {
        "id, name, key_hash, prefix, last4, profile, profiles::text AS profiles, \
         models::text AS models, rpm, tpm, daily_token_budget, monthly_budget_micro_usd, \
         expires_at, enabled, created_at, updated_at"
    };
}

/// The columns of `control.accounts` written by an insert, in order.
macro_rules! account_insert_columns {
    () => {
        "id, provider, name, email, secret_sealed, base_url, profile, models, daily_token_limit, \
         rpm, tpm, priority, weight, enabled, disabled_reason, strict_cap, health_probe, settings, \
         prices, \
         created_at, updated_at"
    };
}

/// The columns of `control.accounts` as every statement reads them.
macro_rules! account_columns {
    () => {
        "id, provider, name, email, secret_sealed, base_url, profile, models::text AS models, \
         daily_token_limit, rpm, tpm, priority, weight, enabled, disabled_reason, strict_cap, \
         health_probe, settings, prices, created_at, updated_at"
    };
}

/// The columns of `control.routes` written by an insert, in order.
macro_rules! route_insert_columns {
    () => {
        "id, alias, profile, deployments, strategy, fallbacks, context_window_fallbacks, \
         content_policy_fallbacks, first_byte_timeout_ms, deadline_ms, enabled, created_at, \
         updated_at"
    };
}

/// The columns of `control.routes` as every statement reads them.
macro_rules! route_columns {
    () => {
        "id, alias, profile, deployments::text AS deployments, strategy, \
         fallbacks::text AS fallbacks, \
         context_window_fallbacks::text AS context_window_fallbacks, \
         content_policy_fallbacks::text AS content_policy_fallbacks, first_byte_timeout_ms, \
         deadline_ms, enabled, created_at, updated_at"
    };
}

/// The columns of `control.profiles`, written by an insert and read by
/// every statement, in order.
macro_rules! profile_columns {
    () => {
        "name, description, strategy, created_at, updated_at"
    };
}

/// A Postgres control store that could not be reached or brought up to
/// date. The messages carry no connection URL.
#[derive(Debug, thiserror::Error)]
pub enum PgOpenError {
    #[error("cannot connect to the control database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot create the control schema: {0}")]
    Schema(#[source] sqlx::Error),
    #[error("cannot migrate the control schema: {0}")]
    Migrate(#[source] MigrateError),
}

/// [`ControlStore`] on Postgres. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgControlStore {
    pool: PgPool,
}

impl PgControlStore {
    /// Connects to the database at `url` (`postgres://…`) and brings its
    /// control schema up to date.
    pub async fn connect(url: &str) -> Result<Self, PgOpenError> {
        let options: PgConnectOptions = url.parse().map_err(PgOpenError::Connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(PgOpenError::Connect)?;
        Self::from_pool(pool).await
    }

    /// Uses an open pool (configured by the caller, possibly shared with
    /// other stores), bringing its control schema up to date.
    pub async fn from_pool(pool: PgPool) -> Result<Self, PgOpenError> {
        migrate(&pool).await?;
        Ok(Self { pool })
    }

    /// The underlying pool (for inspection in tests and for closing).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for running statements.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the schema if missing and applies the pending migrations on a
/// connection of its own whose search path is that schema, so the
/// migration history is the schema's own.
async fn migrate(pool: &PgPool) -> Result<(), PgOpenError> {
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("search_path", PG_SCHEMA)]);
    let mut connection = options.connect().await.map_err(PgOpenError::Connect)?;
    let created = sqlx::raw_sql("CREATE SCHEMA IF NOT EXISTS control")
        .execute(&mut connection)
        .await;
    match created {
        Ok(_) => {}
        // Another replica created it at the same moment.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
        Err(error) => return Err(PgOpenError::Schema(error)),
    }
    let migrated = PG_MIGRATOR.run(&mut connection).await;
    connection.close().await.ok();
    migrated.map_err(PgOpenError::Migrate)
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
    pool: &PgPool,
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

/// A unique violation on `control.routes` is an alias already taken in its
/// profile.
fn route_write_error(err: sqlx::Error) -> ControlError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ControlError::DuplicateAlias,
        _ => ControlError::Database(err),
    }
}

/// A unique violation on `control.profiles` is a name already taken.
fn profile_write_error(err: sqlx::Error) -> ControlError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => ControlError::DuplicateProfile,
        _ => ControlError::Database(err),
    }
}

#[async_trait]
impl ControlStore for PgControlStore {
    async fn insert_key(&self, key: NewKey) -> Result<KeyRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO control.keys (",
            key_insert_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, \
             $14, $15, $16) RETURNING ",
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
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM control.keys WHERE id = $1"
        );
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn get_key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM control.keys WHERE key_hash = $1"
        );
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
            " FROM control.keys ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn update_key(&self, id: &str, patch: KeyPatch) -> Result<KeyRecord, ControlError> {
        let sql = concat!(
            "UPDATE control.keys SET \
               name = COALESCE($1, name), \
               profile = COALESCE($2, profile), \
               profiles = COALESCE($3::jsonb, profiles), \
               models = COALESCE($4::jsonb, models), \
               rpm = CASE WHEN $5 THEN $6 ELSE rpm END, \
               tpm = CASE WHEN $7 THEN $8 ELSE tpm END, \
               daily_token_budget = CASE WHEN $9 THEN $10 ELSE daily_token_budget END, \
               monthly_budget_micro_usd = CASE WHEN $11 THEN $12 \
                 ELSE monthly_budget_micro_usd END, \
               expires_at = CASE WHEN $13 THEN $14 ELSE expires_at END, \
               enabled = COALESCE($15, enabled), \
               updated_at = $16 \
             WHERE id = $17 RETURNING ",
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
        delete_one(
            &self.pool,
            "DELETE FROM control.keys WHERE id = $1",
            "key",
            id,
        )
        .await
    }

    async fn insert_account(&self, account: NewAccount) -> Result<AccountRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO control.accounts (",
            account_insert_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, \
             NULL, $15, $16, $17, $18, $19, $20) RETURNING ",
            account_columns!()
        );
        let row = bind_new_account!(sqlx::query(sql), account, now)
            .fetch_one(&self.pool)
            .await?;
        account_from_row(&row)
    }

    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM control.accounts WHERE id = $1"
        );
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            account_columns!(),
            " FROM control.accounts ORDER BY created_at, id"
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
            "UPDATE control.accounts SET \
               name = COALESCE($1, name), \
               email = CASE WHEN $2 THEN $3 ELSE email END, \
               secret_sealed = CASE WHEN $4 THEN $5 ELSE secret_sealed END, \
               base_url = CASE WHEN $6 THEN $7 ELSE base_url END, \
               profile = COALESCE($8, profile), \
               models = COALESCE($9::jsonb, models), \
               daily_token_limit = CASE WHEN $10 THEN $11 ELSE daily_token_limit END, \
               rpm = CASE WHEN $12 THEN $13 ELSE rpm END, \
               tpm = CASE WHEN $14 THEN $15 ELSE tpm END, \
               priority = COALESCE($16, priority), \
               weight = COALESCE($17, weight), \
               enabled = COALESCE($18, enabled), \
               disabled_reason = CASE WHEN $19 THEN NULL ELSE disabled_reason END, \
               strict_cap = COALESCE($20, strict_cap), \
               health_probe = COALESCE($21, health_probe), \
               settings = CASE WHEN $22 THEN $23 ELSE settings END, \
               prices = CASE WHEN $24 THEN $25 ELSE prices END, \
               updated_at = $26 \
             WHERE id = $27 RETURNING ",
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
            "DELETE FROM control.accounts WHERE id = $1",
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
            "UPDATE control.accounts SET enabled = FALSE, disabled_reason = $1, updated_at = $2 \
             WHERE id = $3 RETURNING ",
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
            "INSERT INTO control.profiles (",
            profile_columns!(),
            ") VALUES ($1, $2, $3, $4, $5) RETURNING ",
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
            " FROM control.profiles WHERE name = $1"
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
            " FROM control.profiles ORDER BY name"
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
            "UPDATE control.profiles SET \
               description = COALESCE($1, description), \
               strategy = CASE WHEN $2 THEN $3 ELSE strategy END, \
               updated_at = $4 \
             WHERE name = $5 RETURNING ",
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
            "DELETE FROM control.profiles WHERE name = $1",
            "profile",
            name,
        )
        .await
    }

    async fn insert_route(&self, route: NewRoute) -> Result<RouteRecord, ControlError> {
        let now = now_secs();
        let sql = concat!(
            "INSERT INTO control.routes (",
            route_insert_columns!(),
            ") VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, \
             $12, $13) RETURNING ",
            route_columns!()
        );
        let row = bind_new_route!(sqlx::query(sql), route, now)
            .fetch_one(&self.pool)
            .await
            .map_err(route_write_error)?;
        route_from_row(&row)
    }

    async fn get_route(&self, id: &str) -> Result<Option<RouteRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            route_columns!(),
            " FROM control.routes WHERE id = $1"
        );
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(route_from_row).transpose()
    }

    async fn list_routes(&self) -> Result<Vec<RouteRecord>, ControlError> {
        let sql = concat!(
            "SELECT ",
            route_columns!(),
            " FROM control.routes ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(route_from_row).collect()
    }

    async fn update_route(&self, id: &str, patch: RoutePatch) -> Result<RouteRecord, ControlError> {
        let sql = concat!(
            "UPDATE control.routes SET \
               alias = COALESCE($1, alias), \
               profile = COALESCE($2, profile), \
               deployments = COALESCE($3::jsonb, deployments), \
               strategy = CASE WHEN $4 THEN $5 ELSE strategy END, \
               fallbacks = COALESCE($6::jsonb, fallbacks), \
               context_window_fallbacks = COALESCE($7::jsonb, context_window_fallbacks), \
               content_policy_fallbacks = COALESCE($8::jsonb, content_policy_fallbacks), \
               first_byte_timeout_ms = CASE WHEN $9 THEN $10 ELSE first_byte_timeout_ms END, \
               deadline_ms = CASE WHEN $11 THEN $12 ELSE deadline_ms END, \
               enabled = COALESCE($13, enabled), \
               updated_at = $14 \
             WHERE id = $15 RETURNING ",
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
        delete_one(
            &self.pool,
            "DELETE FROM control.routes WHERE id = $1",
            "route",
            id,
        )
        .await
    }

    async fn record_audit(&self, entry: NewAuditEntry) -> Result<AuditRecord, ControlError> {
        let summary = redact_secrets(entry.summary).to_string();
        let row = sqlx::query(
            "INSERT INTO control.audit_log (at, actor, action, object_kind, object_id, summary) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb) \
             RETURNING id, at, actor, action, object_kind, object_id, summary::text AS summary",
        )
        .bind(now_secs())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.object_kind)
        .bind(&entry.object_id)
        .bind(summary)
        .fetch_one(&self.pool)
        .await?;
        audit_from_row(&row)
    }

    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, ControlError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, object_kind, object_id, summary::text AS summary \
             FROM control.audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}
