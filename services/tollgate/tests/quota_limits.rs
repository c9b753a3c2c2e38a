//! Quota limits end to end, through real `tollgate all` processes and the
//! mock upstream: a key's monthly USD budget, the `x-ratelimit-*` headers
//! on a `quota_exhausted` 429, and daily caps held exactly by three
//! gateways sharing one Redis prefix.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// A gateway with one account on the mock upstream serving `models`,
/// limited to `daily_token_limit` tokens a day when given.
async fn gateway_serving(
    dir: &std::path::Path,
    models: &[&str],
    daily_token_limit: Option<u64>,
) -> (Gateway, Process) {
    let (upstream, base_url) = mock_upstream(dir, &[]).await;
    let gateway = Gateway::all(dir).await;
    gateway
        .account(json!({
            "provider": "openai_compatible",
            "name": "priced",
            "secret": "sk-priced",
            "base_url": base_url,
            "models": models,
            "daily_token_limit": daily_token_limit,
        }))
        .await;
    (gateway, upstream)
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn a_key_is_refused_once_its_monthly_budget_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    // gpt-4o-mini is in the price table: every answer costs something.
    let (gateway, _upstream) = gateway_serving(dir.path(), &["gpt-4o-mini"], None).await;
    let key = gateway
        .key(json!({"name": "tiny-budget", "monthly_budget_usd": 0.000001}))
        .await;

    let first = gateway
        .chat(&key, user("gpt-4o-mini", "what does this cost"))
        .await;
    assert_eq!(first.status(), 200);
    first.bytes().await.unwrap();

    // The router settles (and charges the cost) after answering; the
    // usage event follows the settle, so once it is stored the spend is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let report = gateway.admin_get("/admin/v1/usage?group_by=key").await;
        let requests: u64 = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["requests"].as_u64().unwrap())
            .sum();
        if requests >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no usage: {report}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let refused = gateway
        .chat(&key, user("gpt-4o-mini", "and this one"))
        .await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    // The start of the next UTC month: at most 31 days away.
    assert!((1..=31 * 86_400).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(
        body["error"]["message"],
        "this API key's monthly budget of $0.000001 is spent; retry next month"
    );

    // Another key is not affected.
    let other = gateway.key(json!({"name": "other"})).await;
    let served = gateway
        .chat(&other, user("gpt-4o-mini", "still fine"))
        .await;
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn a_limited_key_gets_its_rate_limits_on_quota_exhausted_too() {
    let dir = tempfile::tempdir().unwrap();
    // An account whose whole day is smaller than any request.
    let (gateway, _upstream) = gateway_serving(dir.path(), &["small-model"], Some(5)).await;
    let key = gateway
        .key(json!({"name": "paced", "rpm": 5, "tpm": 50000}))
        .await;

    let refused = gateway
        .chat(&key, user("small-model", "too big for the account"))
        .await;
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").is_some());
    // Nothing was recorded on the key: its whole minute is left.
    let expected = [
        ("x-ratelimit-limit-requests", "5"),
        ("x-ratelimit-remaining-requests", "5"),
        ("x-ratelimit-reset-requests", "0s"),
        ("x-ratelimit-limit-tokens", "50000"),
        ("x-ratelimit-remaining-tokens", "50000"),
        ("x-ratelimit-reset-tokens", "0s"),
    ];
    for (name, value) in expected {
        assert_eq!(header(&refused, name), Some(value), "{name}");
    }
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exhausted", "{body}");
}

/// One account of the exactness test: its id and daily cap.
struct Capped {
    id: String,
    limit: u64,
}

/// Sends `request` with `key` through `public` until a refusal says every
/// account is spent for the day (a Retry-After beyond the 1 s of
/// reservations in flight); returns the tokens the answers used.
async fn drain(public: String, key: String, request: Value) -> u64 {
    let client = reqwest::Client::new();
    let mut admitted = 0;
    loop {
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
            429 => {
                let retry_after: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "quota_exhausted", "{body}");
                if retry_after > 1 {
                    return admitted;
                }
                // Only open reservations stood in the way: they settle soon.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
}

#[tokio::test]
async fn three_gateways_sharing_redis_admit_exactly_up_to_each_cap() {
    // A cap reached within a minute of 00:00 UTC could reset mid-test.
    let to_midnight = 86_400_000 - tollgate_core::clock::now_ms().rem_euclid(86_400_000);
    if to_midnight < 60_000 {
        tokio::time::sleep(Duration::from_millis(
            u64::try_from(to_midnight).unwrap() + 1_000,
        ))
        .await;
    }
    let prefix = RedisPrefix::new("e2e");
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let flags = ["--redis-url", REDIS, "--redis-prefix", &prefix.0];
    let first = Gateway::all_with(dir.path(), &flags).await;
    let mut accounts = Vec::new();
    for (name, limit) in [("cap-a", 300), ("cap-b", 500), ("cap-c", 700)] {
        let created = first
            .account(json!({
                "provider": "openai_compatible",
                "name": name,
                "secret": "sk-capped",
                "base_url": base_url,
                "models": ["capped-model"],
                "daily_token_limit": limit,
            }))
            .await;
        accounts.push(Capped {
            id: created["id"].as_str().unwrap().to_owned(),
            limit,
        });
    }
    let key = first.key(json!({"name": "shared"})).await;
    // The same data directory: the same accounts, keys and master key.
    let second = Gateway::all_with(dir.path(), &flags).await;
    let third = Gateway::all_with(dir.path(), &flags).await;

    let mut request = user("capped-model", "count these words please");
    request["max_tokens"] = json!(10);
    let probe = first.chat(&key, request.clone()).await;
    assert_eq!(probe.status(), 200);
    let probe: Value = probe.json().await.unwrap();
    let mut answered = probe["usage"]["total_tokens"].as_u64().unwrap();
    // What each request reserves: the prompt estimate plus max_tokens.
    let reservation = probe["usage"]["prompt_tokens"].as_u64().unwrap() + 10;

    let mut tasks = Vec::new();
    for gateway in [&first, &second, &third] {
        for _ in 0..4 {
            let drained = drain(gateway.public.clone(), key.clone(), request.clone());
            tasks.push(tokio::spawn(drained));
        }
    }
    for task in tasks {
        answered += task.await.unwrap();
    }

    // Once every lease settled, the counters hold exactly what was
    // answered, no account passed its cap, and none has room left for
    // the request that was refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let used: HashMap<String, u64> = loop {
        let mut used = HashMap::new();
        let mut reserved = 0;
        for account in &accounts {
            let record = third
                .admin_get(&format!("/admin/v1/accounts/{}", account.id))
                .await;
            reserved += record["tokens_reserved"].as_u64().unwrap();
            used.insert(
                account.id.clone(),
                record["tokens_used_today"].as_u64().unwrap(),
            );
        }
        if reserved == 0 {
            break used;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservations never settled"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(used.values().sum::<u64>(), answered, "{used:?}");
    for account in &accounts {
        let used = used[&account.id];
        assert!(
            used <= account.limit,
            "{} used {used} of {}",
            account.id,
            account.limit
        );
        assert!(
            account.limit - used < reservation,
            "{} refused with {} of {} left for a request of {reservation}",
            account.id,
            account.limit - used,
            account.limit
        );
    }
}
