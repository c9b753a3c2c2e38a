//! The mock upstream over a real socket, as an OpenAI client sees it.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs, spawn};

async fn start(args: MockUpstreamArgs) -> MockUpstream {
    spawn(args).await.expect("mock upstream starts")
}

fn chat_body(content: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "user", "content": content}],
    })
}

async fn post(mock: &MockUpstream, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The data payloads of an SSE body.
fn data_lines(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| {
            frame
                .strip_prefix("data: ")
                .expect("every frame is one data line")
        })
        .collect()
}

#[tokio::test]
async fn answers_a_chat_completion_with_echo_and_usage() {
    let mock = start(MockUpstreamArgs::any_port()).await;
    let response = post(&mock, &chat_body("hello there", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["choices"][0]["message"]["content"], "hello there");
    // 3 + 4 + ceil(11 / 4); ceil(11 / 4)
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 13);

    let stats = mock.stats();
    assert_eq!(stats.requests, 1);
    assert_eq!(stats.failures, 0);
    assert_eq!(
        stats.last_body.unwrap()["messages"][0]["content"],
        "hello there"
    );
}

#[tokio::test]
async fn streams_chunks_usage_and_done() {
    let mock = start(MockUpstreamArgs {
        chunks: 2,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let response = post(&mock, &chat_body("abcdefgh", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let lines = data_lines(&text);
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(*lines.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = lines[..5]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let content: String = chunks[..4]
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "abcdefgh");
    assert!(chunks[..4].iter().all(|chunk| chunk["usage"].is_null()));
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 2);
    assert_eq!(mock.stats().streams, 1);
}

#[tokio::test]
async fn delayed_streams_arrive_event_by_event() {
    let mock = start(MockUpstreamArgs {
        chunk_delay_ms: 20,
        chunks: 2,
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let started = Instant::now();
    let mut response = post(&mock, &chat_body("abcd", true)).await;
    let mut pieces = Vec::new();
    while let Some(piece) = response.chunk().await.unwrap() {
        pieces.push((started.elapsed(), piece));
    }
    // 5 events and [DONE], 20 ms apart after the first.
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(pieces.len() >= 2, "{pieces:?}");
    let text: Vec<u8> = pieces
        .iter()
        .flat_map(|(_, piece)| piece.to_vec())
        .collect();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}

#[tokio::test]
async fn requires_the_configured_key() {
    let mock = start(MockUpstreamArgs {
        api_key: Some("sk-test-0123456789".into()),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let response = post(&mock, &chat_body("hi", false)).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", mock.base_url());
    let response = client
        .post(&url)
        .bearer_auth("sk-wrong-key-abcdefgh")
        .json(&chat_body("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("sk-w") && !message.contains("sk-wrong-key"),
        "{message}"
    );

    let response = client
        .post(&url)
        .bearer_auth("sk-test-0123456789")
        .json(&chat_body("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stats = mock.stats();
    assert_eq!((stats.requests, stats.failures), (3, 2));
    assert_eq!(
        stats.last_authorization.as_deref(),
        Some("Bearer sk-test-0123456789")
    );

    let models = client
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
}

#[tokio::test]
async fn fails_the_first_requests_with_retry_after() {
    let mock = start(MockUpstreamArgs {
        fail_status: Some(429),
        fail_count: 2,
        retry_after: Some(9),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    for _ in 0..2 {
        let response = post(&mock, &chat_body("hi", false)).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "9");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    }
    assert_eq!(post(&mock, &chat_body("hi", false)).await.status(), 200);

    mock.reset_stats();
    assert_eq!(post(&mock, &chat_body("hi", false)).await.status(), 429);
}

#[tokio::test]
async fn fail_count_zero_fails_every_request() {
    let mock = start(MockUpstreamArgs {
        fail_status: Some(503),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    for _ in 0..3 {
        let response = post(&mock, &chat_body("hi", false)).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().get("retry-after").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");
    }
}

#[tokio::test]
async fn directives_steer_single_requests() {
    let mock = start(MockUpstreamArgs::any_port()).await;
    let response = post(
        &mock,
        &chat_body("x [[mock:status=429,retry_after=7]]", false),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    let response = post(&mock, &chat_body("[[mock:status=500]]", false)).await;
    assert_eq!(response.status(), 500);

    let started = Instant::now();
    let response = post(&mock, &chat_body("slow [[mock:latency_ms=80]]", false)).await;
    assert!(started.elapsed() >= Duration::from_millis(80));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "slow");
}

#[tokio::test]
async fn a_cut_stream_drops_the_connection_before_done() {
    let mock = start(MockUpstreamArgs::any_port()).await;
    let mut response = post(&mock, &chat_body("abcdef [[mock:cut_after=2]]", true)).await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(piece)) => received.extend_from_slice(&piece),
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    assert!(outcome.is_err(), "the body must end with an error");
    let text = String::from_utf8(received).unwrap();
    assert!(!text.contains("[DONE]"));
    assert!(data_lines(&text).len() <= 2, "{text}");
    assert_eq!(mock.stats().cut_streams, 1);
}

#[tokio::test]
async fn rejects_bad_requests_like_openai() {
    let mock = start(MockUpstreamArgs::any_port()).await;
    let response = post(
        &mock,
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");

    let response = reqwest::get(format!("http://{}/v1/nothing", mock.addr()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (GET /v1/nothing)");
}

#[tokio::test]
async fn lists_models_and_serves_stats() {
    let mock = start(MockUpstreamArgs {
        models: vec!["m1".into(), "m2".into()],
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let body: Value = reqwest::get(format!("{}/models", mock.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"][1]["id"], "m2");
    post(&mock, &chat_body("hi", false)).await;

    let stats: Value = reqwest::get(format!("http://{}/_mock/stats", mock.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["model_list_requests"], 1);
    assert_eq!(stats["last_body"]["model"], "gpt-test");

    let reset = reqwest::Client::new()
        .post(format!("http://{}/_mock/reset", mock.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test]
async fn shutdown_frees_the_port() {
    let mock = start(MockUpstreamArgs::any_port()).await;
    let addr = mock.addr();
    mock.shutdown().await.unwrap();
    let again = start(MockUpstreamArgs {
        listen: addr,
        ..MockUpstreamArgs::default()
    })
    .await;
    assert_eq!(again.addr(), addr);
}

#[tokio::test]
async fn serve_runs_until_its_shutdown_future() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tollgate_mock_upstream::serve(
        MockUpstreamArgs {
            listen: addr,
            ..MockUpstreamArgs::default()
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}/v1/models");
    let mut answered = false;
    for _ in 0..50 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|response| response.status() == 200)
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(answered);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn each_api_key_fails_its_own_way() {
    let mock = start(MockUpstreamArgs {
        key_directives: vec![("sk-down".into(), "status=503".into())],
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", mock.base_url());
    let send = |key: &'static str, content: &'static str| {
        client
            .post(&url)
            .bearer_auth(key)
            .json(&chat_body(content, false))
            .send()
    };
    assert_eq!(send("sk-down", "hi").await.unwrap().status(), 503);
    assert_eq!(send("sk-up", "hi").await.unwrap().status(), 200);
    // A directive in the message wins over the key's.
    let response = send("sk-down", "[[mock:status=429,retry_after=3]]")
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");

    // Changed while running; empty directives forget the key.
    let set = |key: &str, directives: &str| {
        client
            .put(format!("http://{}/_mock/key-directives", mock.addr()))
            .json(&json!({"key": key, "directives": directives}))
            .send()
    };
    assert_eq!(set("sk-up", "status=401").await.unwrap().status(), 204);
    assert_eq!(send("sk-up", "hi").await.unwrap().status(), 401);
    set("sk-down", "").await.unwrap();
    assert_eq!(send("sk-down", "hi").await.unwrap().status(), 200);

    let stats = mock.stats();
    assert_eq!(stats.by_key["sk-down"].requests, 3);
    assert_eq!(stats.by_key["sk-up"].requests, 2);
    assert_eq!(
        stats.by_key["sk-up"].last_body.as_ref().unwrap()["messages"][0]["content"],
        "hi"
    );
}

#[tokio::test]
async fn answers_at_azure_openais_paths_with_the_key_in_api_key() {
    let mock = start(MockUpstreamArgs {
        api_key: Some("azure-key".into()),
        ..MockUpstreamArgs::any_port()
    })
    .await;
    let root = format!("http://{}", mock.addr());
    let client = reqwest::Client::new();
    let send = |path: &str, key: &str| {
        client
            .post(format!("{root}{path}"))
            .header("api-key", key)
            .json(&chat_body("hello azure", false))
            .send()
    };
    for path in [
        "/openai/v1/chat/completions",
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
    ] {
        let response = send(path, "azure-key").await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "hello azure");
        // A wrong key is refused as on the OpenAI route.
        assert_eq!(send(path, "wrong").await.unwrap().status(), 401, "{path}");
    }
    // A deployment path needs its api-version.
    let response = send("/openai/deployments/prod-4o/chat/completions", "azure-key")
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Azure reads no bearer token.
    let response = client
        .post(format!("{root}/openai/v1/chat/completions"))
        .bearer_auth("azure-key")
        .json(&chat_body("hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
