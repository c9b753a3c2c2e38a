//! OpenRouter through the OpenAI adapter against a fake that answers as
//! OpenRouter documents: attribution headers read, `usage.cost` (USD)
//! reported in answers and in the stream's last chunk, and SSE comments
//! (`: OPENROUTER PROCESSING`) while the model starts.

use axum::body::Body;
use axum::response::Response;
use serde_json::{Value, json};
use tollgate_core::provider_settings::OpenRouterSettings;
use tollgate_providers::{ProviderRequest, Providers, ProvidersConfig, StreamEvent};

use crate::server::{FakeUpstream, Seen, json};
use crate::{collect, request};

const KEY: &str = "sk-or-v1-0123456789abcdef";

fn usage() -> Value {
    json!({
        "prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196,
        "cost": 0.0000953, "is_byok": false,
        "prompt_tokens_details": {"cached_tokens": 0},
        "cost_details": {"upstream_inference_cost": null},
        "completion_tokens_details": {"reasoning_tokens": 0}
    })
}

fn openrouter(seen: &Seen) -> Response {
    if seen.header("authorization") != Some(&format!("Bearer {KEY}")) {
        return json(
            401,
            &[],
            &json!({"error": {"message": "No auth credentials found", "code": 401}}),
        );
    }
    if seen.target != "/api/v1/chat/completions" {
        return json(
            404,
            &[],
            &json!({"error": {"message": "Not Found", "code": 404}}),
        );
    }
    let head = json!({
        "id": "gen-1733400000-AbCdEf", "provider": "OpenAI", "model": "openai/gpt-4o-mini",
        "object": "chat.completion.chunk", "created": 1733400000
    });
    if seen.body["stream"] == true {
        let mut text = String::from(": OPENROUTER PROCESSING\n\n");
        let mut event = |value: Value| {
            text.push_str(&format!("data: {value}\n\n"));
        };
        let mut chunk = head.clone();
        chunk["choices"] = json!([{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": null, "native_finish_reason": null, "logprobs": null}]);
        event(chunk);
        let mut chunk = head.clone();
        chunk["choices"] = json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop", "native_finish_reason": "stop", "logprobs": null}]);
        event(chunk);
        if seen.body["stream_options"]["include_usage"] == true {
            let mut chunk = head;
            chunk["choices"] = json!([]);
            chunk["usage"] = usage();
            event(chunk);
        }
        text.push_str("data: [DONE]\n\n");
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(text))
            .unwrap();
    }
    let mut reply = head;
    reply["object"] = json!("chat.completion");
    reply["choices"] = json!([{"logprobs": null, "finish_reason": "stop", "native_finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": null, "reasoning": null}}]);
    reply["usage"] = usage();
    json(200, &[], &reply)
}

fn openrouter_request(fake: &FakeUpstream, settings: Value) -> ProviderRequest {
    ProviderRequest {
        provider: "openrouter".into(),
        base_url: format!("{}/api/v1", fake.base_url()),
        credential: KEY.into(),
        upstream_model: "openai/gpt-4o-mini".into(),
        settings: settings.to_string(),
        ..request(&fake.base_url(), "hi")
    }
}

fn with_default_attribution() -> Providers {
    Providers::new(ProvidersConfig {
        openrouter_attribution: OpenRouterSettings {
            http_referer: Some("https://gateway.example".into()),
            x_title: Some("Example Gateway".into()),
        },
        ..ProvidersConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn attribution_headers_come_from_the_account_then_the_default() {
    let fake = FakeUpstream::start(openrouter).await;
    let account = json!({"http_referer": "https://team.example", "x_title": "Team App"});
    with_default_attribution()
        .call(&openrouter_request(&fake, account))
        .await
        .unwrap();
    let seen = fake.last();
    assert_eq!(seen.header("http-referer"), Some("https://team.example"));
    assert_eq!(seen.header("referer"), None);
    assert_eq!(seen.header("x-title"), Some("Team App"));

    with_default_attribution()
        .call(&openrouter_request(&fake, json!({})))
        .await
        .unwrap();
    let seen = fake.last();
    assert_eq!(seen.header("http-referer"), Some("https://gateway.example"));
    assert_eq!(seen.header("x-title"), Some("Example Gateway"));

    // Without either, no attribution header is sent.
    crate::providers()
        .call(&openrouter_request(&fake, json!({})))
        .await
        .unwrap();
    let seen = fake.last();
    assert_eq!(seen.header("http-referer"), None);
    assert_eq!(seen.header("x-title"), None);
}

#[tokio::test]
async fn the_reported_cost_is_read_in_micro_usd() {
    let fake = FakeUpstream::start(openrouter).await;
    let reply = crate::providers()
        .call(&openrouter_request(&fake, json!({})))
        .await
        .unwrap();
    assert_eq!(reply.usage.prompt, 194);
    assert_eq!(reply.usage.provider_cost_micro_usd, Some(95));

    let events = collect(
        crate::providers()
            .call_stream(&openrouter_request(&fake, json!({})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events.len(), 3, "{events:?}");
    let Some(Ok(StreamEvent::Usage { usage, data })) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(usage.provider_cost_micro_usd, Some(95));
    let chunk: Value = serde_json::from_slice(data).unwrap();
    assert_eq!(chunk["usage"]["cost"], 0.0000953);
}
