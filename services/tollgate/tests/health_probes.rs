//! Active health probes, end to end: `tollgate all` on Redis and Postgres
//! with a one-second probe interval. Two accounts whose upstream refuses
//! connections get their circuits opened for ten minutes; once their
//! upstream is back, the one that opted in to probes is put back in
//! service by a probe, the other stays out until its backoff ends.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

async fn account_state(gateway: &Gateway, id: &str) -> Value {
    gateway.admin_get(&format!("/admin/v1/accounts/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_puts_a_recovered_account_back_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("probes");
    let database = Database::create("probes").await;
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let refused_url = format!("http://127.0.0.1:{}/v1", free_port());
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(
        &config,
        "failure_threshold: 1\nfailure_cooldown_secs: 600\nhealth_probe_interval_secs: 1\n",
    )
    .unwrap();
    let database_url = database.url();
    let config_arg = config.to_string_lossy().into_owned();
    let config_flags = ["--config", &config_arg];
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &database_url, &config_flags).await;
    let key = gateway.key(json!({"name": "prober"})).await;

    let mut ids = Vec::new();
    for (name, health_probe) in [("probed", true), ("left-alone", false)] {
        let model = format!("m-{name}");
        let account = gateway
            .account(json!({
                "provider": "openai_compatible",
                "name": name,
                "secret": format!("sk-{name}"),
                "base_url": refused_url,
                "models": [model],
                "health_probe": health_probe,
            }))
            .await;
        assert_eq!(account["health_probe"], health_probe);
        let id = account["id"].as_str().unwrap().to_owned();
        let response = gateway.chat(&key, user(&model, "hello")).await;
        assert!(response.status().is_server_error(), "{}", response.status());
        let failed = account_state(&gateway, &id).await;
        assert_eq!(failed["state"], "circuit_open", "{failed}");
        assert_eq!(failed["last_error"], "server_error", "{failed}");
        ids.push(id);
    }
    // While the upstream still refuses, probes fail and change nothing.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let still = account_state(&gateway, &ids[0]).await;
    assert_eq!(still["state"], "circuit_open", "{still}");
    assert!(still["errors_today"].as_u64().unwrap() >= 2, "{still}");

    for id in &ids {
        gateway
            .admin_patch(
                &format!("/admin/v1/accounts/{id}"),
                json!({"base_url": base_url}),
            )
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let probed = loop {
        let account = account_state(&gateway, &ids[0]).await;
        if account["state"] == "ok" {
            break account;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never probed back: {account}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(probed["circuit_open_until"], Value::Null, "{probed}");
    assert_eq!(probed["successes_today"], 1, "{probed}");
    // The audit record is written just after the reset it records.
    loop {
        let audit = gateway.admin_get("/admin/v1/audit?limit=20").await;
        if audit.to_string().contains("health_probe") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reset is audited: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Clients are served by it again; the account that did not opt in is
    // still out.
    let response = gateway.chat(&key, user("m-probed", "back")).await;
    assert_eq!(response.status(), 200);
    let alone = account_state(&gateway, &ids[1]).await;
    assert_eq!(alone["state"], "circuit_open", "{alone}");
    assert_eq!(alone["successes_today"], 0, "{alone}");
}
