//! SIGTERM with requests in flight: readiness fails at once, the listeners
//! close after the drain delay, the open requests finish (and the work of
//! those whose client left), their usage is stored, and the process exits
//! 0. Nothing is dropped.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::Connection;
use support::*;

/// The built-in mock provider's model, served by the account every first
/// start creates.
const MODEL: &str = "mock-echo";

fn config_file(dir: &Path, yaml: &str) -> String {
    let path = dir.join("tollgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_string_lossy().into_owned()
}

/// Polls `/readyz` until it fails, and returns that answer.
async fn not_ready(public: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let response = reqwest::get(format!("{public}/readyz")).await.unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            return (status, response.json().await.unwrap());
        }
        assert!(Instant::now() < deadline, "/readyz stayed 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn address_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn an_open_stream_finishes_after_sigterm_and_its_usage_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "shutdown_drain_delay_secs: 1\nshutdown_grace_secs: 10\n",
    );
    let mut gateway = Gateway::all_with(dir.path(), &["--config", &config]).await;
    let key = gateway.key(json!({"name": "shutdown"})).await;

    // Six chunks 300 ms apart: about two seconds of stream.
    let mut request = user(
        MODEL,
        "one two three four five six [[mock:chunks=6,chunk_delay_ms=300]]",
    );
    request["stream"] = json!(true);
    let response = gateway.chat(&key, request).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let reading = tokio::spawn(async move {
        let mut text = String::from_utf8(first.to_vec()).unwrap();
        while let Some(bytes) = body.next().await {
            text.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
        }
        text
    });

    let signalled = Instant::now();
    gateway.processes[0].signal("TERM");
    let (status, ready) = not_ready(&gateway.public).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "shutting_down", "{ready}");
    assert_eq!(ready["error"]["code"], "service_unavailable", "{ready}");
    // Still serving while not ready.
    let alive = reqwest::get(format!("{}/healthz", gateway.public))
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);

    // Once the drain delay is over, new connections are refused while the
    // stream is still being relayed.
    tokio::time::sleep_until((signalled + Duration::from_millis(1_400)).into()).await;
    let refused = tokio::net::TcpStream::connect(address_of(&gateway.public)).await;
    assert!(refused.is_err(), "the listener still accepts");
    assert!(!reading.is_finished(), "the stream ended too early to tell");

    let text = reading.await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let content: String = data
        .iter()
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| {
            let chunk: Value = serde_json::from_str(data).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!content.is_empty(), "{text}");

    // Within the drain delay plus the grace.
    let exit = gateway.processes[0]
        .exited(Duration::from_secs(1 + 10))
        .await;
    assert!(exit.success(), "{exit:?}");
    let log = gateway.processes[0].log();
    assert!(log.contains("usage sink closed"), "{log}");
    drop(gateway);

    // The request's usage event was delivered before the exit.
    let restarted = Gateway::all_with(dir.path(), &["--config", &config]).await;
    let usage = restarted.admin_get("/admin/v1/usage?group_by=model").await;
    let row = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["group"] == MODEL)
        .unwrap_or_else(|| panic!("no usage of {MODEL}: {usage}"));
    assert_eq!(row["requests"], 1, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
}

#[tokio::test]
async fn a_slow_answer_in_flight_at_sigterm_is_delivered_and_recorded() {
    let database = Database::create("shutdown").await;
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::all_with(dir.path(), &["--database-url", &database.url()]).await;
    let key = gateway.key(json!({"name": "shutdown"})).await;

    let started = Instant::now();
    let request = user(MODEL, "take your time [[mock:latency_ms=1500]]");
    let chat = gateway.chat(&key, request);
    let signal = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        gateway.processes[0].signal("TERM");
    };
    let (response, ()) = tokio::join!(chat, signal);
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );

    let exit = gateway.processes[0].exited(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}");

    let mut connection = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let (status, tokens): (i32, i64) = sqlx::query_as(
        "SELECT status, (prompt_tokens + completion_tokens)::bigint FROM usage_events \
         WHERE request_id = $1",
    )
    .bind(&request_id)
    .fetch_one(&mut connection)
    .await
    .unwrap_or_else(|error| panic!("no usage event for {request_id}: {error}"));
    assert_eq!(status, 200);
    assert_eq!(
        u64::try_from(tokens).unwrap(),
        body["usage"]["total_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn a_request_whose_client_left_is_still_recorded_at_sigterm() {
    let database = Database::create("shutdown").await;
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::all_with(dir.path(), &["--database-url", &database.url()]).await;
    let key = gateway.key(json!({"name": "shutdown"})).await;

    // The client gives up long before the answer. Over HTTP/2 its leaving
    // resets the stream, so the edge drops the request at once: nothing
    // holds the HTTP server's drain, only the router's own work remains.
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let request = http2
        .post(format!("{}/v1/chat/completions", gateway.public))
        .bearer_auth(&key)
        .json(&user(
            MODEL,
            "answer nobody waits for [[mock:latency_ms=1500]]",
        ))
        .send();
    let gave_up = tokio::time::timeout(Duration::from_millis(300), request).await;
    assert!(gave_up.is_err(), "the answer came too soon");
    gateway.processes[0].signal("TERM");

    let exit = gateway.processes[0].exited(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}");
    let mut connection = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let stored: Vec<(i32, bool)> = sqlx::query_as("SELECT status, streamed FROM usage_events")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, [(200, false)], "the upstream's answer counts");
}
