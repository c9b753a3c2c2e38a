//! A fake of Ollama's native API: `POST /api/chat` (answers whole or, as
//! Ollama does when `stream` is absent or true, as NDJSON) and `GET
//! /api/tags` (the configured models). Ollama takes no key; when the mock
//! has one, it is asked for as `Authorization: Bearer`, as a proxy in front
//! of Ollama would. Errors are Ollama's `{"error": "text"}`.
//!
//! Requests need a `model` and `messages` with roles `system`, `user`,
//! `assistant` or `tool`. The reply echoes the trailing `tool` messages'
//! content, else the last user message, without `[[mock:…]]` directives;
//! it is a call of the first tool instead when `tool_call=true` asks (its
//! arguments the reply when it is a JSON object, else `{"text": reply}`).
//! `prompt_eval_count` is 3 + per message 4 + ceil(content bytes / 4)
//! (plus ceil(bytes / 4) of the tools' JSON); `eval_count` max(1,
//! ceil(reply bytes / 4)) or `completion_tokens`, held to
//! `options.num_predict` (then `done_reason: length`).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tollgate_providers::mock::{Directives, Refusal, split_piece};

use crate::server::{JSON, MAX_BODY_BYTES, MockState, paced_body};
use crate::stats::Stats;

const NDJSON: axum::http::HeaderValue =
    axum::http::HeaderValue::from_static("application/x-ndjson");
const CREATED_AT: &str = "2026-12-03T00:00:00.000000Z";
/// Ollama's 503 when its queue of pending requests is full.
const SERVER_BUSY: &str = "server busy, please try again.  maximum pending requests exceeded";

pub(crate) async fn chat(State(state): State<MockState>, request: Request) -> Response {
    let inner = state.inner();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return fail(&state, 413, "request body too large");
    };
    let authorization = parts.headers.get(AUTHORIZATION);
    let key = authorization
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let index = inner.stats.record_chat(&body, authorization, key);
    if let Some(expected) = inner.api_key()
        && key != Some(expected)
    {
        return fail(&state, 401, "unauthorized");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return fail(
            &state,
            400,
            "invalid character 'x' looking for beginning of value",
        );
    };
    let Some(model) = request["model"].as_str().filter(|model| !model.is_empty()) else {
        return fail(&state, 400, "model is required");
    };
    let Some(messages) = request["messages"].as_array() else {
        return fail(&state, 400, "messages is required");
    };
    if let Some(role) = messages
        .iter()
        .filter_map(|message| message["role"].as_str())
        .find(|role| !["system", "user", "assistant", "tool"].contains(role))
    {
        return fail(&state, 400, &format!("invalid role: {role}"));
    }
    let source = reply_source(messages);
    let (directives, reply) = Directives::extract(&source);
    let directives = directives.or(inner.directives_of(key));
    let mut reply = reply.into_owned();
    if directives.error == Some(Refusal::ContextLengthExceeded) {
        return fail(&state, 400, "the input length exceeds the context length");
    }
    if directives.overloaded == Some(true) {
        return fail(&state, 503, SERVER_BUSY);
    }
    if let Some(status) = directives
        .status
        .filter(|status| *status >= 400)
        .or_else(|| inner.configured_failure(index))
    {
        return fail(&state, status, "mock failure");
    }
    let behavior = inner.behavior();
    if let Some(latency) = directives
        .latency_ms
        .map(std::time::Duration::from_millis)
        .or(Some(behavior.latency))
        && !latency.is_zero()
    {
        tokio::time::sleep(latency).await;
    }
    let tool = (directives.tool_call == Some(true))
        .then(|| {
            request
                .pointer("/tools/0/function/name")
                .and_then(Value::as_str)
        })
        .flatten();
    let arguments = tool.map(|_| match serde_json::from_str::<Value>(&reply) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "text": reply }),
    });
    let mut prompt = 3 + request
        .get("tools")
        .map_or(0, |tools| tokens(&tools.to_string()));
    for message in messages {
        prompt += 4 + tokens(message["content"].as_str().unwrap_or_default());
    }
    let mut completion = directives
        .completion_tokens
        .or(behavior.completion_tokens)
        .unwrap_or_else(|| tokens(&reply).max(1));
    let mut done_reason = "stop";
    if let Some(cap) = request
        .pointer("/options/num_predict")
        .and_then(Value::as_u64)
        && u64::from(completion) > cap
    {
        completion = u32::try_from(cap).unwrap_or(u32::MAX);
        done_reason = "length";
        let mut end = (completion as usize).saturating_mul(4).min(reply.len());
        while !reply.is_char_boundary(end) {
            end -= 1;
        }
        reply.truncate(end);
    }
    let done = json!({
        "model": model, "created_at": CREATED_AT,
        "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": done_reason,
        "total_duration": 1_000_000, "load_duration": 100_000,
        "prompt_eval_count": prompt, "prompt_eval_duration": 200_000,
        "eval_count": completion, "eval_duration": 700_000,
    });
    let message = |content: &str| {
        let mut message = json!({"role": "assistant", "content": content});
        if let (Some(name), Some(arguments)) = (tool, &arguments) {
            message["tool_calls"] = json!([{"function": {"name": name, "arguments": arguments}}]);
        }
        message
    };
    let stream = request["stream"].as_bool() != Some(false);
    if !stream {
        let mut whole = done;
        whole["message"] = message(if tool.is_some() { "" } else { &reply });
        return ([(CONTENT_TYPE, JSON)], whole.to_string()).into_response();
    }
    Stats::bump(&inner.stats.streams);
    let chunks = directives.chunks.unwrap_or(behavior.chunks).max(1) as usize;
    let mut lines: Vec<Bytes> = if tool.is_some() {
        vec![line(
            &json!({"model": model, "created_at": CREATED_AT, "message": message(""), "done": false}),
        )]
    } else {
        (0..chunks)
            .map(|piece| {
                line(&json!({"model": model, "created_at": CREATED_AT,
                    "message": {"role": "assistant", "content": split_piece(&reply, chunks, piece)},
                    "done": false}))
            })
            .collect()
    };
    lines.push(line(&done));
    let delay = directives
        .chunk_delay_ms
        .map_or(behavior.chunk_delay, std::time::Duration::from_millis);
    let body = paced_body(
        lines,
        delay,
        directives.cut_after.or(behavior.cut_after),
        state.clone(),
    );
    ([(CONTENT_TYPE, NDJSON)], body).into_response()
}

pub(crate) async fn tags(State(state): State<MockState>) -> Response {
    let models: Vec<Value> = state
        .inner()
        .models()
        .iter()
        .map(|name| {
            json!({"name": name, "model": name, "modified_at": CREATED_AT, "size": 2_019_393_189u64,
                "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M"}})
        })
        .collect();
    (
        [(CONTENT_TYPE, JSON)],
        json!({ "models": models }).to_string(),
    )
        .into_response()
}

fn line(value: &Value) -> Bytes {
    let mut out = value.to_string().into_bytes();
    out.push(b'\n');
    Bytes::from(out)
}

fn tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

fn reply_source(messages: &[Value]) -> String {
    let results: Vec<&str> = messages
        .iter()
        .rev()
        .take_while(|message| message["role"] == "tool")
        .filter_map(|message| message["content"].as_str())
        .collect();
    if !results.is_empty() {
        return results.into_iter().rev().collect::<Vec<_>>().join("\n");
    }
    messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn fail(state: &MockState, status: u16, message: &str) -> Response {
    Stats::bump(&state.inner().stats.failures);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(CONTENT_TYPE, JSON)],
        json!({ "error": message }).to_string(),
    )
        .into_response()
}
