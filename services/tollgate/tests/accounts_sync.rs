//! `POST /admin/v1/accounts/sync` end to end, with the local Redis and
//! Postgres: the quota counters lose their writes (their Redis keys are
//! deleted, as a flush would), and reconciliation brings each account's
//! and each client key's tokens used today back to what the usage store
//! recorded, which is what the clients were told.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// The counters of a prefix live under `{prefix}` (the Redis Cluster hash
/// tag), apart from the usage stream under the bare prefix.
fn counter_pattern(prefix: &RedisPrefix) -> String {
    format!("{{{}}}*", prefix.0)
}

/// Deletes every counter key of the prefix (leases, account hashes, day
/// counters); returns how many there were.
async fn flush_counters(prefix: &RedisPrefix) -> usize {
    let mut redis = redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(counter_pattern(prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    keys.len()
}

/// The counter keys are outside the prefix the shared guard deletes.
struct CounterKeys<'a>(&'a RedisPrefix);

impl Drop for CounterKeys<'_> {
    fn drop(&mut self) {
        let Ok(mut connection) =
            redis::Client::open(REDIS).and_then(|client| client.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(counter_pattern(self.0))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// Tokens used today per account, as the admin API lists them.
async fn used_today(gateway: &Gateway) -> Vec<(String, u64)> {
    let list = gateway.admin_get("/admin/v1/accounts").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| {
            (
                account["id"].as_str().unwrap().to_owned(),
                account["tokens_used_today"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits until the usage store holds `tokens` for `account`.
async fn wait_for_stored_tokens(gateway: &Gateway, account: &str, tokens: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let usage = gateway.admin_get("/admin/v1/usage?group_by=account").await;
        let stored = usage["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["group"] == account)
            .map(|row| row["total_tokens"].as_u64().unwrap())
            .sum::<u64>();
        if stored == tokens {
            return;
        }
        assert!(stored < tokens, "{stored} tokens stored, {tokens} served");
        assert!(
            Instant::now() < deadline,
            "usage never caught up: {stored} of {tokens} tokens stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The key's daily token budget.
const BUDGET: u64 = 1_000_000;

/// A request whose reservation is just over what `used` leaves of
/// [`BUDGET`]: the key's daily budget refuses it while its day counter
/// holds `used`, and admits it while the counter holds much less.
fn just_over_the_budget(used: u64) -> Value {
    let mut body = user("mock-echo", "over");
    body["max_tokens"] = json!(BUDGET - used);
    body
}

async fn sync(gateway: &Gateway) -> Value {
    gateway
        .admin_post("/admin/v1/accounts/sync", json!({}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_restores_flushed_counters_from_the_usage_store() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("sync");
    let _counters = CounterKeys(&prefix);
    let database = Database::create("sync").await;
    let url = database.url();
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &url, &[]).await;
    let created = gateway
        .admin_post(
            "/admin/v1/keys",
            json!({"name": "sync", "daily_token_budget": BUDGET}),
        )
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();

    let mut served = 0;
    for n in 0..12 {
        let text = vec!["token"; 1 + n * 3].join(" ");
        let response = gateway.chat(&key, user("mock-echo", &text)).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        served += body["usage"]["total_tokens"].as_u64().unwrap();
    }
    // The router answers before it settles, and records the usage event
    // after: once the event is stored, the counter is settled too.
    let counters = used_today(&gateway).await;
    let [(account, _)] = &counters[..] else {
        panic!("expected the one mock account: {counters:?}");
    };
    wait_for_stored_tokens(&gateway, account, served).await;
    assert_eq!(used_today(&gateway).await, [(account.clone(), served)]);

    assert!(flush_counters(&prefix).await > 0, "no counter keys found");
    assert_eq!(used_today(&gateway).await, [(account.clone(), 0)]);

    let first = sync(&gateway).await;
    assert_eq!(first["changed"], 1, "{first}");
    assert_eq!(
        first["data"],
        json!([{
            "account_id": account, "counter_before": 0, "recomputed": served,
            "counter_after": served, "changed": true
        }])
    );
    assert_eq!(first["keys_changed"], 1, "{first}");
    assert_eq!(
        first["keys"],
        json!([{
            "key_id": key_id, "counter_before": 0, "recomputed": served,
            "counter_after": served, "changed": true
        }])
    );
    assert_eq!(used_today(&gateway).await, [(account.clone(), served)]);
    let audit = gateway.admin_get("/admin/v1/audit").await;
    let mut synced: Vec<(&str, &str, u64)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "sync_usage")
        .map(|entry| {
            (
                entry["object"].as_str().unwrap(),
                entry["object_id"].as_str().unwrap(),
                entry["summary"]["counter_after"].as_u64().unwrap(),
            )
        })
        .collect();
    synced.sort_unstable();
    assert_eq!(
        synced,
        [
            ("account", account.as_str(), served),
            ("key", key_id.as_str(), served)
        ],
        "{audit}"
    );

    // The counter keeps counting from the restored total.
    let response = gateway.chat(&key, user("mock-echo", "one more")).await;
    let body: Value = response.json().await.unwrap();
    let total = served + body["usage"]["total_tokens"].as_u64().unwrap();
    wait_for_stored_tokens(&gateway, account, total).await;
    assert_eq!(used_today(&gateway).await, [(account.clone(), total)]);

    // Nothing left to repair, and the CLI says so.
    let second = sync(&gateway).await;
    assert_eq!(second["changed"], 0, "{second}");
    assert_eq!(second["data"][0]["counter_before"], total);
    assert_eq!(second["data"][0]["recomputed"], total);
    assert_eq!(second["keys_changed"], 0, "{second}");
    assert_eq!(second["keys"][0]["counter_before"], total);
    let output = Command::new(binary())
        .args(["admin", "--url", &gateway.admin, "--token", ADMIN_TOKEN])
        .args(["accounts", "sync"])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{output:?}");
    assert!(
        stdout.contains("0 of 1 account counters raised"),
        "{stdout}"
    );
    assert!(stdout.contains(account.as_str()), "{stdout}");
    assert!(stdout.contains("0 of 1 key counters raised"), "{stdout}");
    assert!(stdout.contains(key_id.as_str()), "{stdout}");

    // The key's restored day counter holds its daily budget: a request
    // reserving just over what is left is refused. Had only the request
    // since the flush been counted, it would pass.
    let refused = gateway.chat(&key, just_over_the_budget(total)).await;
    assert_eq!(refused.status(), 429);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily token budget"),
        "{error}"
    );
}

/// The stored cost per client key, once the usage store holds `requests`.
async fn stored_cost(gateway: &Gateway, requests: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let usage = gateway.admin_get("/admin/v1/usage?group_by=key").await;
        let rows = usage["rows"].as_array().unwrap();
        let stored: u64 = rows
            .iter()
            .map(|row| row["requests"].as_u64().unwrap())
            .sum();
        if stored == requests {
            let micro = |row: &Value| (row["cost_usd"].as_f64().unwrap() * 1e6).round() as u64;
            return rows.iter().map(micro).sum();
        }
        assert!(Instant::now() < deadline, "usage never caught up: {usage}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_restores_a_keys_monthly_spend_and_its_budget_holds_again() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("spend");
    let _counters = CounterKeys(&prefix);
    let database = Database::create("spend").await;
    let url = database.url();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &url, &[]).await;
    // A priced model: every answer costs something.
    gateway
        .account(json!({
            "provider": "openai_compatible",
            "name": "priced",
            "secret": "sk-priced",
            "base_url": base_url,
            "models": ["gpt-4o-mini"],
        }))
        .await;
    let created = gateway
        .admin_post("/admin/v1/keys", json!({"name": "spender"}))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    for n in 0..3 {
        let text = format!("what does answer {n} cost");
        let response = gateway.chat(&key, user("gpt-4o-mini", &text)).await;
        assert_eq!(response.status(), 200);
    }
    let cost = stored_cost(&gateway, 3).await;
    assert!(cost > 0);
    // A budget of exactly what was spent: refused from now on.
    let response = reqwest::Client::new()
        .patch(format!("{}/admin/v1/keys/{key_id}", gateway.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"monthly_budget_usd": cost as f64 / 1_000_000.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // The spend was counted before the key had a budget only if it had a
    // limit then; sync brings the month's spend in either way.
    sync(&gateway).await;
    let refused = gateway.chat(&key, user("gpt-4o-mini", "one more")).await;
    assert_eq!(refused.status(), 429);

    // The counters lose their writes: the budget would let the key spend
    // again, until sync restores the month's spend from the usage store.
    flush_counters(&prefix).await;
    let report = sync(&gateway).await;
    assert_eq!(report["key_spend_changed"], 1, "{report}");
    assert_eq!(
        report["key_spend"],
        json!([{
            "key_id": key_id, "counter_before": 0, "recomputed": cost,
            "counter_after": cost, "changed": true
        }])
    );
    let refused = gateway.chat(&key, user("gpt-4o-mini", "and this")).await;
    assert_eq!(refused.status(), 429);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("monthly budget"),
        "{error}"
    );
    let again = sync(&gateway).await;
    assert_eq!(again["key_spend_changed"], 0, "{again}");
}
