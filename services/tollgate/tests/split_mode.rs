//! Split mode end to end: the five services as five processes on loopback,
//! started by `scripts/split`, talking gRPC to each other.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn five_processes_serve_chat_streams_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (_upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let gateway = Gateway::split(dir.path()).await;
    gateway
        .account(json!({
            "provider": "openai_compatible",
            "name": "split-upstream",
            "secret": "sk-split",
            "base_url": base_url,
            "models": ["split-model"],
        }))
        .await;
    let key = gateway.key(json!({"name": "split"})).await;

    let response = gateway
        .chat(&key, user("split-model", "across processes"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-tollgate-provider"],
        "openai_compatible"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("across processes")
    );

    let mut request = user("split-model", "streamed across processes");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let text = gateway.chat(&key, request).await.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let built_in = gateway.chat(&key, user("mock-echo", "hi")).await;
    assert_eq!(built_in.status(), 200);
    let missing = gateway.chat(&key, user("nope", "hi")).await;
    assert_eq!(missing.status(), 404);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let usage = gateway.admin_get("/admin/v1/usage?group_by=model").await;
        let requests: u64 = usage["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["group"] == "split-model")
            .map(|row| row["requests"].as_u64().unwrap())
            .sum();
        if requests == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "usage never arrived: {usage}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
