//! The control conformance suite and the Postgres-only behaviour (schema of
//! its own, sealed secrets at rest, audit log), each test on a fresh
//! database of the real server.

use secrecy::ExposeSecret;
use sqlx::Row;
use tollgate_core::Provider;
use tollgate_store_support::test_postgres::TestDatabase;
use tollgate_usage_store::PgUsageStore;

use super::conformance::control_conformance_tests;
use super::{AccountPatch, ControlStore, NewAccount, NewKey, PgControlStore};
use crate::crypto::{MasterKey, SecretBox};

async fn fresh_store() -> (TestDatabase, PgControlStore) {
    let database = TestDatabase::create().await;
    let store = PgControlStore::from_pool(database.pool().await)
        .await
        .expect("migrate the control schema");
    (database, store)
}

control_conformance_tests!(fresh_store);

const PLAINTEXT: &str = "sk-live-very-secret-0123456789";

#[tokio::test]
async fn sealed_secret_column_never_holds_the_plaintext() {
    let (_database, store) = fresh_store().await;
    let secrets = SecretBox::new(&MasterKey::generate().unwrap());
    let account = store
        .insert_account(NewAccount {
            sealed_secret: Some(secrets.seal(PLAINTEXT).unwrap()),
            ..NewAccount::new(Provider::OpenAi, "sealed")
        })
        .await
        .unwrap();
    let rotated = format!("{PLAINTEXT}-rotated");
    store
        .update_account(
            &account.id,
            AccountPatch {
                sealed_secret: Some(Some(secrets.seal(&rotated).unwrap())),
                ..AccountPatch::default()
            },
        )
        .await
        .unwrap();

    let row = sqlx::query(
        "SELECT secret_sealed, row_to_json(a)::text AS whole FROM control.accounts a WHERE id = $1",
    )
    .bind(&account.id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let stored: String = row.get("secret_sealed");
    let whole: String = row.get("whole");
    assert!(!stored.contains("very-secret"), "{stored}");
    assert!(!whole.contains("very-secret"), "{whole}");
    assert!(stored.starts_with("v1:"), "{stored}");
    assert_eq!(secrets.open(&stored).unwrap().expose_secret(), rotated);
}

#[tokio::test]
async fn tables_and_history_live_in_the_control_schema() {
    let (database, store) = fresh_store().await;
    // The usage store migrates the same database with its own history.
    let usage = PgUsageStore::from_pool(database.pool().await)
        .await
        .unwrap();
    let again = PgControlStore::connect(&database.url()).await.unwrap();
    store.insert_key(key("k1")).await.unwrap();
    assert_eq!(again.list_keys().await.unwrap().len(), 1);

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'control' ORDER BY table_name COLLATE \"C\"",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "accounts",
            "audit_log",
            "keys",
            "profiles",
            "routes"
        ]
    );
    usage.close().await;
    again.close().await;
}

fn key(hash: &str) -> NewKey {
    NewKey {
        name: "audit".into(),
        key_hash: hash.into(),
        prefix: "tg-abcd".into(),
        last4: "wxyz".into(),
        profile: "default".into(),
        profiles: Vec::new(),
        models: Vec::new(),
        rpm: None,
        tpm: None,
        daily_token_budget: None,
        monthly_budget_micro_usd: None,
        expires_at: None,
        enabled: true,
    }
}
