//! Opening SQLite databases (WAL, busy timeout) and running migrations.
//!
//! Every embedded store is one SQLite file with its own migrator (in the
//! `migrations/<store>/` of the crate that owns its tables); [`open`] gives
//! each the same connection settings.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// How long a statement waits for another connection's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per file pool: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

/// A database that could not be opened or brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the directory for {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open SQLite database {path}: {source}")]
    Connect { path: String, source: sqlx::Error },
    #[error("cannot migrate SQLite database {path}: {source}")]
    Migrate { path: String, source: MigrateError },
}

/// Opens the SQLite file at `path` (creating it and its directory if
/// missing) with WAL journaling, a busy timeout and foreign keys on, then
/// applies `migrator`'s pending migrations.
pub async fn open(path: &Path, migrator: &Migrator) -> Result<SqlitePool, OpenError> {
    let shown = path.display().to_string();
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| OpenError::CreateDir {
                path: shown.clone(),
                source,
            })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect {
            path: shown.clone(),
            source,
        })?;
    migrate(&pool, migrator, shown).await
}

/// An in-memory database with `migrator` applied, for tests. It lives on one
/// connection that is never recycled (each SQLite connection to `:memory:`
/// is a separate database), so it vanishes when the pool is dropped.
pub async fn open_in_memory(migrator: &Migrator) -> Result<SqlitePool, OpenError> {
    let shown = ":memory:".to_owned();
    let options = SqliteConnectOptions::new()
        .in_memory(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect {
            path: shown.clone(),
            source,
        })?;
    migrate(&pool, migrator, shown).await
}

async fn migrate(
    pool: &SqlitePool,
    migrator: &Migrator,
    path: String,
) -> Result<SqlitePool, OpenError> {
    migrator
        .run(pool)
        .await
        .map_err(|source| OpenError::Migrate { path, source })?;
    Ok(pool.clone())
}
