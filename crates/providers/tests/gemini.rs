//! The Gemini adapter against the mock upstream's fake Gemini API on a
//! socket: translation both ways, streams, usage and the error classes.

// clippy.toml lets #[test] functions unwrap; this crate's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, GatewayError};
use tollgate_mock_upstream::{MockUpstream, MockUpstreamArgs, spawn};
use tollgate_providers::{ProviderRequest, Providers, ProvidersConfig, StreamEvent, Usage};

const KEY: &str = "AIza-upstream-secret-0123456789";

async fn fake_gemini() -> MockUpstream {
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

fn request(mock: &MockUpstream, model: &str, body: Value) -> ProviderRequest {
    ProviderRequest {
        provider: "gemini".into(),
        base_url: format!("http://{}", mock.addr()),
        credential: KEY.into(),
        email: String::new(),
        upstream_model: model.into(),
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
    let reply = providers()
        .call(&request(mock, "gemini-2.5-flash", body))
        .await?;
    Ok((serde_json::from_slice(&reply.body).unwrap(), reply.usage))
}

fn chunk(event: &Result<StreamEvent, GatewayError>) -> Value {
    match event {
        Ok(StreamEvent::Data(data)) => serde_json::from_slice(data).unwrap(),
        other => panic!("expected data, got {other:?}"),
    }
}

#[tokio::test]
async fn a_chat_request_is_answered_through_generate_content() {
    let mock = fake_gemini().await;
    let mut body =
        user("hello there [[mock:cached_tokens=3,completion_tokens=10,reasoning_tokens=5]]");
    body["messages"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"role": "system", "content": "Be brief."}));
    let (reply, usage) = call(&mock, body).await.unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "gemini-2.5-flash");
    assert_eq!(reply["choices"][0]["message"]["content"], "hello there");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (usage.cached, usage.reasoning, usage.completion),
        (3, 5, 10)
    );
    assert_eq!(
        reply["usage"]["completion_tokens_details"]["reasoning_tokens"],
        5
    );

    let sent = mock.stats().last_body.unwrap();
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 256);
    assert_eq!(
        mock.stats().by_key[KEY].requests,
        1,
        "the key went as x-goog-api-key"
    );
}

#[tokio::test]
async fn a_stream_relays_text_then_usage_when_the_body_ends() {
    let mock = fake_gemini().await;
    let events: Vec<_> = providers()
        .call_stream(&request(&mock, "gemini-2.5-flash", user("abcdefghij")))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        chunk(&events[0])["choices"][0]["delta"]["role"],
        "assistant"
    );
    let text: String = events[..3]
        .iter()
        .map(|event| {
            chunk(event)["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "abcdefghij");
    assert_eq!(chunk(&events[2])["choices"][0]["finish_reason"], "stop");
    let Ok(StreamEvent::Usage { usage, data }) = &events[3] else {
        panic!("{events:?}");
    };
    assert_eq!(usage.completion, 3);
    let last: Value = serde_json::from_slice(data).unwrap();
    assert_eq!(last["usage"]["total_tokens"], usage.total());
}

#[tokio::test]
async fn tool_calls_go_round_two_turns_with_thought_signatures() {
    let mock = fake_gemini().await;
    let tools = json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let first = json!({"model": "alias", "tools": tools,
        "messages": [{"role": "user", "content": "{\"city\":\"Oslo\"} [[mock:tool_call=true]]"}]});
    // gemini-3 models refuse a function call sent back without its
    // thought signature; the id the gateway made carries it.
    let reply = providers()
        .call(&request(&mock, "gemini-3-pro-preview", first))
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    let message = &reply["choices"][0]["message"];
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap().to_owned();

    let second = json!({"model": "alias", "tools": tools, "messages": [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": call_id, "content": "rain, 4 degrees"}
    ]});
    let reply = providers()
        .call(&request(&mock, "gemini-3-pro-preview", second))
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "rain, 4 degrees");
    let sent = mock.stats().last_body.unwrap();
    assert_eq!(
        sent["contents"][1]["parts"][0]["functionCall"]["name"],
        "weather"
    );
    assert!(sent["contents"][1]["parts"][0]["thoughtSignature"].is_string());
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "weather", "response": {"content": "rain, 4 degrees"}})
    );
}

#[tokio::test]
async fn every_error_class_maps_from_google_errors() {
    let mock = fake_gemini().await;
    let mut wrong_key = request(&mock, "gemini-2.5-flash", user("hi"));
    wrong_key.credential = "AIza-wrong".into();
    let error = providers().call(&wrong_key).await.unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::UpstreamAuth,
        "Google's 400 API_KEY_INVALID"
    );

    let error = call(&mock, user("[[mock:status=429,retry_after=9]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(9), "from RetryInfo");
    let error = call(&mock, user("[[mock:status=503]]")).await.unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::Overloaded,
        "503 UNAVAILABLE, overloaded"
    );
    let error = call(&mock, user("[[mock:overloaded=true]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Overloaded);
    let error = call(&mock, user("[[mock:status=500]]")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamError, "500 INTERNAL");
    let error = call(&mock, user("[[mock:error=context_length_exceeded]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ContextLengthExceeded);
    let error = call(&mock, user("[[mock:error=content_policy_violation]]"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ContentPolicy);
    let error = call(&mock, user("[[mock:status=404]]")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::ModelNotFound);
}

#[tokio::test]
async fn json_modes_and_cut_streams() {
    let mock = fake_gemini().await;
    let body = json!({"model": "alias",
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        "messages": [{"role": "user", "content": "{\"answer\":42}"}]});
    let (reply, _) = call(&mock, body).await.unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "{\"answer\":42}");
    assert_eq!(
        mock.stats().last_body.unwrap()["generationConfig"]["responseMimeType"],
        "application/json"
    );

    let events: Vec<_> = providers()
        .call_stream(&request(
            &mock,
            "gemini-2.5-flash",
            user("abcdef [[mock:cut_after=1]]"),
        ))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(events.last().unwrap().is_err(), "{events:?}");
}
