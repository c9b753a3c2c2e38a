//! With `--redis-url`: quota counters in Redis (two `tollgate all`
//! processes sharing one data directory, so the same accounts, and one key
//! prefix never admit more than an account's daily cap between them), and
//! usage events through the Redis Stream into the usage API.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn two_gateways_share_one_daily_cap_through_redis() {
    let prefix = RedisPrefix::new("e2e");
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let flags = ["--redis-url", REDIS, "--redis-prefix", &prefix.0];
    let first = Gateway::all_with(dir.path(), &flags).await;
    first
        .account(json!({
            "provider": "openai_compatible",
            "name": "shared-cap",
            "secret": "sk-shared",
            "base_url": base_url,
            "models": ["capped-model"],
            "daily_token_limit": 400,
        }))
        .await;
    let key = first.key(json!({"name": "shared"})).await;
    // Same data directory: same accounts, keys and master key.
    let second = Gateway::all_with(dir.path(), &flags).await;

    let mut request = user("capped-model", "count these words please");
    request["max_tokens"] = json!(10);
    let mut tasks = Vec::new();
    for gateway in [&first, &second] {
        for _ in 0..4 {
            let public = gateway.public.clone();
            let key = key.clone();
            let request = request.clone();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut admitted, mut refused) = (0u64, 0u32);
                while refused < 3 {
                    let response = client
                        .post(format!("{public}/v1/chat/completions"))
                        .bearer_auth(&key)
                        .json(&request)
                        .send()
                        .await
                        .unwrap();
                    match response.status().as_u16() {
                        200 => {
                            let body: Value = response.json().await.unwrap();
                            admitted += body["usage"]["total_tokens"].as_u64().unwrap();
                        }
                        429 => refused += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                admitted
            }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert!(
        admitted <= 400,
        "admitted {admitted} tokens past a cap of 400"
    );
    assert!(admitted >= 300, "admitted only {admitted} of 400 tokens");
}

#[tokio::test]
async fn usage_goes_through_the_redis_stream_into_the_usage_api() {
    let prefix = RedisPrefix::new("e2e");
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--redis-url", REDIS, "--redis-prefix", &prefix.0];
    let gateway = Gateway::all_with(dir.path(), &flags).await;
    let key = gateway.key(json!({"name": "streamed"})).await;

    let mut tokens_seen = 0;
    for i in 0..5 {
        let response = gateway
            .chat(&key, user("mock-echo", &format!("request number {i}")))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        tokens_seen += body["usage"]["total_tokens"].as_u64().unwrap();
    }

    // The events were appended to the stream, read by the analytics
    // consumer group, stored, and acknowledged.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let rows = loop {
        let report = gateway.admin_get("/admin/v1/usage?group_by=key").await;
        let rows = report["rows"].as_array().unwrap().clone();
        let requests: u64 = rows
            .iter()
            .map(|row| row["requests"].as_u64().unwrap())
            .sum();
        if requests >= 5 {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never showed 5 requests: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["requests"], 5);
    assert_eq!(rows[0]["total_tokens"].as_u64().unwrap(), tokens_seen);

    let client = redis::Client::open(REDIS).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let stream = prefix.stream();
    let length: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(length, 5);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("analytics")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pending.first(), Some(&redis::Value::Int(0)));
}
