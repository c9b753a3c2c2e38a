//! A Gemini `streamGenerateContent?alt=sse` stream as Chat Completions
//! chunks. Each event is a whole `GenerateContentResponse` holding the next
//! piece of each candidate: its text (`delta.content`), thoughts
//! (`delta.reasoning_content`), whole function calls (one tool-call delta
//! each, with id, name and all arguments) and, on the last, its finish
//! reason. The role goes with a candidate's first chunk. Gemini's stream
//! has no end marker: it ends with the body, and a body that ends before a
//! finish reason was seen is a cut stream. The usage chunk (the last
//! `usageMetadata` seen) comes after the body ends.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use tollgate_core::GatewayError;

use super::response::{GenerateContentResponse, finish_reason, sort_parts};
use super::tool_call_id;
use super::usage::WireUsage;
use crate::call::{EventStream, StreamEvent};
use crate::chat::{Chunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta};
use crate::errors;
use crate::event_stream::{Framing, StreamDecoder, decode_events};
use crate::exchange::ByteStream;

/// The stream of chunks of one Gemini response body.
pub(crate) fn events(body: ByteStream, idle_timeout: Duration, created: u64) -> EventStream {
    decode_events(
        body,
        idle_timeout,
        Framing::Sse,
        Candidates {
            id: format!("gemini-{created:x}"),
            model: String::new(),
            created,
            usage: WireUsage::default(),
            tool_calls: HashMap::new(),
            finished: false,
        },
    )
}

struct Candidates {
    id: String,
    model: String,
    created: u64,
    usage: WireUsage,
    /// Tool calls sent so far by candidate; a candidate present here has
    /// had its role chunk.
    tool_calls: HashMap<u32, u32>,
    finished: bool,
}

impl StreamDecoder for Candidates {
    fn decode(&mut self, data: Bytes) -> Result<Option<StreamEvent>, GatewayError> {
        let response: GenerateContentResponse =
            serde_json::from_slice(&data).map_err(|_| errors::unreadable())?;
        if let Some(blocked) = response.blocked() {
            return Err(blocked);
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = usage;
        }
        if let Some(model) = response.model_version {
            self.model = model;
        }
        if let Some(id) = response.response_id
            && self.tool_calls.is_empty()
        {
            self.id = id;
        }
        let mut choices = Vec::with_capacity(response.candidates.len());
        for (position, candidate) in response.candidates.into_iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
            let first = !self.tool_calls.contains_key(&index);
            let sent_calls = self.tool_calls.entry(index).or_insert(0);
            let sorted = sort_parts(
                candidate
                    .content
                    .map(|content| content.parts)
                    .unwrap_or_default(),
            );
            let mut tool_calls = Vec::with_capacity(sorted.calls.len());
            for (name, arguments, signature) in sorted.calls {
                let call = *sent_calls;
                *sent_calls += 1;
                tool_calls.push(ToolCallDelta {
                    index: call,
                    id: Some(tool_call_id(
                        &format!("{}_{index}", self.id),
                        usize::try_from(call).unwrap_or(usize::MAX),
                        signature.as_deref(),
                    )),
                    kind: Some("function"),
                    function: FunctionCallDelta {
                        name: Some(name),
                        arguments,
                    },
                });
            }
            let called_tools = *sent_calls > 0;
            let finish = candidate
                .finish_reason
                .as_deref()
                .map(|reason| finish_reason(reason, called_tools));
            self.finished |= finish.is_some();
            choices.push(ChunkChoice {
                index,
                delta: Delta {
                    role: first.then_some("assistant"),
                    content: (!sorted.text.is_empty() || first).then_some(sorted.text),
                    reasoning_content: (!sorted.reasoning.is_empty()).then_some(sorted.reasoning),
                    tool_calls,
                },
                finish_reason: finish,
            });
        }
        if choices.is_empty() {
            return Ok(None);
        }
        let chunk = Chunk::of_choices(&self.id, self.created, &self.model, choices);
        Ok(Some(StreamEvent::Data(chunk.to_bytes())))
    }

    fn body_ended(&mut self) -> Result<StreamEvent, GatewayError> {
        if !self.finished {
            return Err(errors::stream_cut());
        }
        let usage = self.usage.usage();
        let data = Chunk::usage(&self.id, self.created, &self.model, usage).to_bytes();
        Ok(StreamEvent::Usage { usage, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};
    use serde_json::{Value, json};
    use tollgate_core::ErrorKind;

    use crate::client::HttpError;

    async fn relay(events: Vec<Value>) -> Vec<Result<StreamEvent, GatewayError>> {
        let pieces: Vec<Result<Bytes, HttpError>> = events
            .into_iter()
            .map(|event| Ok(Bytes::from(format!("data: {event}\r\n\r\n"))))
            .collect();
        super::events(Box::pin(stream::iter(pieces)), Duration::from_secs(5), 1)
            .collect()
            .await
    }

    fn data(event: &Result<StreamEvent, GatewayError>) -> Value {
        match event {
            Ok(StreamEvent::Data(data)) => serde_json::from_slice(data).unwrap(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    fn piece(parts: Value, finish: Option<&str>, candidates_tokens: u32) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        json!({"candidates": [candidate], "modelVersion": "gemini-x", "responseId": "r-9",
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": candidates_tokens, "totalTokenCount": 12 + candidates_tokens}})
    }

    #[tokio::test]
    async fn text_streams_then_usage_after_the_body_ends() {
        let events = relay(vec![
            piece(json!([{"text": "Hel"}]), None, 1),
            piece(json!([{"text": "lo"}]), None, 2),
            piece(json!([{"text": "!"}]), Some("STOP"), 3),
        ])
        .await;
        assert_eq!(events.len(), 4, "{events:?}");
        let first = data(&events[0]);
        assert_eq!(first["id"], "r-9");
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Hel"})
        );
        assert_eq!(
            data(&events[1])["choices"][0]["delta"],
            json!({"content": "lo"})
        );
        assert_eq!(data(&events[2])["choices"][0]["finish_reason"], "stop");
        let Ok(StreamEvent::Usage { usage, .. }) = &events[3] else {
            panic!("{events:?}");
        };
        assert_eq!((usage.prompt, usage.completion), (12, 3));
    }

    #[tokio::test]
    async fn function_calls_stream_whole_and_finish_as_tool_calls() {
        let events = relay(vec![piece(
            json!([{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]),
            Some("STOP"),
            5,
        )])
        .await;
        let chunk = data(&events[0]);
        let call = &chunk["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(
            call["function"],
            json!({"name": "weather", "arguments": "{\"city\":\"Oslo\"}"})
        );
        assert_eq!(chunk["choices"][0]["finish_reason"], "tool_calls");
        assert!(matches!(events[1], Ok(StreamEvent::Usage { .. })));
    }

    #[tokio::test]
    async fn a_body_without_a_finish_is_cut_and_blocks_are_errors() {
        let events = relay(vec![piece(json!([{"text": "Hel"}]), None, 1)]).await;
        assert!(events.last().unwrap().is_err());
        let events = relay(vec![
            json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}),
        ])
        .await;
        assert_eq!(
            events[0].as_ref().unwrap_err().kind,
            ErrorKind::ContentPolicy
        );
    }
}
