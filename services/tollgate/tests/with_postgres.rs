//! `tollgate all --database-url`: usage events stored in Postgres (each
//! test in a database of its own on the local server).

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::*;

#[tokio::test]
async fn usage_lands_in_postgres() {
    let database = Database::create("e2e").await;
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

/// A master key (base64 of 32 bytes) both gateways share.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const UPSTREAM_SECRET: &str = "sk-upstream-only-in-postgres-7f3a";

#[tokio::test]
async fn control_data_lives_in_postgres_and_survives_a_new_data_dir() {
    let database = Database::create("e2e").await;
    let url = database.url();
    let first_dir = tempfile::tempdir().unwrap();
    // The upstream refuses any other credential, so a served request proves
    // the sealed secret opened.
    let mut upstream = Process::start(
        "mock-upstream-keyed",
        first_dir.path(),
        &[
            "mock-upstream",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            UPSTREAM_SECRET,
        ],
        &[],
    );
    let line = wait_for_log(&mut upstream, "mock upstream listening").await;
    let base_url = format!("http://{}/v1", log_field(&line, "addr"));
    let env = [("TOLLGATE_MASTER_KEY", MASTER_KEY)];
    let flags = ["--database-url", url.as_str()];

    let first = Gateway::all_with_env(first_dir.path(), &flags, &env).await;
    let account = first
        .account(json!({
            "provider": "openai_compatible",
            "name": "pg-upstream",
            "secret": UPSTREAM_SECRET,
            "base_url": base_url,
            "models": ["pg-model"],
        }))
        .await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    let key = first.key(json!({"name": "pg-key"})).await;
    let served = first.chat(&key, user("pg-model", "before restart")).await;
    assert_eq!(served.status(), 200);
    assert!(!first.data_dir.join("control.db").exists());

    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let hash = tollgate_core::apikey::KeyHash::of(&key);
    let (name,): (String,) = sqlx::query_as("SELECT name FROM control.keys WHERE key_hash = $1")
        .bind(hash.as_str())
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(name, "pg-key");
    let (sealed, whole): (String, String) = sqlx::query_as(
        "SELECT secret_sealed, row_to_json(a)::text FROM control.accounts a WHERE id = $1",
    )
    .bind(&account_id)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert!(sealed.starts_with("v1:"), "{sealed}");
    assert!(!whole.contains(UPSTREAM_SECRET), "{whole}");
    let keys_before: i64 = sqlx::query_scalar("SELECT count(*) FROM control.keys")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    drop(first);

    let second_dir = tempfile::tempdir().unwrap();
    let second = Gateway::all_with_env(second_dir.path(), &flags, &env).await;
    assert!(!second.data_dir.join("control.db").exists());
    let fetched = second
        .admin_get(&format!("/admin/v1/accounts/{account_id}"))
        .await;
    assert_eq!(fetched["name"], "pg-upstream", "{fetched}");
    let response = second.chat(&key, user("pg-model", "after restart")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-tollgate-provider"],
        "openai_compatible"
    );
    // The store was not empty, so no second dev key was created.
    let keys_after: i64 = sqlx::query_scalar("SELECT count(*) FROM control.keys")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys_after, keys_before);
}
