//! Chat Completions answers written as Responses API answers.
//!
//! Whole answers become a `response` object: the content a `message` item
//! with one `output_text` part, each tool call a `function_call` item (its
//! Chat id as `call_id`), usage in Responses' names; a `length` finish is
//! status `incomplete` with reason `max_output_tokens`.
//!
//! Streams ([`ResponsesStreamWriter`]) follow the documented sequence:
//! `response.created`, `response.in_progress`; per item
//! `response.output_item.added`, then for a message
//! `response.content_part.added`, `response.output_text.delta`…,
//! `response.output_text.done`, `response.content_part.done`, and for a
//! call `response.function_call_arguments.delta`…,
//! `response.function_call_arguments.done`; `response.output_item.done`;
//! and last `response.completed` with the whole response and its usage.
//! Every event carries its `sequence_number`.

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tollgate_core::GatewayError;

use crate::chat::{AnswerView, StreamTranslator, UsageView, now_secs};
use crate::errors;
use crate::sse::write_named_event;

/// Responses' usage from Chat's.
fn usage_of(usage: Option<&UsageView>) -> Value {
    let usage = usage.copied().unwrap_or_default();
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached()},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning()},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    })
}

fn response_id(chat_id: &str) -> String {
    format!("resp_{}", chat_id.trim_start_matches("chatcmpl-"))
}

/// The `response` object around `output`.
fn response(
    id: &str,
    created_at: u64,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Option<Value>,
) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "metadata": {},
        "parallel_tool_calls": true,
        "temperature": null,
        "top_p": null,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "store": false,
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content: Vec<Value> = if status == "in_progress" {
        Vec::new()
    } else {
        vec![text_part(text)]
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// A whole Chat Completions answer as a Responses `response` for `model`.
pub fn response_object(chat: &[u8], model: &str) -> Result<Bytes, GatewayError> {
    let answer: AnswerView = serde_json::from_slice(chat).map_err(|_| errors::unreadable())?;
    let id = response_id(&answer.id);
    let choice = answer.choices.into_iter().next();
    let finish = choice
        .as_ref()
        .and_then(|choice| choice.finish_reason.clone());
    let message = choice.and_then(|choice| choice.message).unwrap_or_default();
    let mut output = Vec::new();
    if let Some(text) = message.content.filter(|text| !text.is_empty()) {
        output.push(message_item(&format!("msg_{id}"), &text, "completed"));
    }
    for (index, call) in message.tool_calls.into_iter().enumerate() {
        let call_id = call.id.unwrap_or_default();
        output.push(call_item(
            &format!("fc_{id}_{index}"),
            &call_id,
            &call.function.name.unwrap_or_default(),
            call.function.arguments.as_deref().unwrap_or("{}"),
            "completed",
        ));
    }
    let status = if finish.as_deref() == Some("length") {
        "incomplete"
    } else {
        "completed"
    };
    let body = response(
        &id,
        now_secs(),
        model,
        status,
        output,
        Some(usage_of(answer.usage.as_ref())),
    );
    Ok(Bytes::from(body.to_string()))
}

/// The item being written.
#[derive(Debug)]
enum Open {
    Message {
        id: String,
        text: String,
    },
    Call {
        chat_index: u32,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Writes a Chat Completions stream as Responses events, chunk by chunk.
#[derive(Debug)]
pub struct ResponsesStreamWriter {
    model: String,
    id: String,
    created_at: u64,
    sequence: u64,
    started: bool,
    open: Option<Open>,
    done: Vec<Value>,
    incomplete: bool,
    usage: Option<UsageView>,
}

impl ResponsesStreamWriter {
    /// A writer for an answer to `model` (the model the client named).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            id: String::new(),
            created_at: now_secs(),
            sequence: 0,
            started: false,
            open: None,
            done: Vec::new(),
            incomplete: false,
            usage: None,
        }
    }

    fn id_of_response(&self) -> String {
        format!("resp_{}", self.id)
    }

    fn start(&mut self, chat_id: &str, out: &mut BytesMut) {
        self.started = true;
        self.id = chat_id.trim_start_matches("chatcmpl-").to_owned();
        if self.id.is_empty() {
            self.id = format!("{:x}", self.created_at);
        }
        let created = response(
            &self.id_of_response(),
            self.created_at,
            &self.model,
            "in_progress",
            Vec::new(),
            None,
        );
        self.emit(
            out,
            json!({"type": "response.created", "response": created.clone()}),
        );
        self.emit(
            out,
            json!({"type": "response.in_progress", "response": created}),
        );
    }

    fn close(&mut self, out: &mut BytesMut) {
        let index = self.done.len();
        match self.open.take() {
            None => {}
            Some(Open::Message { id, text }) => {
                self.emit(out, json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                    "content_index": 0, "text": text, "logprobs": []}));
                self.emit(out, json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
                    "content_index": 0, "part": text_part(&text)}));
                let item = message_item(&id, &text, "completed");
                self.emit(out, json!({"type": "response.output_item.done", "output_index": index, "item": item.clone()}));
                self.done.push(item);
            }
            Some(Open::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                self.emit(
                    out,
                    json!({"type": "response.function_call_arguments.done", "item_id": id,
                    "output_index": index, "arguments": arguments}),
                );
                let item = call_item(&id, &call_id, &name, &arguments, "completed");
                self.emit(out, json!({"type": "response.output_item.done", "output_index": index, "item": item.clone()}));
                self.done.push(item);
            }
        }
    }

    fn emit(&mut self, out: &mut BytesMut, mut data: Value) {
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        write_named_event(out, &data);
    }
}

impl StreamTranslator for ResponsesStreamWriter {
    fn chunk(&mut self, data: &[u8]) -> Result<Bytes, GatewayError> {
        let chunk: AnswerView = serde_json::from_slice(data).map_err(|_| errors::unreadable())?;
        let mut out = BytesMut::new();
        if !self.started {
            self.start(&chunk.id, &mut out);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(out.freeze());
        };
        if choice.finish_reason.as_deref() == Some("length") {
            self.incomplete = true;
        }
        let delta = choice.message.unwrap_or_default();
        if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
            if !matches!(self.open, Some(Open::Message { .. })) {
                self.close(&mut out);
                let id = format!("msg_{}", self.id);
                self.emit(
                    &mut out,
                    json!({"type": "response.output_item.added", "output_index": self.done.len(),
                    "item": message_item(&id, "", "in_progress")}),
                );
                self.emit(
                    &mut out,
                    json!({"type": "response.content_part.added", "item_id": id,
                    "output_index": self.done.len(), "content_index": 0, "part": text_part("")}),
                );
                self.open = Some(Open::Message {
                    id,
                    text: String::new(),
                });
            }
            if let Some(Open::Message { id, text: whole }) = &mut self.open {
                whole.push_str(&text);
                let event = json!({"type": "response.output_text.delta", "item_id": id,
                    "output_index": self.done.len(), "content_index": 0, "delta": text, "logprobs": []});
                self.emit(&mut out, event);
            }
        }
        for (position, call) in delta.tool_calls.into_iter().enumerate() {
            let chat_index = call.index.unwrap_or(u32::try_from(position).unwrap_or(0));
            let is_open = matches!(&self.open, Some(Open::Call { chat_index: open, .. }) if *open == chat_index);
            if !is_open && let Some(name) = call.function.name {
                self.close(&mut out);
                let id = format!("fc_{}_{}", self.id, self.done.len());
                let call_id = call
                    .id
                    .unwrap_or_else(|| format!("call_{}", self.done.len()));
                self.emit(
                    &mut out,
                    json!({"type": "response.output_item.added", "output_index": self.done.len(),
                    "item": call_item(&id, &call_id, &name, "", "in_progress")}),
                );
                self.open = Some(Open::Call {
                    chat_index,
                    id,
                    call_id,
                    name,
                    arguments: String::new(),
                });
            }
            if let Some(piece) = call.function.arguments.filter(|piece| !piece.is_empty())
                && let Some(Open::Call {
                    chat_index: open,
                    id,
                    arguments,
                    ..
                }) = &mut self.open
                && *open == chat_index
            {
                arguments.push_str(&piece);
                let event = json!({"type": "response.function_call_arguments.delta", "item_id": id,
                    "output_index": self.done.len(), "delta": piece});
                self.emit(&mut out, event);
            }
        }
        Ok(out.freeze())
    }

    fn usage(&mut self, data: &[u8]) {
        if let Ok(AnswerView {
            usage: Some(usage), ..
        }) = serde_json::from_slice(data)
        {
            self.usage = Some(usage);
        }
    }

    fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.started {
            self.start("", &mut out);
        }
        self.close(&mut out);
        let status = if self.incomplete {
            "incomplete"
        } else {
            "completed"
        };
        let kind = if self.incomplete {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let whole = response(
            &self.id_of_response(),
            self.created_at,
            &self.model,
            status,
            self.done.clone(),
            Some(usage_of(self.usage.as_ref())),
        );
        self.emit(&mut out, json!({"type": kind, "response": whole}));
        out.freeze()
    }

    fn error_event(&self, error: &GatewayError) -> Bytes {
        let mut out = BytesMut::new();
        let event = json!({"type": "error", "code": error.kind.label(), "message": error.message,
            "param": error.param, "sequence_number": self.sequence});
        write_named_event(&mut out, &event);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::read_named_events;

    #[test]
    fn a_whole_answer_becomes_items() {
        let chat = json!({"id": "chatcmpl-9", "choices": [{"message": {"content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2}}});
        let body: Value =
            serde_json::from_slice(&response_object(chat.to_string().as_bytes(), "gpt-x").unwrap())
                .unwrap();
        assert_eq!(body["id"], "resp_9");
        assert_eq!(body["status"], "completed");
        assert_eq!(body["output"][0]["content"][0]["text"], "Checking.");
        assert_eq!(body["output"][1]["call_id"], "call_1");
        assert_eq!(body["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(body["usage"]["total_tokens"], 14);
    }

    #[test]
    fn a_stream_follows_the_documented_sequence() {
        let mut writer = ResponsesStreamWriter::new("gpt-x");
        let mut out = Vec::new();
        for chunk in [
            json!({"id": "chatcmpl-1", "choices": [{"delta": {"role": "assistant", "content": ""}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"delta": {"content": "Hel"}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"delta": {"content": "lo"}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_7",
                "function": {"name": "lookup", "arguments": "{\"q\":"}}]}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"id": "chatcmpl-1", "choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ] {
            out.extend_from_slice(&writer.chunk(chunk.to_string().as_bytes()).unwrap());
        }
        writer.usage(
            json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
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
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let numbers: Vec<u64> = events
            .iter()
            .map(|event| event["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..15).collect::<Vec<_>>());
        let completed = &events[14]["response"];
        assert_eq!(completed["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(completed["output"][1]["arguments"], "{\"q\":1}");
        assert_eq!(completed["usage"]["output_tokens"], 3);
    }
}
