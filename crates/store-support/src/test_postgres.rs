//! A fresh Postgres database for each test, dropped when the test ends;
//! shared by the Postgres stores' tests (usage, control).
//!
//! The server comes from `TOLLGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`). A server that cannot be reached
//! fails the test: nothing here skips.

// A test helper: what it cannot set up fails the test that asked for it.
#![allow(clippy::expect_used)]

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

const URL_VARIABLE: &str = "TOLLGATE_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// One test's database, `tollgate_test_<unique id>`. Dropping it drops the
/// database (best effort, closing the connections still open to it).
pub struct TestDatabase {
    name: String,
    server: PgConnectOptions,
}

impl TestDatabase {
    /// Creates the database from the server's `postgres` database. Its
    /// default collation is ICU `en-US` (as on most managed servers), not
    /// the byte order the usage store has to give, so tests catch a query
    /// that sorts by the database default. ICU databases need Postgres 15.
    pub async fn create() -> Self {
        let url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let server = url
            .parse::<PgConnectOptions>()
            .expect("TOLLGATE_TEST_POSTGRES_URL is not a Postgres URL")
            .database("postgres");
        // Only the generated id (lowercase hex) reaches the SQL text.
        let name = format!("tollgate_test_{}", tollgate_core::ids::request_id());
        let mut admin = server.connect().await.unwrap_or_else(|error| {
            panic!("the Postgres store tests need Postgres at {url} (or {URL_VARIABLE}): {error}")
        });
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        ))
        .execute(&mut admin)
        .await
        .expect("create the test database");
        admin.close().await.ok();
        Self { name, server }
    }

    /// Connection options for this database.
    pub fn options(&self) -> PgConnectOptions {
        self.server.clone().database(&self.name)
    }

    /// The `postgres://` URL of this database.
    pub fn url(&self) -> String {
        self.options().to_url_lossy().to_string()
    }

    /// A small pool of its own on this database.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(3)
            .connect_with(self.options())
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let server = self.server.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // use a runtime of our own on another thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = server.connect().await.ok()?;
                sqlx::raw_sql(&drop_sql).execute(&mut admin).await.ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
