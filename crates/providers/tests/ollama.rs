//! The Ollama adapter against the mock upstream's fake of Ollama's native
//! API on a socket: translation both ways, NDJSON streams, counts, errors.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs, spawn};
use tollgate_providers::{ProviderRequest, Providers, ProvidersConfig, StreamEvent};

async fn fake_ollama() -> MockUpstream {
    spawn(MockUpstreamArgs {
        chunks: 3,
        ..MockUpstreamArgs::any_port()
    })
    .await
    .expect("mock upstream starts")
}

fn request(mock: &MockUpstream, body: Value) -> ProviderRequest {
    ProviderRequest {
        provider: "ollama".into(),
        base_url: format!("http://{}", mock.addr()),
        credential: String::new(),
        email: String::new(),
        upstream_model: "llama3.2".into(),
        body: Bytes::from(body.to_string()),
        timeout: Duration::from_secs(5),
        completion_cap: Some(256),
        settings: String::new(),
    }
}

fn user(text: &str) -> Value {
    json!({"model": "alias", "messages": [{"role": "user", "content": text}]})
}

async fn call(mock: &MockUpstream, body: Value) -> Result<Value, GatewayError> {
    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    let reply = providers.call(&request(mock, body)).await?;
    Ok(serde_json::from_slice(&reply.body).unwrap())
}

#[tokio::test]
async fn a_chat_request_is_answered_through_api_chat() {
    let mock = fake_ollama().await;
    let reply = call(&mock, user("hello there")).await.unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "llama3.2");
    assert_eq!(reply["choices"][0]["message"]["content"], "hello there");
    assert_eq!(reply["usage"]["prompt_tokens"], 3 + 4 + 3);
    assert_eq!(reply["usage"]["completion_tokens"], 3);
    let sent = mock.stats().last_body.unwrap();
    assert_eq!(
        sent["stream"], false,
        "sent always: Ollama streams when it is absent"
    );
    assert_eq!(sent["options"]["num_predict"], 256);
}

#[tokio::test]
async fn an_ndjson_stream_relays_text_then_usage() {
    let mock = fake_ollama().await;
    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    let events: Vec<_> = providers
        .call_stream(&request(&mock, user("abcdefghij")))
        .await
        .unwrap()
        .collect()
        .await;
    // role+first piece, two pieces, the done line's finish, usage.
    assert_eq!(events.len(), 5, "{events:?}");
    let text: String = events[..3]
        .iter()
        .map(|event| match event {
            Ok(StreamEvent::Data(data)) => {
                let chunk: Value = serde_json::from_slice(data).unwrap();
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(text, "abcdefghij");
    assert!(matches!(&events[4], Ok(StreamEvent::Usage { usage, .. }) if usage.completion == 3));
}

#[tokio::test]
async fn tool_calls_go_round_two_turns() {
    let mock = fake_ollama().await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let first = json!({"model": "alias", "tools": tools,
        "messages": [{"role": "user", "content": "{\"q\":\"rust\"} [[mock:tool_call=true]]"}]});
    let reply = call(&mock, first).await.unwrap();
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    let calls = reply["choices"][0]["message"]["tool_calls"].clone();
    assert_eq!(calls[0]["function"]["arguments"], "{\"q\":\"rust\"}");
    let second = json!({"model": "alias", "tools": tools, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": null, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "a systems language"}]});
    let reply = call(&mock, second).await.unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "a systems language"
    );
    let sent = mock.stats().last_body.unwrap();
    assert_eq!(sent["messages"][2]["tool_name"], "lookup");
}

#[tokio::test]
async fn errors_and_cut_streams() {
    let mock = fake_ollama().await;
    let error = call(&mock, user("[[mock:status=404]]")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::ModelNotFound);
    let error = call(&mock, user("[[mock:status=500]]")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamError);
    // Ollama's 503 when its queue of pending requests is full.
    let error = call(&mock, user("[[mock:overloaded=true]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert_eq!(error.kind.http_status(), 503);
    let error = call(&mock, user("[[mock:error=context_length_exceeded]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ContextLengthExceeded);

    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    let events: Vec<_> = providers
        .call_stream(&request(&mock, user("abcdef [[mock:cut_after=2]]")))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(events.last().unwrap().is_err(), "{events:?}");
}
