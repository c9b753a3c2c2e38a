//! A preset's quirks on the wire: a Mistral-like server that refuses
//! fields it does not know (as Mistral's API answers 422 to an extra
//! field) gets no `stream_options`, and still reports its usage in the
//! last chunk unasked.

use axum::response::Response;
use serde_json::json;
use tollgate_core::ErrorKind;
use tollgate_providers::{ProviderRequest, StreamEvent};

use crate::server::{FakeUpstream, Seen, json, sse};
use crate::{collect, providers, request};

fn strict_server(seen: &Seen) -> Response {
    if let Some(extra) = seen.body.get("stream_options") {
        return json(
            422,
            &[],
            &json!({"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"], "msg": "Extra inputs are not permitted", "input": extra}]}, "type": "invalid_request_error", "param": null, "code": null}),
        );
    }
    let head = json!({"id": "cmpl-e5cc70bb28c444948073e77776eb30ef", "object": "chat.completion.chunk", "created": 1702256327, "model": "mistral-small-latest"});
    let mut first = head.clone();
    first["choices"] = json!([{"index": 0, "delta": {"role": "assistant", "content": "Bonjour"}, "finish_reason": null}]);
    let mut last = head;
    last["choices"] = json!([{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]);
    last["usage"] = json!({"prompt_tokens": 10, "total_tokens": 13, "completion_tokens": 3});
    sse(&[first, last])
}

fn compatible(fake: &FakeUpstream, settings: &str) -> ProviderRequest {
    ProviderRequest {
        provider: "openai_compatible".into(),
        base_url: format!("{}/v1", fake.base_url()),
        upstream_model: "mistral-small-latest".into(),
        settings: settings.into(),
        ..request(&fake.base_url(), "hello")
    }
}

#[tokio::test]
async fn the_mistral_preset_sends_no_stream_options_and_reads_usage() {
    let fake = FakeUpstream::start(strict_server).await;
    let events = collect(
        providers()
            .call_stream(&compatible(&fake, r#"{"preset":"mistral"}"#))
            .await
            .unwrap(),
    )
    .await;
    let Some(Ok(StreamEvent::Usage { usage, .. })) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!((usage.prompt, usage.completion), (10, 3));
    let seen = fake.last();
    assert_eq!(seen.target, "/v1/chat/completions");
    assert_eq!(seen.body["stream"], true);
    assert!(seen.body.get("stream_options").is_none());

    // Without the preset the option is sent, and such a server refuses it.
    let error = providers()
        .call_stream(&compatible(&fake, ""))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
}
