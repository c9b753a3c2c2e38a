//! `tollgate all --database-url`: usage events stored in Postgres (each
//! test in a database of its own on the local server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::*;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh database, dropped when the test ends.
struct Database {
    name: String,
}

impl Database {
    async fn create() -> Database {
        let name = format!("tollgate_e2e_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&format!("{SERVER}/postgres"))
            .await
            .expect("Postgres must be running on 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Database { name }
    }

    fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort, on a runtime of its own: the test's runtime is
        // shutting down when this runs.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) =
                    sqlx::PgConnection::connect(&format!("{SERVER}/postgres")).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn usage_lands_in_postgres() {
    let database = Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url();
    let gateway = Gateway::all_with(dir.path(), &["--database-url", &url]).await;
    let key = gateway.key(json!({"name": "pg"})).await;

    let body: Value = gateway
        .chat(&key, user("mock-echo", "stored in postgres"))
        .await
        .json()
        .await
        .unwrap();
    let total = body["usage"]["total_tokens"].as_u64().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let usage = gateway.admin_get("/admin/v1/usage?group_by=model").await;
        let row = usage["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["group"] == "mock-echo")
            .cloned();
        if let Some(row) = row {
            assert_eq!(row["total_tokens"].as_u64().unwrap(), total, "{row}");
            break;
        }
        assert!(Instant::now() < deadline, "usage never arrived: {usage}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let (rows, tokens): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage_events",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(u64::try_from(tokens).unwrap(), total);
    assert!(!gateway.data_dir.join("usage.db").exists());
}
