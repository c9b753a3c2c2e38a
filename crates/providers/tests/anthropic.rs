//! The Anthropic adapter against the mock upstream's fake Messages API on
//! a socket: translation both ways, streams, usage and every error class.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs, spawn};
use tollgate_providers::{ProviderRequest, Providers, ProvidersConfig, StreamEvent, Usage};

const KEY: &str = "sk-ant-upstream-secret-0123456789";

async fn fake_anthropic() -> MockUpstream {
    spawn(MockUpstreamArgs {
        api_key: Some(KEY.into()),
        chunks: 3,
        ..MockUpstreamArgs::any_port()
    })
    .await
    .expect("mock upstream starts")
}

fn providers() -> Providers {
    Providers::new(ProvidersConfig::default()).unwrap()
}

fn request(mock: &MockUpstream, body: Value) -> ProviderRequest {
    ProviderRequest {
        provider: "anthropic".into(),
        base_url: mock.base_url(),
        credential: KEY.into(),
        email: String::new(),
        upstream_model: "claude-upstream".into(),
        body: Bytes::from(body.to_string()),
        timeout: Duration::from_secs(5),
        completion_cap: Some(256),
        settings: String::new(),
    }
}

fn user(text: &str) -> Value {
    json!({"model": "alias", "messages": [{"role": "user", "content": text}]})
}

async fn call(mock: &MockUpstream, body: Value) -> Result<(Value, Usage), GatewayError> {
    let reply = providers().call(&request(mock, body)).await?;
    Ok((serde_json::from_slice(&reply.body).unwrap(), reply.usage))
}

async fn stream(mock: &MockUpstream, body: Value) -> Vec<Result<StreamEvent, GatewayError>> {
    providers()
        .call_stream(&request(mock, body))
        .await
        .unwrap()
        .collect()
        .await
}

fn chunk(event: &Result<StreamEvent, GatewayError>) -> Value {
    match event {
        Ok(StreamEvent::Data(data)) => serde_json::from_slice(data).unwrap(),
        other => panic!("expected data, got {other:?}"),
    }
}

#[tokio::test]
async fn a_chat_request_is_answered_through_the_messages_api() {
    let mock = fake_anthropic().await;
    let mut body = user("hello there [[mock:cached_tokens=3,cache_write_5m_tokens=2]]");
    body["messages"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"role": "system", "content": "Be brief."}));
    let (reply, usage) = call(&mock, body).await.unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "claude-upstream");
    assert_eq!(reply["choices"][0]["message"]["content"], "hello there");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (usage.cached, usage.cache_write_5m, usage.completion),
        (3, 2, 3)
    );
    assert_eq!(reply["usage"]["prompt_tokens"], usage.prompt);
    assert_eq!(reply["usage"]["prompt_tokens_details"]["cached_tokens"], 3);

    let sent = mock.stats().last_body.unwrap();
    assert_eq!(sent["model"], "claude-upstream");
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    assert_eq!(
        sent["max_tokens"], 256,
        "the lease's cap, as the client set none"
    );
    assert_eq!(
        mock.stats().by_key[KEY].requests,
        1,
        "the key went as x-api-key"
    );
}

#[tokio::test]
async fn a_stream_relays_text_then_usage() {
    let mock = fake_anthropic().await;
    let mut body = user("abcdefghij [[mock:cache_write_1h_tokens=4]]");
    body["messages"][0]["content"] = json!([{"type": "text",
        "text": "abcdefghij [[mock:cache_write_1h_tokens=4]]",
        "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
    let events = stream(&mock, body).await;
    // role, 3 text deltas, finish, usage.
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(
        chunk(&events[0])["choices"][0]["delta"]["role"],
        "assistant"
    );
    let text: String = events[1..4]
        .iter()
        .map(|event| {
            chunk(event)["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "abcdefghij");
    assert_eq!(chunk(&events[4])["choices"][0]["finish_reason"], "stop");
    let Ok(StreamEvent::Usage { usage, data }) = &events[5] else {
        panic!("{events:?}");
    };
    assert_eq!(
        (usage.cache_write_1h, usage.cache_write_5m, usage.completion),
        (4, 0, 3)
    );
    let last: Value = serde_json::from_slice(data).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], usage.total());
}

#[tokio::test]
async fn tool_calls_go_round_two_turns_with_their_ids() {
    let mock = fake_anthropic().await;
    let tools = json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let first = json!({"model": "alias", "tools": tools,
        "messages": [{"role": "user", "content": "{\"city\":\"Oslo\"} [[mock:tool_call=true]]"}]});
    let (reply, _) = call(&mock, first).await.unwrap();
    let message = &reply["choices"][0]["message"];
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("toolu_"), "{call_id}");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );

    // The second turn carries the call and its result back; the fake
    // refuses a tool_use without its tool_result right after.
    let second = json!({"model": "alias", "tools": tools, "messages": [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": call_id, "content": "rain, 4 degrees"}
    ]});
    let (reply, _) = call(&mock, second).await.unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "rain, 4 degrees");
    let sent = mock.stats().last_body.unwrap();
    assert_eq!(sent["messages"][1]["content"][0]["id"], call_id.as_str());
    assert_eq!(
        sent["messages"][2]["content"][0]["tool_use_id"],
        call_id.as_str()
    );
}

#[tokio::test]
async fn streamed_tool_calls_arrive_as_argument_deltas() {
    let mock = fake_anthropic().await;
    let body = json!({"model": "alias",
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
        "tool_choice": "required",
        "messages": [{"role": "user", "content": "{\"q\":\"rust\"}"}]});
    let events = stream(&mock, body).await;
    let head = chunk(&events[1]);
    assert_eq!(
        head["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    let arguments: String = events[2..5]
        .iter()
        .map(|event| {
            chunk(event)["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(arguments, "{\"q\":\"rust\"}");
    assert_eq!(
        chunk(&events[5])["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn a_json_schema_response_format_answers_with_json_content() {
    let mock = fake_anthropic().await;
    let body = json!({"model": "alias",
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer",
            "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}}}},
        "messages": [{"role": "user", "content": "{\"answer\":42}"}]});
    let (reply, _) = call(&mock, body).await.unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "{\"answer\":42}");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn every_error_class_maps_from_anthropic_errors() {
    let mock = fake_anthropic().await;
    let kind_of = |result: Result<(Value, Usage), GatewayError>| result.unwrap_err();

    let mut wrong_key = request(&mock, user("hi"));
    wrong_key.credential = "sk-ant-wrong".into();
    let error = providers().call(&wrong_key).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);

    let error = kind_of(call(&mock, user("[[mock:status=429,retry_after=9]]")).await);
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(9));
    let error = kind_of(call(&mock, user("[[mock:status=529]]")).await);
    assert_eq!(error.kind, ErrorKind::Overloaded, "529 overloaded_error");
    assert_eq!(error.kind.anthropic_type(), "overloaded_error");
    let error = kind_of(call(&mock, user("[[mock:overloaded=true]]")).await);
    assert_eq!(error.kind, ErrorKind::Overloaded);
    let error = kind_of(call(&mock, user("[[mock:status=500]]")).await);
    assert_eq!(error.kind, ErrorKind::UpstreamError, "500 api_error");
    let error = kind_of(call(&mock, user("[[mock:status=403]]")).await);
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    let error = kind_of(call(&mock, user("[[mock:error=context_length_exceeded]]")).await);
    assert_eq!(error.kind, ErrorKind::ContextLengthExceeded);

    // The upstream's own 400 reaches the client with its message.
    let mut hot = user("hi");
    hot["temperature"] = json!(1.5);
    let error = kind_of(call(&mock, hot).await);
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("temperature"), "{}", error.message);

    // A refusal is an answer that finishes with content_filter.
    let (reply, _) = call(&mock, user("[[mock:error=content_policy_violation]]"))
        .await
        .unwrap();
    assert_eq!(reply["choices"][0]["finish_reason"], "content_filter");

    // What Anthropic cannot carry never leaves the gateway.
    let before = mock.stats().requests;
    let mut logprobs = user("hi");
    logprobs["logprobs"] = json!(true);
    let error = kind_of(call(&mock, logprobs).await);
    assert_eq!(error.param.as_deref(), Some("logprobs"));
    assert_eq!(mock.stats().requests, before);
}

#[tokio::test]
async fn an_overloaded_error_event_ends_a_started_stream_with_the_class() {
    let mock = fake_anthropic().await;
    let mut body = user("abcdef [[mock:overloaded_after=3]]");
    body["stream"] = json!(true);
    let events = stream(&mock, body).await;
    let (last, delivered) = events.split_last().unwrap();
    assert!(!delivered.is_empty(), "the stream started: {events:?}");
    assert!(delivered.iter().all(Result::is_ok), "{events:?}");
    let error = last.as_ref().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert_eq!(error.kind.anthropic_type(), "overloaded_error");
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error() {
    let mock = fake_anthropic().await;
    let events = stream(&mock, user("abcdef [[mock:cut_after=3]]")).await;
    assert!(events.last().unwrap().is_err(), "{events:?}");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Ok(StreamEvent::Usage { .. })))
    );
}

#[tokio::test]
async fn a_rovo_dev_account_can_speak_messages_with_basic_auth() {
    // The fake takes the key from `x-api-key` only, so a Basic-authenticated
    // call reaches it without one: it must not demand a key here.
    let mock = spawn(MockUpstreamArgs::any_port()).await.unwrap();
    let mut rovo = request(&mock, user("hello rovo"));
    rovo.provider = "rovodev".into();
    rovo.email = "dev@example.com".into();
    rovo.credential = "atlassian-token".into();
    rovo.settings = r#"{"wire_format":"anthropic_messages"}"#.into();
    let reply = providers().call(&rovo).await.unwrap();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello rovo");
    let stats = mock.stats();
    let authorization = stats.last_authorization.unwrap();
    assert!(authorization.starts_with("Basic "), "{authorization}");
    assert!(stats.by_key.is_empty(), "no x-api-key was sent");
}
