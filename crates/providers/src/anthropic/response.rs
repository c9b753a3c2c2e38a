//! An Anthropic Messages answer as a Chat Completions answer: text blocks
//! joined as the content, `tool_use` blocks as tool calls (ids kept, input
//! as JSON text), thinking as `reasoning_content`, and the stop reason as
//! the finish reason. With a JSON response format, the forced tool's input
//! is the content.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::request::RESPONSE_TOOL;
use super::usage::WireUsage;
use crate::chat::{AssistantMessage, Choice, Completion, ToolCall, now_secs};
use crate::errors;
use crate::usage::Usage;
use tollgate_core::GatewayError;

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Thinking {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

/// The Chat Completions body and usage of an Anthropic answer.
pub(crate) fn to_chat(body: &[u8], json_response: bool) -> Result<(Bytes, Usage), GatewayError> {
    let response: MessagesResponse =
        serde_json::from_slice(body).map_err(|_| errors::unreadable())?;
    let usage = response.usage.usage();
    let mut message = AssistantMessage {
        role: "assistant",
        ..AssistantMessage::default()
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut answered_as_json = false;
    for block in response.content {
        match block {
            ContentBlock::Text { text: piece } => text.push_str(&piece),
            ContentBlock::ToolUse { name, input, .. } if json_response && name == RESPONSE_TOOL => {
                text = input.to_string();
                answered_as_json = true;
            }
            ContentBlock::ToolUse { id, name, input } => {
                message
                    .tool_calls
                    .push(ToolCall::function(id, name, input.to_string()));
            }
            ContentBlock::Thinking { thinking } => reasoning.push_str(&thinking),
            ContentBlock::Other => {}
        }
    }
    message.content = (!text.is_empty() || message.tool_calls.is_empty()).then_some(text);
    message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    let finish_reason = if answered_as_json {
        "stop"
    } else {
        finish_reason(response.stop_reason.as_deref())
    };
    let completion = Completion::new(
        response.id,
        now_secs(),
        response.model,
        vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish_reason),
            logprobs: None,
        }],
        usage,
    );
    let body = serde_json::to_vec(&completion).map_err(|_| errors::unreadable())?;
    Ok((Bytes::from(body), usage))
}

/// Anthropic's stop reason as OpenAI's finish reason.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(response: Value, json_response: bool) -> (Value, Usage) {
        let (body, usage) = to_chat(response.to_string().as_bytes(), json_response).unwrap();
        (serde_json::from_slice(&body).unwrap(), usage)
    }

    #[test]
    fn text_tools_and_thinking_become_one_chat_choice() {
        let (body, usage) = chat(
            json!({
                "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [
                    {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 3}
            }),
            false,
        );
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "msg_01");
        assert_eq!(body["model"], "claude-x");
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Checking.");
        assert_eq!(choice["message"]["reasoning_content"], "Let me see.");
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([{"id": "toolu_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}])
        );
        assert_eq!(usage.prompt, 15);
        assert_eq!(body["usage"]["prompt_tokens"], 15);
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
        assert_eq!(body["usage"]["total_tokens"], 45);
    }

    #[test]
    fn the_forced_json_tool_is_the_content() {
        let (body, _) = chat(
            json!({"id": "msg_2", "model": "m", "stop_reason": "tool_use",
                "content": [{"type": "tool_use", "id": "t", "name": RESPONSE_TOOL, "input": {"answer": 42}}],
                "usage": {"input_tokens": 1, "output_tokens": 1}}),
            true,
        );
        assert_eq!(body["choices"][0]["message"]["content"], "{\"answer\":42}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("refusal")), "content_filter");
        assert_eq!(finish_reason(None), "stop");
    }

    #[test]
    fn an_unreadable_answer_is_an_upstream_error() {
        assert!(to_chat(b"<html>", false).is_err());
    }
}
