//! An upstream that says it is overloaded, end to end: Anthropic accounts
//! on the mock upstream, one of whose keys is answered with Anthropic's
//! 529 `overloaded_error`. Another account takes the request at once;
//! when no other account can, the client sees `upstream_overloaded` (503)
//! in OpenAI's shape on `/v1/chat/completions` and Anthropic's 529
//! `overloaded_error` on `/v1/messages`, and the metrics count the class
//! apart from other upstream errors.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::*;

const BUSY_KEY: &str = "sk-ant-busy-0123456789";
const HEALTHY_KEY: &str = "sk-ant-healthy-0123456789";
/// Served by the busy account and a healthy one.
const SHARED: &str = "claude-shared";
/// Served by the busy account alone.
const BUSY_ONLY: &str = "claude-busy-only";
/// Served by another busy account alone (the first one's circuit is open
/// once it has failed a request through every retry).
const BUSY_MESSAGES: &str = "claude-busy-messages";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_upstream_is_its_own_class_and_another_account_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let directives = format!("{BUSY_KEY}:overloaded=true");
    let (upstream, v1) = mock_upstream(dir.path(), &["--key-directives", &directives]).await;
    let gateway = Gateway::all(dir.path()).await;
    // The busy account has the most room, so it is picked first.
    gateway
        .account(
            json!({"provider": "anthropic", "name": "busy", "secret": BUSY_KEY,
            "base_url": v1, "models": [SHARED, BUSY_ONLY], "daily_token_limit": 1_000_000}),
        )
        .await;
    gateway
        .account(
            json!({"provider": "anthropic", "name": "busy-too", "secret": BUSY_KEY,
            "base_url": v1, "models": [BUSY_MESSAGES]}),
        )
        .await;
    gateway
        .account(
            json!({"provider": "anthropic", "name": "healthy", "secret": HEALTHY_KEY,
            "base_url": v1, "models": [SHARED], "daily_token_limit": 100_000}),
        )
        .await;
    let key = gateway.key(json!({"name": "overloaded"})).await;

    // Another account takes the request at once.
    let response = gateway.chat(&key, user(SHARED, "hello")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-attempts"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello");

    // With no other account, the client sees the class: OpenAI's shape…
    let response = gateway.chat(&key, user(BUSY_ONLY, "hello")).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_overloaded", "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert!(!body.to_string().contains(BUSY_KEY), "{body}");

    // …and Anthropic's on its Messages API.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", gateway.public))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": BUSY_MESSAGES, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 529, "Anthropic's own status for it");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "overloaded_error", "{body}");

    // The busy upstream was asked (the class is its answer, not a
    // gateway guess), and the metrics count the class apart.
    let stats: Value = reqwest::get(format!("{}/_mock/stats", v1.strip_suffix("/v1").unwrap()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["failures"].as_u64().unwrap() >= 3, "{stats}");
    let metrics = reqwest::get(format!("{}/metrics", gateway.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("tollgate_upstream_errors_total{")
                && line.contains("kind=\"upstream_overloaded\"")),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("tollgate_upstream_errors_total{")
                && line.contains("kind=\"upstream_error\"")),
        "{metrics}"
    );
    drop(upstream);
}
