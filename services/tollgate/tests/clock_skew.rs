//! Two `tollgate all` processes share one Redis prefix while their own
//! clocks are a day off, one behind and one ahead
//! (`TOLLGATE_CLOCK_SKEW_MS`). Quota decides by the Redis server's clock:
//! the replica ahead does not expire a lease the one behind holds, and
//! both charge the same UTC day, the server's.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Past the lease TTL below, and past the UTC day.
const SKEW_MS: i64 = 25 * 3_600_000;
const ROOM: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_a_day_apart_keep_each_others_leases_and_one_day() {
    let prefix = RedisPrefix::new("skew");
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, "lease_ttl_secs: 60\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let flags = [
        "--config",
        &config,
        "--redis-url",
        REDIS,
        "--redis-prefix",
        &prefix.0,
    ];
    let behind_skew = (-SKEW_MS).to_string();
    let behind = Gateway::all_with_env(
        dir.path(),
        &flags,
        &[("TOLLGATE_CLOCK_SKEW_MS", &behind_skew)],
    )
    .await;
    let account = behind
        .account(json!({
            "provider": "openai_compatible",
            "name": "shared",
            "secret": "sk-shared",
            "base_url": base_url,
            "models": ["skew-model"],
            "daily_token_limit": ROOM,
        }))
        .await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    let key = behind.key(json!({"name": "skewed"})).await;
    // The same data directory: the same account and key.
    let ahead_skew = SKEW_MS.to_string();
    let ahead = Gateway::all_with_env(
        dir.path(),
        &flags,
        &[("TOLLGATE_CLOCK_SKEW_MS", &ahead_skew)],
    )
    .await;

    // A slow stream through the replica behind holds the whole room (it
    // sets no cap): by the clock of the replica ahead, its lease expired a
    // day ago.
    let mut slow = user("skew-model", "slowly [[mock:chunks=6,chunk_delay_ms=300]]");
    slow["stream"] = json!(true);
    let stream = tokio::spawn({
        let url = format!("{}/v1/chat/completions", behind.public);
        let key = key.clone();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&slow)
                .send()
                .await
                .unwrap();
            response.text().await.unwrap()
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = ahead.account_stats(&account_id).await;
        if stats["tokens_reserved"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every request through the replica ahead sweeps expired leases first:
    // none is, so there is no room for it.
    let refused = ahead.chat(&key, user("skew-model", "now?")).await;
    assert_eq!(refused.status(), 429, "{}", refused.text().await.unwrap());
    let text = stream.await.unwrap();
    assert!(text.contains("data: [DONE]"), "{text}");

    // Once it settled, the replica ahead serves, and both charged one day:
    // the Redis server's today.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let served = loop {
        let response = ahead.chat(&key, user("skew-model", "now")).await;
        if response.status() == 200 {
            break response.json::<Value>().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stats = behind.account_stats(&account_id).await;
    let used = stats["tokens_used_today"].as_u64().unwrap();
    assert!(used > served["usage"]["total_tokens"].as_u64().unwrap());
    let client = redis::Client::open(REDIS).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let (seconds, _): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .unwrap();
    let today = seconds.div_euclid(86_400);
    let counter: Option<u64> = redis::cmd("GET")
        .arg(format!("{{{}}}used:{today}:{account_id}", prefix.0))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(counter, Some(used));
}
