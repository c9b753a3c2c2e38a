//! Ollama's `/api/chat` answers as Chat Completions: the whole answer, and
//! the NDJSON stream (one object a line, the last with `done: true` and the
//! counts). Usage is `prompt_eval_count` and `eval_count`; a prompt Ollama
//! served from its cache may come without `prompt_eval_count`, and is then
//! estimated from the request. Ollama gives tool calls no ids: the gateway
//! makes them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::GatewayError;

use crate::call::{EventStream, StreamEvent};
use crate::chat::{
    AssistantMessage, Choice, Chunk, ChunkChoice, Completion, Delta, FunctionCallDelta, ToolCall,
    ToolCallDelta, now_secs,
};
use crate::errors;
use crate::event_stream::{Framing, StreamDecoder, decode_events};
use crate::exchange::ByteStream;
use crate::usage::Usage;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: String,
    #[serde(default)]
    message: Option<ResponseMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// A fresh prefix for the tool call ids of one answer.
fn answer_id() -> String {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("ollama-{:x}-{sequence:x}", now_secs())
}

fn arguments_text(arguments: &Value) -> String {
    if arguments.is_null() {
        "{}".to_owned()
    } else {
        arguments.to_string()
    }
}

fn finish_reason(done_reason: Option<&str>, called_tools: bool) -> &'static str {
    match done_reason {
        Some("length") => "length",
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// Usage by Ollama's counts; a missing prompt count is estimated from the
/// request.
fn usage_of(response: &ChatResponse, request_body: &[u8]) -> Usage {
    let clamp = |count: u64| u32::try_from(count).unwrap_or(u32::MAX);
    let prompt = match response.prompt_eval_count {
        Some(count) => clamp(count),
        None => Usage::estimate(request_body, 0).prompt,
    };
    Usage {
        prompt,
        completion: clamp(response.eval_count.unwrap_or(0)),
        ..Usage::default()
    }
}

/// The Chat Completions body and usage of a whole Ollama answer.
pub(crate) fn to_chat(body: &[u8], request_body: &[u8]) -> Result<(Bytes, Usage), GatewayError> {
    let response: ChatResponse = serde_json::from_slice(body).map_err(|_| errors::unreadable())?;
    if response.error.is_some() || !response.done {
        return Err(errors::unreadable());
    }
    let usage = usage_of(&response, request_body);
    let id = answer_id();
    let message = response.message.unwrap_or_default();
    let tool_calls: Vec<ToolCall> = message
        .tool_calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            ToolCall::function(
                format!("call_{id}_{index}"),
                call.function.name.clone(),
                arguments_text(&call.function.arguments),
            )
        })
        .collect();
    let finish = finish_reason(response.done_reason.as_deref(), !tool_calls.is_empty());
    let choice = Choice {
        index: 0,
        message: AssistantMessage {
            role: "assistant",
            content: (!message.content.is_empty() || tool_calls.is_empty())
                .then_some(message.content),
            reasoning_content: message.thinking.filter(|thinking| !thinking.is_empty()),
            tool_calls,
            refusal: None,
        },
        finish_reason: Some(finish),
        logprobs: None,
    };
    let completion = Completion::new(
        format!("chatcmpl-{id}"),
        now_secs(),
        response.model,
        vec![choice],
        usage,
    );
    let body = serde_json::to_vec(&completion).map_err(|_| errors::unreadable())?;
    Ok((Bytes::from(body), usage))
}

/// The stream of chunks of one Ollama NDJSON body.
pub(crate) fn events(body: ByteStream, idle_timeout: Duration, request_body: Bytes) -> EventStream {
    let id = answer_id();
    decode_events(
        body,
        idle_timeout,
        Framing::Lines,
        Lines {
            chunk_id: format!("chatcmpl-{id}"),
            id,
            model: String::new(),
            created: now_secs(),
            request_body,
            started: false,
            tool_calls: 0,
            done: None,
        },
    )
}

struct Lines {
    id: String,
    chunk_id: String,
    model: String,
    created: u64,
    request_body: Bytes,
    started: bool,
    tool_calls: u32,
    /// The usage of the `done` line, once it came.
    done: Option<Usage>,
}

impl StreamDecoder for Lines {
    fn decode(&mut self, data: Bytes) -> Result<Option<StreamEvent>, GatewayError> {
        let line: ChatResponse = serde_json::from_slice(&data).map_err(|_| errors::unreadable())?;
        if line.error.is_some() {
            return Err(errors::stream_error_event());
        }
        if !line.model.is_empty() {
            self.model.clone_from(&line.model);
        }
        let message = line.message.unwrap_or_default();
        let mut tool_calls = Vec::with_capacity(message.tool_calls.len());
        for call in &message.tool_calls {
            let index = self.tool_calls;
            self.tool_calls += 1;
            tool_calls.push(ToolCallDelta {
                index,
                id: Some(format!("call_{}_{index}", self.id)),
                kind: Some("function"),
                function: FunctionCallDelta {
                    name: Some(call.function.name.clone()),
                    arguments: arguments_text(&call.function.arguments),
                },
            });
        }
        let finish = line
            .done
            .then(|| finish_reason(line.done_reason.as_deref(), self.tool_calls > 0));
        if line.done {
            let counts = ChatResponse {
                prompt_eval_count: line.prompt_eval_count,
                eval_count: line.eval_count,
                ..ChatResponse::default()
            };
            self.done = Some(usage_of(&counts, &self.request_body));
        }
        let first = !self.started;
        self.started = true;
        let delta = Delta {
            role: first.then_some("assistant"),
            content: (!message.content.is_empty() || first).then_some(message.content),
            reasoning_content: message.thinking.filter(|thinking| !thinking.is_empty()),
            tool_calls,
        };
        let empty = delta.role.is_none()
            && delta.content.is_none()
            && delta.reasoning_content.is_none()
            && delta.tool_calls.is_empty()
            && finish.is_none();
        if empty {
            return Ok(None);
        }
        let choice = ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        };
        Ok(Some(StreamEvent::Data(
            Chunk::of(&self.chunk_id, self.created, &self.model, choice).to_bytes(),
        )))
    }

    fn body_ended(&mut self) -> Result<StreamEvent, GatewayError> {
        let usage = self.done.ok_or_else(errors::stream_cut)?;
        let data = Chunk::usage(&self.chunk_id, self.created, &self.model, usage).to_bytes();
        Ok(StreamEvent::Usage { usage, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};
    use serde_json::json;

    use crate::client::HttpError;

    #[test]
    fn a_whole_answer_with_tool_calls_and_counts() {
        let (body, usage) = to_chat(
            json!({"model": "llama3.2", "created_at": "2026-12-03T10:00:00Z",
                "message": {"role": "assistant", "content": "",
                    "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "x"}}}]},
                "done": true, "done_reason": "stop", "total_duration": 5, "prompt_eval_count": 26, "eval_count": 12})
            .to_string()
            .as_bytes(),
            b"{}",
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"q\":\"x\"}"
        );
        assert_eq!((usage.prompt, usage.completion), (26, 12));
    }

    #[tokio::test]
    async fn an_ndjson_stream_ends_with_the_done_line_and_the_body() {
        let lines = [
            json!({"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": false}),
            json!({"model": "m", "message": {"role": "assistant", "content": "lo"}, "done": false}),
            json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,
                "done_reason": "length", "prompt_eval_count": 9, "eval_count": 2}),
        ];
        let pieces: Vec<Result<Bytes, HttpError>> = lines
            .iter()
            .map(|line| Ok(Bytes::from(format!("{line}\n"))))
            .collect();
        let events: Vec<_> = events(
            Box::pin(stream::iter(pieces)),
            Duration::from_secs(5),
            Bytes::new(),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 4, "{events:?}");
        let chunk = |index: usize| -> Value {
            match &events[index] {
                Ok(StreamEvent::Data(data)) => serde_json::from_slice(data).unwrap(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            chunk(0)["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hel"})
        );
        assert_eq!(chunk(2)["choices"][0]["finish_reason"], "length");
        assert!(
            matches!(&events[3], Ok(StreamEvent::Usage { usage, .. }) if usage.prompt == 9 && usage.completion == 2)
        );

        let cut: Vec<Result<Bytes, HttpError>> = vec![Ok(Bytes::from(format!("{}\n", lines[0])))];
        let events: Vec<_> = super::events(
            Box::pin(stream::iter(cut)),
            Duration::from_secs(5),
            Bytes::new(),
        )
        .collect()
        .await;
        assert!(events.last().unwrap().is_err());
    }
}
