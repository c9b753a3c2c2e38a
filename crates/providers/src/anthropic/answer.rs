//! Chat Completions answers written as Anthropic Messages answers: the way
//! back for clients that speak Messages to accounts that do not (the
//! inverse of [`super::response`] and [`super::stream`]).
//!
//! Whole answers: the content becomes a text block, tool calls `tool_use`
//! blocks (ids kept, arguments parsed), the finish reason the stop reason
//! (`stop` → `end_turn`, `length` → `max_tokens`, `tool_calls` →
//! `tool_use`, `content_filter` → `refusal`), and usage Anthropic's counts
//! (`input_tokens` without the cache reads). Reasoning text is left out:
//! Messages carries thinking only as signed blocks Anthropic made.
//!
//! Streams ([`MessagesStreamWriter`]): `message_start` first, then a
//! content block per run of text or per tool call (`content_block_start`,
//! `text_delta` or `input_json_delta` deltas, `content_block_stop`), and at
//! the end `message_delta` (stop reason and usage) and `message_stop`.

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tollgate_core::GatewayError;

use crate::chat::{AnswerView, StreamTranslator, UsageView};
use crate::errors;
use crate::sse::write_named_event;

/// Anthropic's usage counts from Chat's (`input_tokens` leaves out the
/// cache reads).
fn messages_usage(usage: &UsageView) -> Value {
    let cached = usage.cached();
    json!({
        "input_tokens": usage.prompt_tokens.saturating_sub(cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    })
}

/// Anthropic's stop reason for OpenAI's finish reason.
fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// A message id: the answer's own when it already is one.
fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({}),
    }
}

/// A whole Chat Completions answer as a Messages answer for `model` (the
/// model the client named).
pub fn messages_response(chat: &[u8], model: &str) -> Result<Bytes, GatewayError> {
    let answer: AnswerView = serde_json::from_slice(chat).map_err(|_| errors::unreadable())?;
    let choice = answer.choices.into_iter().next();
    let finish = choice
        .as_ref()
        .and_then(|choice| choice.finish_reason.clone());
    let message = choice.and_then(|choice| choice.message).unwrap_or_default();
    let mut content = Vec::new();
    if let Some(text) = message.content.filter(|text| !text.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message.tool_calls {
        content.push(json!({
            "type": "tool_use",
            "id": call.id.unwrap_or_default(),
            "name": call.function.name.unwrap_or_default(),
            "input": tool_input(call.function.arguments.as_deref().unwrap_or("{}")),
        }));
    }
    let body = json!({
        "id": message_id(&answer.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish.as_deref()),
        "stop_sequence": null,
        "usage": messages_usage(&answer.usage.unwrap_or_default()),
    });
    Ok(Bytes::from(body.to_string()))
}

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// The tool call of this Chat index.
    Tool(u32),
}

/// Writes a Chat Completions stream as Messages events, chunk by chunk.
#[derive(Debug)]
pub struct MessagesStreamWriter {
    model: String,
    started: bool,
    open: Option<Block>,
    /// The index the next content block gets.
    next_index: u32,
    stop_reason: &'static str,
    usage: UsageView,
}

impl MessagesStreamWriter {
    /// A writer for an answer to `model` (the model the client named).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            stop_reason: "end_turn",
            usage: UsageView::default(),
        }
    }

    fn start(&mut self, id: &str, out: &mut BytesMut) {
        self.started = true;
        write_named_event(
            out,
            &json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
    }

    fn open_block(&mut self, block: Block, content_block: Value, out: &mut BytesMut) {
        self.close_block(out);
        self.open = Some(block);
        write_named_event(
            out,
            &json!({"type": "content_block_start", "index": self.next_index, "content_block": content_block}),
        );
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            write_named_event(
                out,
                &json!({"type": "content_block_stop", "index": self.next_index}),
            );
            self.next_index += 1;
        }
    }

    fn delta(&self, delta: Value, out: &mut BytesMut) {
        write_named_event(
            out,
            &json!({"type": "content_block_delta", "index": self.next_index, "delta": delta}),
        );
    }
}

impl StreamTranslator for MessagesStreamWriter {
    fn chunk(&mut self, data: &[u8]) -> Result<Bytes, GatewayError> {
        let chunk: AnswerView = serde_json::from_slice(data).map_err(|_| errors::unreadable())?;
        let mut out = BytesMut::new();
        if !self.started {
            self.start(&chunk.id, &mut out);
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(out.freeze());
        };
        if let Some(finish) = choice.finish_reason.as_deref() {
            self.stop_reason = stop_reason(Some(finish));
        }
        let delta = choice.message.unwrap_or_default();
        if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
            if self.open != Some(Block::Text) {
                self.open_block(Block::Text, json!({"type": "text", "text": ""}), &mut out);
            }
            self.delta(json!({"type": "text_delta", "text": text}), &mut out);
        }
        for (position, call) in delta.tool_calls.into_iter().enumerate() {
            let index = call.index.unwrap_or(u32::try_from(position).unwrap_or(0));
            if let Some(name) = call
                .function
                .name
                .filter(|_| self.open != Some(Block::Tool(index)))
            {
                let block = json!({"type": "tool_use", "id": call.id.unwrap_or_default(), "name": name, "input": {}});
                self.open_block(Block::Tool(index), block, &mut out);
            }
            if let Some(arguments) = call
                .function
                .arguments
                .filter(|arguments| !arguments.is_empty())
                && self.open == Some(Block::Tool(index))
            {
                self.delta(
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                    &mut out,
                );
            }
        }
        Ok(out.freeze())
    }

    fn usage(&mut self, data: &[u8]) {
        if let Ok(AnswerView {
            usage: Some(usage), ..
        }) = serde_json::from_slice(data)
        {
            self.usage = usage;
        }
    }

    fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.started {
            self.start("", &mut out);
        }
        self.close_block(&mut out);
        write_named_event(
            &mut out,
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": messages_usage(&self.usage)}),
        );
        write_named_event(&mut out, &json!({"type": "message_stop"}));
        out.freeze()
    }

    fn error_event(&self, error: &GatewayError) -> Bytes {
        let mut out = BytesMut::new();
        write_named_event(&mut out, &error.anthropic_body());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::read_named_events;

    #[test]
    fn a_whole_answer_with_tool_calls() {
        let chat = json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 10}}});
        let body: Value = serde_json::from_slice(
            &messages_response(chat.to_string().as_bytes(), "claude-x").unwrap(),
        )
        .unwrap();
        assert_eq!(body["id"], "msg_chatcmpl-1");
        assert_eq!(body["model"], "claude-x");
        assert_eq!(body["stop_reason"], "tool_use");
        assert_eq!(
            body["content"],
            json!([{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}])
        );
        assert_eq!(body["usage"]["input_tokens"], 20);
        assert_eq!(body["usage"]["cache_read_input_tokens"], 10);
        assert_eq!(body["usage"]["output_tokens"], 9);
    }

    #[test]
    fn a_stream_becomes_blocks_between_start_and_stop() {
        let mut writer = MessagesStreamWriter::new("claude-x");
        let mut out = Vec::new();
        for chunk in [
            json!({"id": "c1", "choices": [{"delta": {"role": "assistant", "content": ""}}]}),
            json!({"id": "c1", "choices": [{"delta": {"content": "Let me "}}]}),
            json!({"id": "c1", "choices": [{"delta": {"content": "check."}}]}),
            json!({"id": "c1", "choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                "function": {"name": "weather", "arguments": ""}}]}}]}),
            json!({"id": "c1", "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}}]}),
            json!({"id": "c1", "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}}]}),
            json!({"id": "c1", "choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ] {
            out.extend_from_slice(&writer.chunk(chunk.to_string().as_bytes()).unwrap());
        }
        writer.usage(
            json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7}})
                .to_string()
                .as_bytes(),
        );
        out.extend_from_slice(&writer.finish());
        let events = read_named_events(&out);
        let kinds: Vec<&str> = events
            .iter()
            .map(|event| event["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0]["message"]["id"], "msg_c1");
        assert_eq!(events[5]["index"], 1);
        assert_eq!(events[5]["content_block"]["name"], "weather");
        assert_eq!(events[6]["delta"]["partial_json"], "{\"city\":");
        assert_eq!(events[9]["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[9]["usage"]["output_tokens"], 7);
        assert_eq!(events[9]["usage"]["input_tokens"], 12);
    }

    #[test]
    fn an_empty_stream_still_starts_and_stops() {
        let events = read_named_events(&MessagesStreamWriter::new("m").finish());
        assert_eq!(events.len(), 3);
        assert_eq!(events[1]["delta"]["stop_reason"], "end_turn");
    }
}
