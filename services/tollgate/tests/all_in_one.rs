//! `tollgate all` end to end: real processes, real sockets, the real mock
//! upstream, driven through the public and admin APIs.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;

async fn gateway_with_upstream(dir: &std::path::Path) -> (Gateway, Process, String) {
    gateway_with_upstream_and(dir, &[]).await
}

async fn gateway_with_upstream_and(
    dir: &std::path::Path,
    flags: &[&str],
) -> (Gateway, Process, String) {
    let (upstream, base_url) = mock_upstream(dir, &[]).await;
    let gateway = Gateway::all_with(dir, flags).await;
    gateway
        .account(json!({
            "provider": "openai_compatible",
            "name": "upstream-a",
            "secret": "sk-upstream-secret-aaaa",
            "base_url": base_url,
            "models": ["compat-model"],
        }))
        .await;
    let key = gateway.key(json!({"name": "e2e"})).await;
    (gateway, upstream, key)
}

#[tokio::test]
async fn first_start_prints_a_dev_key_that_works_with_the_mock_model() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_string_lossy().into_owned();
    let args = [
        "all",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
    ];
    let mut first = Process::start("first-start", dir.path(), &args, &[]);
    let (listen, _) = start_all(&mut first).await;
    wait_ready(&format!("http://{listen}/readyz"), &mut [&mut first]).await;

    let log = first.log();
    let key = log
        .split_whitespace()
        .find(|word| word.starts_with("tg-") && word.len() == 46)
        .unwrap_or_else(|| panic!("no dev key printed:\n{log}"))
        .to_owned();
    assert!(log.contains("curl"), "no curl line printed:\n{log}");
    let token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    assert!(token.trim().starts_with("tga-"));

    let response = reqwest::Client::new()
        .post(format!("http://{listen}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&user("mock-echo", "Hello, Tollgate!"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("Hello, Tollgate!"), "{body}");

    // A restart keeps the key and prints no new one.
    first.terminate();
    let mut second = Process::start("second-start", dir.path(), &args, &[]);
    let (listen, _) = start_all(&mut second).await;
    wait_ready(&format!("http://{listen}/readyz"), &mut [&mut second]).await;
    assert!(!second.log().contains("tg-"), "{}", second.log());
    let response = reqwest::Client::new()
        .post(format!("http://{listen}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&user("mock-echo", "still here"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn chat_and_stream_through_an_openai_compatible_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _upstream, key) = gateway_with_upstream(dir.path()).await;

    let response = gateway
        .chat(&key, user("compat-model", "the quick brown fox"))
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(headers["x-tollgate-provider"], "openai_compatible");
    assert_eq!(headers["x-tollgate-model"], "compat-model");
    assert_eq!(headers["x-tollgate-attempts"], "1");
    let body: Value = response.json().await.unwrap();
    let answer = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(answer.contains("the quick brown fox"), "{body}");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let mut request = user("compat-model", "the quick brown fox");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = gateway.chat(&key, request.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, answer);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]), "{usage_chunk}");
    assert_eq!(usage_chunk["usage"], body["usage"]);

    // Without include_usage the usage chunk is not relayed.
    request.as_object_mut().unwrap().remove("stream_options");
    let text = gateway.chat(&key, request).await.text().await.unwrap();
    assert!(
        sse_data(&text)
            .iter()
            .filter(|data| *data != "[DONE]")
            .all(
                |data| !serde_json::from_str::<Value>(data).unwrap()["choices"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            ),
        "{text}"
    );

    // The stream is relayed as it is produced: the first bytes arrive
    // before the upstream has finished.
    let mut slow = user(
        "compat-model",
        "one two three four [[mock:chunk_delay_ms=200]]",
    );
    slow["stream"] = json!(true);
    let started = Instant::now();
    let mut body = gateway.chat(&key, slow).await.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(!first.is_empty());
    while body.next().await.is_some() {}
    assert!(
        started.elapsed() > first_at + Duration::from_millis(300),
        "first chunk at {first_at:?}, end at {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn every_failure_has_the_openai_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    // A small body limit, so an oversized body still fits in the socket
    // buffers and the client reads the 413 instead of a reset connection.
    let (gateway, _upstream, key) =
        gateway_with_upstream_and(dir.path(), &["--max-body-bytes", "4096"]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gateway.public);

    let check = |status: u16, code: &'static str| {
        move |response: (u16, Value, bool)| {
            assert_eq!(response.0, status, "{}", response.1);
            assert_eq!(response.1["error"]["code"], code, "{}", response.1);
            assert!(response.1["error"]["message"].is_string());
            assert!(response.2, "missing x-request-id");
        }
    };
    async fn read(response: reqwest::Response) -> (u16, Value, bool) {
        let status = response.status().as_u16();
        let has_id = response.headers().contains_key("x-request-id");
        (status, response.json().await.unwrap(), has_id)
    }

    check(401, "invalid_api_key")(
        read(
            http.post(&url)
                .json(&user("compat-model", "x"))
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    check(401, "invalid_api_key")(
        read(
            gateway
                .chat("tg-not-a-real-key", user("compat-model", "x"))
                .await,
        )
        .await,
    );
    check(400, "invalid_request")(
        read(
            http.post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    let missing = read(gateway.chat(&key, json!({"model": "compat-model"})).await).await;
    assert_eq!(missing.1["error"]["param"], "messages", "{}", missing.1);
    check(400, "invalid_request")(missing);
    check(404, "model_not_found")(read(gateway.chat(&key, user("no-such-model", "x")).await).await);
    let huge = "x".repeat(8192);
    check(413, "request_too_large")(
        read(gateway.chat(&key, user("compat-model", &huge)).await).await,
    );
    // An upstream failure is reported as the gateway's own 5xx.
    check(502, "upstream_error")(
        read(
            gateway
                .chat(&key, user("compat-model", "[[mock:status=500]]"))
                .await,
        )
        .await,
    );
}

#[tokio::test]
async fn an_account_daily_cap_is_never_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, base_url) = mock_upstream(dir.path(), &[]).await;
    let gateway = Gateway::all(dir.path()).await;
    let account = gateway
        .account(json!({
            "provider": "openai_compatible",
            "name": "capped",
            "secret": "sk-capped",
            "base_url": base_url,
            "models": ["capped-model"],
            "daily_token_limit": 200,
        }))
        .await;
    let key = gateway.key(json!({"name": "cap"})).await;

    let mut admitted_tokens = 0;
    let mut refused = None;
    for _ in 0..50 {
        let mut request = user("capped-model", "count these words");
        request["max_tokens"] = json!(10);
        let response = gateway.chat(&key, request).await;
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        admitted_tokens += body["usage"]["total_tokens"].as_u64().unwrap();
    }
    let refused = refused.expect("the cap never refused a request");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exhausted", "{body}");
    assert!(admitted_tokens <= 200, "admitted {admitted_tokens} tokens");
    assert!(
        admitted_tokens > 100,
        "admitted only {admitted_tokens} tokens"
    );

    let id = account["id"].as_str().unwrap();
    let record = gateway.admin_get(&format!("/admin/v1/accounts/{id}")).await;
    assert!(
        record["tokens_used_today"].as_u64().unwrap() <= 200,
        "{record}"
    );
    drop(upstream);
}

#[tokio::test]
async fn an_upstream_429_fails_over_to_another_account_and_cools_down() {
    let dir = tempfile::tempdir().unwrap();
    let (_limited, limited_url) = mock_upstream(
        dir.path(),
        &["--fail-status", "429", "--retry-after", "120"],
    )
    .await;
    let (_healthy, healthy_url) = mock_upstream(dir.path(), &[]).await;
    let gateway = Gateway::all(dir.path()).await;
    for (name, url, priority) in [("limited", &limited_url, 10), ("healthy", &healthy_url, 0)] {
        gateway
            .account(json!({
                "provider": "openai_compatible",
                "name": name,
                "secret": format!("sk-{name}"),
                "base_url": url,
                "models": ["pool-model"],
                "priority": priority,
            }))
            .await;
    }
    let key = gateway.key(json!({"name": "pool"})).await;

    let first = gateway.chat(&key, user("pool-model", "hello")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-tollgate-attempts"], "2");
    // The rate-limited account is cooling down: later requests go straight
    // to the healthy one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let response = gateway.chat(&key, user("pool-model", "hello")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-tollgate-attempts"], "1");
    }
}

#[tokio::test]
async fn usage_is_recorded_and_secrets_never_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _upstream, key) = gateway_with_upstream(dir.path()).await;

    let mut client_tokens = 0;
    for text in ["one", "two words", "three more words"] {
        let body: Value = gateway
            .chat(&key, user("compat-model", text))
            .await
            .json()
            .await
            .unwrap();
        client_tokens += body["usage"]["total_tokens"].as_u64().unwrap();
    }
    let mut request = user("compat-model", "streamed words");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let text = gateway.chat(&key, request).await.text().await.unwrap();
    let usage_chunk: Value =
        serde_json::from_str(&sse_data(&text)[sse_data(&text).len() - 2]).unwrap();
    client_tokens += usage_chunk["usage"]["total_tokens"].as_u64().unwrap();
    let _ = gateway.chat(&key, user("no-such-model", "x")).await;

    // Usage is written asynchronously; it arrives within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let usage = gateway.admin_get("/admin/v1/usage?group_by=model").await;
        let row = usage["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["group"] == "compat-model")
            .cloned();
        if let Some(row) = row
            && row["requests"] == 4
        {
            break row;
        }
        assert!(Instant::now() < deadline, "usage never arrived: {usage}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        row["total_tokens"].as_u64().unwrap(),
        client_tokens,
        "{row}"
    );
    assert_eq!(row["errors"], 0);

    let accounts = gateway.admin_get("/admin/v1/accounts").await;
    let text = accounts.to_string();
    assert!(!text.contains("sk-upstream-secret-aaaa"), "{text}");
    assert!(text.contains("aaaa"), "mask should show the last 4: {text}");
    let needle = b"sk-upstream-secret-aaaa";
    for entry in std::fs::read_dir(&gateway.data_dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|window| window == needle),
            "plaintext secret in {}",
            path.display()
        );
    }
}

/// The six `x-ratelimit-*` values of a response, as text.
fn rate_limit_headers(response: &reqwest::Response) -> Vec<(String, String)> {
    let names = [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ];
    names
        .into_iter()
        .map(|name| {
            let value = response
                .headers()
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing: {:?}", response.headers()));
            (name.to_owned(), value.to_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_limited_key_sees_its_rate_limits_count_down_then_a_429() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _upstream, _) = gateway_with_upstream(dir.path()).await;
    let key = gateway
        .key(json!({"name": "limited", "rpm": 3, "tpm": 100000}))
        .await;
    let mut request = user("compat-model", "count down");
    request["max_tokens"] = json!(10);

    for (turn, remaining) in ["2", "1", "0"].into_iter().enumerate() {
        let mut body = request.clone();
        // The second request streams: its headers come with the route.
        body["stream"] = json!(turn == 1);
        let response = gateway.chat(&key, body).await;
        assert_eq!(response.status(), 200);
        let headers = rate_limit_headers(&response);
        assert_eq!(headers[0].1, "3", "{headers:?}");
        assert_eq!(headers[1].1, remaining, "{headers:?}");
        assert!(headers[2].1.ends_with('s'), "{headers:?}");
        assert_eq!(headers[3].1, "100000", "{headers:?}");
        let tokens_left: u64 = headers[4].1.parse().unwrap();
        assert!((90_000..100_000).contains(&tokens_left), "{headers:?}");
        response.bytes().await.unwrap();
    }

    let refused = gateway.chat(&key, request).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let headers = rate_limit_headers(&refused);
    assert_eq!(headers[0].1, "3", "{headers:?}");
    assert_eq!(headers[1].1, "0", "{headers:?}");
    assert!(
        headers[2].1.ends_with('s') && headers[2].1 != "0s",
        "{headers:?}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");

    // A key without RPM or TPM gets none of the headers.
    let plain = gateway.key(json!({"name": "plain"})).await;
    let response = gateway
        .chat(&plain, user("compat-model", "no limits"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("x-ratelimit-")),
        "{:?}",
        response.headers()
    );
}
