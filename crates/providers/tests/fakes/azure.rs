//! The Azure OpenAI adapter against a fake Azure resource that answers as
//! Azure's REST reference documents: deployment URLs with `api-version`
//! and the v1 path, the `api-key` header, `prompt_filter_results` and
//! `content_filter_results` in answers and streams, content-filter errors,
//! and 429s with `retry-after-ms`.

use axum::response::Response;
use serde_json::{Value, json};
use tollgate_core::ErrorKind;
use tollgate_providers::{ProviderRequest, StreamEvent, Usage};

use crate::server::{FakeUpstream, Seen, json, sse};
use crate::{collect, providers, request};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const API_VERSION: &str = "2024-10-21";
/// The deployments the fake resource has.
const DEPLOYMENTS: [&str; 2] = ["prod-gpt-4o", "gpt-4o-mini"];

fn error(status: u16, headers: &[(&str, &str)], code: &str, message: &str) -> Response {
    json(
        status,
        headers,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn filter_results() -> Value {
    json!({
        "hate": {"filtered": false, "severity": "safe"},
        "self_harm": {"filtered": false, "severity": "safe"},
        "sexual": {"filtered": false, "severity": "safe"},
        "violence": {"filtered": false, "severity": "safe"}
    })
}

/// Which deployment a request is for, or Azure's answer refusing it.
fn deployment(seen: &Seen) -> Result<String, Box<Response>> {
    if seen.header("api-key") != Some(KEY) {
        return Err(Box::new(error(
            401,
            &[],
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        )));
    }
    let (path, query) = seen.target.split_once('?').unwrap_or((&seen.target, ""));
    let name = if path == "/openai/v1/chat/completions" {
        seen.body["model"].as_str().unwrap_or_default().to_owned()
    } else {
        let Some(name) = path
            .strip_prefix("/openai/deployments/")
            .and_then(|rest| rest.strip_suffix("/chat/completions"))
        else {
            return Err(Box::new(error(404, &[], "404", "Resource not found")));
        };
        if query != format!("api-version={API_VERSION}") {
            return Err(Box::new(error(404, &[], "404", "Resource not found")));
        }
        name.to_owned()
    };
    if !DEPLOYMENTS.contains(&name.as_str()) {
        return Err(Box::new(error(
            404,
            &[],
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        )));
    }
    Ok(name)
}

/// The fake resource: the prompt's text picks the answer.
fn azure(seen: &Seen) -> Response {
    if let Err(refusal) = deployment(seen) {
        return *refusal;
    }
    let prompt = seen.body["messages"][0]["content"].as_str().unwrap_or("");
    if prompt.contains("blocked") {
        return json(
            400,
            &[],
            &json!({"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                "type": null,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": {"filtered": true, "severity": "medium"},
                        "self_harm": {"filtered": false, "severity": "safe"},
                        "sexual": {"filtered": false, "severity": "safe"},
                        "violence": {"filtered": false, "severity": "safe"}
                    }
                }
            }}),
        );
    }
    if prompt.contains("busy") {
        return error(
            429,
            &[("retry-after-ms", "2500")],
            "429",
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 3 seconds.",
        );
    }
    let filtered = prompt.contains("filter the answer");
    let (content, finish) = if filtered {
        (Value::Null, "content_filter")
    } else {
        (json!("Hello from Azure."), "stop")
    };
    let usage = json!({
        "completion_tokens": 5,
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0, "reasoning_tokens": 0, "rejected_prediction_tokens": 0},
        "prompt_tokens": 12,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 4},
        "total_tokens": 17
    });
    if seen.body["stream"] == true {
        let chunk = |choices: Value| {
            json!({
                "choices": choices, "created": 1733400000, "id": "chatcmpl-AzureFake1",
                "model": "gpt-4o-2024-11-20", "object": "chat.completion.chunk",
                "system_fingerprint": "fp_b705f0c291"
            })
        };
        let mut events = vec![json!({
            "choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}]
        })];
        events.push(chunk(json!([{"content_filter_results": {}, "delta": {"content": "", "refusal": null, "role": "assistant"}, "finish_reason": null, "index": 0, "logprobs": null}])));
        for piece in ["Hello", " from", " Azure."] {
            events.push(chunk(json!([{"content_filter_results": filter_results(), "delta": {"content": piece}, "finish_reason": null, "index": 0, "logprobs": null}])));
        }
        events.push(chunk(json!([{"content_filter_results": {}, "delta": {}, "finish_reason": "stop", "index": 0, "logprobs": null}])));
        if seen.body["stream_options"]["include_usage"] == true {
            let mut last = chunk(json!([]));
            last["usage"] = usage;
            events.push(last);
        }
        return sse(&events);
    }
    json(
        200,
        &[("apim-request-id", "0f4c1b4e-aaaa-bbbb-cccc-000000000000")],
        &json!({
            "choices": [{
                "content_filter_results": if filtered { json!({"hate": {"filtered": true, "severity": "high"}}) } else { filter_results() },
                "finish_reason": finish,
                "index": 0,
                "logprobs": null,
                "message": {"content": content, "refusal": null, "role": "assistant"}
            }],
            "created": 1733400000,
            "id": "chatcmpl-AzureFake1",
            "model": "gpt-4o-2024-11-20",
            "object": "chat.completion",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}],
            "system_fingerprint": "fp_b705f0c291",
            "usage": usage
        }),
    )
}

fn azure_request(
    fake: &FakeUpstream,
    model: &str,
    content: &str,
    settings: Value,
) -> ProviderRequest {
    ProviderRequest {
        provider: "azure_openai".into(),
        credential: KEY.into(),
        upstream_model: model.into(),
        settings: settings.to_string(),
        ..request(&fake.base_url(), content)
    }
}

fn classic() -> Value {
    json!({"api_version": API_VERSION, "deployments": {"gpt-4o": "prod-gpt-4o"}})
}

#[tokio::test]
async fn classic_deployment_urls_carry_the_version_and_the_api_key() {
    let fake = FakeUpstream::start(azure).await;
    let reply = providers()
        .call(&azure_request(&fake, "gpt-4o", "hello", classic()))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from Azure."
    );
    assert_eq!(
        reply.usage,
        Usage {
            prompt: 12,
            completion: 5,
            cached: 4,
            ..Usage::default()
        }
    );
    let seen = fake.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.target,
        "/openai/deployments/prod-gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(seen.header("api-key"), Some(KEY));
    assert_eq!(seen.header("authorization"), None);

    // A model with no deployment listed goes to the deployment of its name.
    providers()
        .call(&azure_request(&fake, "gpt-4o-mini", "hello", classic()))
        .await
        .unwrap();
    assert_eq!(
        fake.last().target,
        "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    );
}

#[tokio::test]
async fn the_v1_path_names_the_deployment_in_the_body() {
    let fake = FakeUpstream::start(azure).await;
    let settings = json!({"deployments": {"gpt-4o": "prod-gpt-4o"}});
    let mut call = azure_request(&fake, "gpt-4o", "hello", settings);
    call.completion_cap = Some(300);
    providers().call(&call).await.unwrap();
    let seen = fake.last();
    assert_eq!(seen.target, "/openai/v1/chat/completions");
    assert_eq!(seen.body["model"], "prod-gpt-4o");
    assert_eq!(seen.body["max_completion_tokens"], 300);
    assert_eq!(seen.header("api-key"), Some(KEY));
}

#[tokio::test]
async fn streams_skip_nothing_and_end_with_usage() {
    let fake = FakeUpstream::start(azure).await;
    let events = collect(
        providers()
            .call_stream(&azure_request(&fake, "gpt-4o", "hello", classic()))
            .await
            .unwrap(),
    )
    .await;
    // prompt filter results, role, three pieces, finish; then usage.
    assert_eq!(events.len(), 7, "{events:?}");
    let Some(Ok(StreamEvent::Usage { usage, .. })) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!((usage.prompt, usage.completion, usage.cached), (12, 5, 4));
    let sent = fake.last().body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn content_filters_are_content_policy_refusals() {
    let fake = FakeUpstream::start(azure).await;
    let error = providers()
        .call(&azure_request(&fake, "gpt-4o", "blocked words", classic()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ContentPolicy);
    let error = providers()
        .call_stream(&azure_request(&fake, "gpt-4o", "blocked words", classic()))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::ContentPolicy);

    // The prompt passed, the completion was withheld.
    let error = providers()
        .call(&azure_request(
            &fake,
            "gpt-4o",
            "filter the answer",
            classic(),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ContentPolicy);
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_ms() {
    let fake = FakeUpstream::start(azure).await;
    let error = providers()
        .call(&azure_request(&fake, "gpt-4o", "busy", classic()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamRateLimited);
    assert_eq!(error.retry_after_secs, Some(3));
}

#[tokio::test]
async fn refusals_of_the_key_and_the_deployment() {
    let fake = FakeUpstream::start(azure).await;
    let mut wrong_key = azure_request(&fake, "gpt-4o", "hello", classic());
    wrong_key.credential = "not-the-key".into();
    let error = providers().call(&wrong_key).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamAuth);
    assert!(!error.message.contains("not-the-key"));

    let error = providers()
        .call(&azure_request(&fake, "gpt-5", "hello", classic()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::ModelNotFound);
}
