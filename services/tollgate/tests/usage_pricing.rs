//! Exact usage and its price end to end: requests answered by the built-in
//! `mock` provider report cache reads, cache writes and reasoning tokens
//! (`[[mock:…]]` directives), and the usage ledger (Postgres, through the
//! Redis usage stream), the admin usage API, the key's monthly spend and
//! the metrics all show exactly those counts and the model catalog's cost;
//! a model the catalog has no price for is recorded at cost 0, unpriced,
//! unless its account has prices of its own.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::*;

/// A dated snapshot the catalog prices as Claude Sonnet 4.5.
const PRICED: &str = "claude-sonnet-4-5-20250929";
/// A name the catalog does not know.
const UNPRICED: &str = "house-model";

/// Claude Sonnet 4.5 in micro-dollars per million tokens: input, cache
/// read, 5-minute cache write, 1-hour cache write, output.
const INPUT: u64 = 3_000_000;
const CACHE_READ: u64 = 300_000;
const CACHE_WRITE_5M: u64 = 3_750_000;
const CACHE_WRITE_1H: u64 = 6_000_000;
const OUTPUT: u64 = 15_000_000;

/// A prompt long enough to hold the cache counts the directives ask for.
fn prompt(directives: &str) -> String {
    format!(
        "[[mock:{directives}]] {}",
        "Tell me what this request costs, to the micro-dollar. ".repeat(8)
    )
}

/// Sends `body` with `key`; the request id and the usage the client saw.
async fn ask(gateway: &Gateway, key: &str, body: Value) -> (String, Value) {
    let response = gateway.chat(key, body).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    (request_id, body["usage"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_cache_written_and_reasoning_tokens_are_recorded_and_priced_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("pricing");
    let database = Database::create("pricing").await;
    let url = database.url();
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &url, &[]).await;
    for (name, model) in [("catalogued", PRICED), ("uncatalogued", UNPRICED)] {
        gateway
            .account(json!({"provider": "mock", "name": name, "models": [model]}))
            .await;
    }
    // A monthly budget makes quota count the key's spend at each settle.
    let created = gateway
        .admin_post(
            "/admin/v1/keys",
            json!({"name": "priced", "monthly_budget_usd": 100}),
        )
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();

    let directives = "cached_tokens=40,cache_write_5m_tokens=30,cache_write_1h_tokens=20,\
                      completion_tokens=50,reasoning_tokens=35";
    let (priced_id, usage) = ask(&gateway, &key, user(PRICED, &prompt(directives))).await;
    // The client sees OpenAI's usage object: reads and reasoning (OpenAI's
    // format has no field for cache writes).
    let prompt_tokens = usage["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens > 90, "{usage}");
    assert_eq!(usage["completion_tokens"], 50);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 40);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 35);

    let uncached = prompt_tokens - 40 - 30 - 20;
    let cost = (uncached * INPUT
        + 40 * CACHE_READ
        + 30 * CACHE_WRITE_5M
        + 20 * CACHE_WRITE_1H
        + 50 * OUTPUT
        + 500_000)
        / 1_000_000;
    let cost = i64::try_from(cost).unwrap();
    assert_eq!(
        ledger_row(&url, &priced_id).await,
        LedgerRow {
            prompt_tokens: i64::try_from(prompt_tokens).unwrap(),
            completion_tokens: 50,
            cached_tokens: 40,
            cache_write_5m_tokens: 30,
            cache_write_1h_tokens: 20,
            reasoning_tokens: 35,
            cost_micro_usd: cost,
            priced: true,
        }
    );

    // The same through a stream, whose usage arrives in its last chunk.
    let mut streamed = user(PRICED, &prompt(directives));
    streamed["stream"] = json!(true);
    let response = gateway.chat(&key, streamed).await;
    assert_eq!(response.status(), 200);
    let streamed_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _events = response.text().await.unwrap();
    assert_eq!(
        ledger_row(&url, &streamed_id).await,
        ledger_row(&url, &priced_id).await
    );

    // A model the catalog does not know: its tokens, no guessed cost.
    let (unpriced_id, usage) = ask(&gateway, &key, user(UNPRICED, "no price for me")).await;
    let row = ledger_row(&url, &unpriced_id).await;
    assert_eq!(
        u64::try_from(row.prompt_tokens + row.completion_tokens).unwrap(),
        usage["total_tokens"].as_u64().unwrap()
    );
    assert_eq!((row.cost_micro_usd, row.priced), (0, false));

    // The admin usage API: per model, the parts and the cost.
    let report = gateway.admin_get("/admin/v1/usage?group_by=model").await;
    let rows = report["rows"].as_array().unwrap();
    let of = |model: &str| rows.iter().find(|row| row["group"] == model).unwrap();
    let priced = of(PRICED);
    assert_eq!(priced["requests"], 2);
    assert_eq!(priced["prompt_tokens"], 2 * prompt_tokens);
    assert_eq!(priced["cached_tokens"], 80);
    assert_eq!(priced["cache_write_5m_tokens"], 60);
    assert_eq!(priced["cache_write_1h_tokens"], 40);
    assert_eq!(priced["reasoning_tokens"], 70);
    assert_eq!(priced["unpriced_requests"], 0);
    let cost_usd = |row: &Value| (row["cost_usd"].as_f64().unwrap() * 1e6).round() as i64;
    assert_eq!(cost_usd(priced), 2 * cost);
    let unpriced = of(UNPRICED);
    assert_eq!(
        (unpriced["requests"].as_u64(), cost_usd(unpriced)),
        (Some(1), 0)
    );
    assert_eq!(unpriced["unpriced_requests"], 1);

    // Settle charged the key's month the same cost: the quota counter
    // equals what the ledger recomputes.
    let sync = gateway
        .admin_post("/admin/v1/accounts/sync", json!({}))
        .await;
    let spend = sync["key_spend"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["key_id"] == key_id.as_str())
        .unwrap_or_else(|| panic!("{sync}"));
    assert_eq!(spend["counter_before"], 2 * cost, "{sync}");
    assert_eq!(spend["recomputed"], 2 * cost, "{sync}");

    // The metrics: the parts, and the request the catalog could not price.
    let metrics = reqwest::get(format!("{}/metrics", gateway.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        format!(
            "tollgate_token_details_total{{kind=\"reasoning\",model=\"{PRICED}\",provider=\"mock\",profile=\"default\"}} 70"
        ),
        format!(
            "tollgate_token_details_total{{kind=\"cache_write_1h\",model=\"{PRICED}\",provider=\"mock\",profile=\"default\"}} 40"
        ),
        format!("tollgate_unpriced_requests_total{{model=\"{UNPRICED}\",provider=\"mock\"}} 1"),
    ] {
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    assert!(!metrics.contains(&format!(
        "tollgate_unpriced_requests_total{{model=\"{PRICED}\""
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_own_prices_replace_the_catalogs() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = RedisPrefix::new("own-prices");
    let database = Database::create("own_prices").await;
    let url = database.url();
    let gateway = Gateway::all_on_stores(dir.path(), &prefix, &url, &[]).await;
    let created = gateway
        .account(
            json!({"provider": "mock", "name": "negotiated", "models": [UNPRICED],
            "prices": {"input": 1.25, "output": 5, "cached_input": 0.125}}),
        )
        .await;
    assert_eq!(
        created["prices"],
        json!({"input": 1.25, "output": 5.0, "cached_input": 0.125})
    );
    let key = gateway.key(json!({"name": "own-prices"})).await;

    let text = prompt("cached_tokens=40,completion_tokens=20,reasoning_tokens=5");
    let (request_id, usage) = ask(&gateway, &key, user(UNPRICED, &text)).await;
    let prompt_tokens = usage["prompt_tokens"].as_u64().unwrap();
    // (prompt - 40) x 1.25 + 40 x 0.125 + 20 x 5 dollars per million.
    let cost =
        ((prompt_tokens - 40) * 1_250_000 + 40 * 125_000 + 20 * 5_000_000 + 500_000) / 1_000_000;
    let row = ledger_row(&url, &request_id).await;
    assert_eq!(
        (
            row.cached_tokens,
            row.reasoning_tokens,
            row.cost_micro_usd,
            row.priced
        ),
        (40, 5, i64::try_from(cost).unwrap(), true)
    );

    // Cleared, the account's requests go back to the catalog, which does
    // not price this model.
    let id = created["id"].as_str().unwrap();
    let cleared = gateway
        .admin_patch(&format!("/admin/v1/accounts/{id}"), json!({"prices": null}))
        .await;
    assert_eq!(cleared["prices"], Value::Null);
    let (request_id, _) = ask(&gateway, &key, user(UNPRICED, "and now?")).await;
    let row = ledger_row(&url, &request_id).await;
    assert_eq!((row.cost_micro_usd, row.priced), (0, false));
}
