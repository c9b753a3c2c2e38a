//! An Anthropic Messages stream as Chat Completions chunks.
//!
//! | Anthropic event | chunk sent |
//! |---|---|
//! | `message_start` | the role chunk (`delta.role: assistant`) |
//! | `content_block_start` of `tool_use` | the tool call's id and name |
//! | `text_delta` | `delta.content` |
//! | `input_json_delta` | the tool call's `arguments` piece (the content, for the JSON response tool) |
//! | `thinking_delta` | `delta.reasoning_content` |
//! | `message_delta` | the `finish_reason` chunk |
//! | `message_stop` | the usage chunk (`choices: []`), then the end |
//! | `ping`, `content_block_stop`, signatures, unknown events | nothing |
//! | `error` | the stream's error |
//!
//! Usage is `message_start`'s, updated by `message_delta`'s counts.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tollgate_core::{ErrorKind, GatewayError};

use super::request::RESPONSE_TOOL;
use super::response::finish_reason;
use super::usage::WireUsage;
use crate::call::{EventStream, StreamEvent};
use crate::chat::{Chunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta, now_secs};
use crate::errors;
use crate::event_stream::{Framing, StreamDecoder, decode_events};
use crate::exchange::ByteStream;

/// The stream of chunks of one Anthropic response body.
pub(crate) fn events(body: ByteStream, idle_timeout: Duration, json_response: bool) -> EventStream {
    decode_events(
        body,
        idle_timeout,
        Framing::Sse,
        MessageEvents::new(json_response),
    )
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: StartedBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        #[serde(default)]
        error: Option<ErrorBody>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct StartedMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartedBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
}

/// What a content block of the answer becomes.
#[derive(Debug, Clone, Copy)]
enum BlockRole {
    /// A tool call, the `index`-th of the answer.
    ToolCall { index: u32 },
    /// The JSON response tool: its input is the content.
    JsonContent,
}

struct MessageEvents {
    json_response: bool,
    id: String,
    model: String,
    created: u64,
    usage: WireUsage,
    blocks: HashMap<u32, BlockRole>,
    tool_calls: u32,
    answered_as_json: bool,
}

impl MessageEvents {
    fn new(json_response: bool) -> Self {
        Self {
            json_response,
            id: String::new(),
            model: String::new(),
            created: now_secs(),
            usage: WireUsage::default(),
            blocks: HashMap::new(),
            tool_calls: 0,
            answered_as_json: false,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<&'static str>) -> StreamEvent {
        let choice = ChunkChoice {
            index: 0,
            delta,
            finish_reason,
        };
        StreamEvent::Data(Chunk::of(&self.id, self.created, &self.model, choice).to_bytes())
    }

    fn content(&self, text: String) -> StreamEvent {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_call(&self, call: ToolCallDelta) -> StreamEvent {
        self.chunk(
            Delta {
                tool_calls: vec![call],
                ..Delta::default()
            },
            None,
        )
    }

    fn block_started(&mut self, index: u32, block: StartedBlock) -> Option<StreamEvent> {
        match block {
            StartedBlock::ToolUse { name, .. } if self.json_response && name == RESPONSE_TOOL => {
                self.blocks.insert(index, BlockRole::JsonContent);
                self.answered_as_json = true;
                None
            }
            StartedBlock::ToolUse { id, name } => {
                let call = self.tool_calls;
                self.tool_calls += 1;
                self.blocks
                    .insert(index, BlockRole::ToolCall { index: call });
                Some(self.tool_call(ToolCallDelta {
                    index: call,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionCallDelta {
                        name: Some(name),
                        arguments: String::new(),
                    },
                }))
            }
            StartedBlock::Text { text } if !text.is_empty() => Some(self.content(text)),
            StartedBlock::Text { .. } | StartedBlock::Other => None,
        }
    }

    fn block_delta(&self, index: u32, delta: BlockDelta) -> Option<StreamEvent> {
        match delta {
            BlockDelta::TextDelta { text } => Some(self.content(text)),
            BlockDelta::InputJsonDelta { partial_json } => match self.blocks.get(&index)? {
                BlockRole::JsonContent => Some(self.content(partial_json)),
                BlockRole::ToolCall { index } => Some(self.tool_call(ToolCallDelta {
                    index: *index,
                    id: None,
                    kind: None,
                    function: FunctionCallDelta {
                        name: None,
                        arguments: partial_json,
                    },
                })),
            },
            BlockDelta::ThinkingDelta { thinking } => Some(self.chunk(
                Delta {
                    reasoning_content: Some(thinking),
                    ..Delta::default()
                },
                None,
            )),
            BlockDelta::Other => None,
        }
    }

    fn usage_event(&self) -> StreamEvent {
        let usage = self.usage.usage();
        let data: Bytes = Chunk::usage(&self.id, self.created, &self.model, usage).to_bytes();
        StreamEvent::Usage { usage, data }
    }
}

impl StreamDecoder for MessageEvents {
    fn decode(&mut self, data: Bytes) -> Result<Option<StreamEvent>, GatewayError> {
        let event: Event = serde_json::from_slice(&data).map_err(|_| errors::unreadable())?;
        Ok(match event {
            Event::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = message.usage;
                Some(self.chunk(
                    Delta {
                        role: Some("assistant"),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ))
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => self.block_started(index, content_block),
            Event::ContentBlockDelta { index, delta } => self.block_delta(index, delta),
            Event::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage.update(usage);
                }
                let reason = if self.answered_as_json {
                    "stop"
                } else {
                    finish_reason(delta.stop_reason.as_deref())
                };
                Some(self.chunk(Delta::default(), Some(reason)))
            }
            Event::MessageStop => Some(self.usage_event()),
            Event::Error { error } => return Err(stream_error(error.map(|error| error.kind))),
            Event::Other => None,
        })
    }
}

/// An `error` event inside a started stream: overload and rate limits
/// keep their classes (another account may take the next request).
fn stream_error(kind: Option<String>) -> GatewayError {
    match kind.as_deref() {
        Some("overloaded_error") => errors::overloaded(),
        Some("rate_limit_error") => GatewayError::new(
            ErrorKind::UpstreamRateLimited,
            "the upstream is rate limiting this account",
        ),
        _ => errors::stream_error_event(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HttpError;
    use futures_util::{StreamExt, stream};
    use serde_json::{Value, json};

    fn frame(event: &str, data: Value) -> String {
        format!("event: {event}\ndata: {data}\n\n")
    }

    async fn relay(
        frames: Vec<String>,
        json_response: bool,
    ) -> Vec<Result<StreamEvent, GatewayError>> {
        let pieces: Vec<Result<Bytes, HttpError>> = frames
            .into_iter()
            .map(|frame| Ok(Bytes::from(frame)))
            .collect();
        events(
            Box::pin(stream::iter(pieces)),
            Duration::from_secs(5),
            json_response,
        )
        .collect()
        .await
    }

    fn data(event: &Result<StreamEvent, GatewayError>) -> Value {
        match event {
            Ok(StreamEvent::Data(data)) => serde_json::from_slice(data).unwrap(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    fn start() -> String {
        frame(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5,
                    "cache_creation_input_tokens": 0}}}),
        )
    }

    fn end(stop_reason: &str, output_tokens: u32) -> Vec<String> {
        vec![
            frame(
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}}),
            ),
            frame("message_stop", json!({"type": "message_stop"})),
        ]
    }

    #[tokio::test]
    async fn text_and_tool_calls_stream_as_chunks() {
        let mut frames = vec![
            start(),
            frame("ping", json!({"type": "ping"})),
            frame(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ),
            frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Let me check"}}),
            ),
            frame(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            frame(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {}}}),
            ),
            frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            ),
            frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
            ),
            frame(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ),
        ];
        frames.extend(end("tool_use", 40));
        let events = relay(frames, false).await;
        assert_eq!(events.len(), 7, "{events:?}");
        let role = data(&events[0]);
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["id"], "msg_1");
        assert_eq!(
            role["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(
            data(&events[1])["choices"][0]["delta"]["content"],
            "Let me check"
        );
        assert_eq!(
            data(&events[2])["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "toolu_9", "type": "function",
                "function": {"name": "weather", "arguments": ""}}])
        );
        assert_eq!(
            data(&events[3])["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\": "
        );
        assert_eq!(
            data(&events[5])["choices"][0]["finish_reason"],
            "tool_calls"
        );
        let Ok(StreamEvent::Usage { usage, data }) = &events[6] else {
            panic!("{events:?}");
        };
        assert_eq!((usage.prompt, usage.completion, usage.cached), (30, 40, 5));
        let chunk: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(chunk["choices"], json!([]));
        assert_eq!(chunk["usage"]["total_tokens"], 70);
    }

    #[tokio::test]
    async fn thinking_streams_as_reasoning_and_json_tools_as_content() {
        let mut frames = vec![
            start(),
            frame(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": ""}}),
            ),
            frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Hmm."}}),
            ),
            frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": "abc"}}),
            ),
            frame(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": RESPONSE_TOOL, "input": {}}}),
            ),
            frame(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}}),
            ),
        ];
        frames.extend(end("tool_use", 3));
        let events = relay(frames, true).await;
        assert_eq!(
            data(&events[1])["choices"][0]["delta"]["reasoning_content"],
            "Hmm."
        );
        assert_eq!(
            data(&events[2])["choices"][0]["delta"]["content"],
            "{\"a\":1}"
        );
        assert_eq!(data(&events[3])["choices"][0]["finish_reason"], "stop");
        assert!(matches!(events[4], Ok(StreamEvent::Usage { .. })));
    }

    #[tokio::test]
    async fn error_events_and_cuts_end_the_stream_with_an_error() {
        let events = relay(
            vec![
                start(),
                frame(
                    "error",
                    json!({"type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ),
            ],
            false,
        )
        .await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].as_ref().unwrap_err().kind, ErrorKind::Overloaded);

        let events = relay(vec![start(), end("end_turn", 3).remove(0)], false).await;
        assert_eq!(events.len(), 3);
        assert!(events[2].is_err(), "a stream without message_stop is cut");
    }
}
