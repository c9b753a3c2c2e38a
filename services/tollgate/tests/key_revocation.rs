//! Key revocation pushed to every edge, end to end, with every edge caching
//! keys for five minutes: a key revoked through one edge's admin API is
//! refused by every edge within a second, although all had it cached. In
//! split mode (the five services of `scripts/split` plus a second edge
//! process, both subscribed to the one quota), and across two quota
//! replicas broadcasting through Redis (two `tollgate all`).

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// Polls every 50 ms, for up to a second, until `key` gets a 401 from the
/// gateway at `public`.
async fn refused_within_a_second(http: &reqwest::Client, public: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let status = chat_status(http, public, key).await;
        if status == 401 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{public} still answers {status} after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn chat_status(http: &reqwest::Client, public: &str, key: &str) -> u16 {
    http.post(format!("{public}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&user("mock-echo", "still allowed?"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_key_revoked_through_one_edge_is_refused_by_every_edge_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, "key_cache_ttl_secs: 300\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let (gateway, ports) =
        Gateway::split_with_env(dir.path(), &[("TOLLGATE_CONFIG", &config)]).await;

    let (router, quota, analytics) = (
        format!("127.0.0.1:{}", ports.router),
        format!("127.0.0.1:{}", ports.quota),
        format!("127.0.0.1:{}", ports.analytics),
    );
    let mut second = Process::start(
        "second-edge",
        dir.path(),
        &[
            "edge",
            "--config",
            &config,
            "--data-dir",
            &dir.path().join("second").to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--router-addr",
            &router,
            "--quota-addr",
            &quota,
            "--analytics-addr",
            &analytics,
        ],
        &[("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let second_public = format!("http://{}", start_all(&mut second).await.0);
    wait_ready(&format!("{second_public}/readyz"), &mut [&mut second]).await;

    // Both edges hold the invalidation stream before the key is cached.
    wait_for_log(&mut second, "watching key invalidations").await;
    let first_log = gateway.data_dir.join("logs/edge.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&first_log)
        .unwrap_or_default()
        .contains("watching key invalidations")
    {
        assert!(Instant::now() < deadline, "the first edge never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let created = gateway
        .admin_post("/admin/v1/keys", json!({"name": "revoked-soon"}))
        .await;
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let http = reqwest::Client::new();
    for public in [&gateway.public, &second_public] {
        assert_eq!(chat_status(&http, public, key).await, 200, "{public}");
    }

    let revoked = http
        .delete(format!("{}/admin/v1/keys/{id}", gateway.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    for public in [&gateway.public, &second_public] {
        refused_within_a_second(&http, public, key).await;
    }
}

#[tokio::test]
async fn a_key_revoked_through_one_quota_replica_is_refused_by_another_replicas_edge() {
    let prefix = RedisPrefix::new("revoke");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, "key_cache_ttl_secs: 300\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let flags = [
        "--redis-url",
        REDIS,
        "--redis-prefix",
        &prefix.0,
        "--config",
        &config,
    ];
    // Two `tollgate all` on one data directory: same keys, two quota
    // replicas, each edge subscribed to its own replica only.
    let mut first = Gateway::all_with(dir.path(), &flags).await;
    let mut second = Gateway::all_with(dir.path(), &flags).await;
    for gateway in [&mut first, &mut second] {
        let process = &mut gateway.processes[0];
        wait_for_log(process, "watching key invalidations").await;
        wait_for_log(process, "broadcasting key invalidations through Redis").await;
    }

    let created = first
        .admin_post("/admin/v1/keys", json!({"name": "revoked-elsewhere"}))
        .await;
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    let http = reqwest::Client::new();
    for public in [&first.public, &second.public] {
        assert_eq!(chat_status(&http, public, key).await, 200, "{public}");
    }
    let disabled = http
        .patch(format!("{}/admin/v1/keys/{id}", first.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    for public in [&first.public, &second.public] {
        refused_within_a_second(&http, public, key).await;
    }
}
