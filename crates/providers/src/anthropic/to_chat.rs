//! An Anthropic Messages request as a Chat Completions request: the way in
//! for clients that speak Messages to accounts that do not, and the
//! inverse of [`super::request`] (a Chat request translated to Messages and
//! back keeps every field Messages can carry).
//!
//! - `system` (text or text blocks) becomes the first, `system`, message.
//! - Text blocks become text parts (`cache_control` kept); images become
//!   `image_url` parts (base64 sources as data URLs).
//! - `tool_use` blocks become the assistant's `tool_calls` (ids kept, the
//!   input as JSON text); `tool_result` blocks become `tool` messages
//!   placed before the rest of their user turn.
//! - A `system` turn among the messages (Claude Code sends them) becomes a
//!   `system` message in its place.
//! - `max_tokens` → `max_tokens`, `stop_sequences` → `stop`,
//!   `metadata.user_id` → `user`, `tool_choice` (`any` → `required`, `tool`
//!   → the named function, `disable_parallel_tool_use` →
//!   `parallel_tool_calls: false`), and the forced
//!   [`super::request::RESPONSE_TOOL`] back to a JSON `response_format`;
//!   thinking, effort, output formats and context edits in [`options`].
//!
//! Thinking blocks in the history are dropped on purpose (only Anthropic
//! reads them back); a tool's `defer_loading` asks nothing (Chat has no
//! deferred tools, so the tool is offered like the others); `top_k`,
//! documents and server tools have no Chat counterpart and are refused by
//! name.

mod options;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_core::GatewayError;

use super::request::RESPONSE_TOOL;

/// Request fields the translation reads; any other top-level field asks
/// for something Chat cannot hold.
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
];

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
        #[serde(default)]
        cache_control: Option<Value>,
    },
    Image {
        source: Value,
        #[serde(default)]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Value>,
    },
    Thinking {},
    RedactedThinking {},
    #[serde(other)]
    Other,
}

/// Translates a Messages request body into a Chat Completions request.
pub fn chat_request(request: Value) -> Result<Value, GatewayError> {
    let Value::Object(request) = request else {
        return Err(GatewayError::invalid(
            "body",
            "a Messages request is a JSON object",
        ));
    };
    if let Some(field) = request.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(GatewayError::invalid(
            field.clone(),
            format!("`{field}` cannot be carried to this account's provider"),
        ));
    }
    let mut chat = Map::new();
    let copy = |chat: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(value) = request.get(from).filter(|value| !value.is_null()) {
            chat.insert(to.to_owned(), value.clone());
        }
    };
    copy(&mut chat, "model", "model");
    copy(&mut chat, "max_tokens", "max_tokens");
    copy(&mut chat, "temperature", "temperature");
    copy(&mut chat, "top_p", "top_p");
    copy(&mut chat, "stop_sequences", "stop");
    copy(&mut chat, "stream", "stream");
    if let Some(user) = request
        .get("metadata")
        .and_then(|metadata| metadata.get("user_id"))
    {
        chat.insert("user".to_owned(), user.clone());
    }
    let mut messages = Vec::new();
    if let Some(system) = request.get("system") {
        messages.push(json!({"role": "system", "content": content_of(system, "system")?}));
    }
    let turns = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| GatewayError::invalid("messages", "`messages` must be a list"))?;
    for (index, turn) in turns.iter().enumerate() {
        messages.extend(turn_messages(turn, index)?);
    }
    chat.insert("messages".to_owned(), Value::Array(messages));

    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let forced_json = request
        .get("tool_choice")
        .and_then(|choice| choice["name"].as_str())
        == Some(RESPONSE_TOOL);
    let mut chat_tools = Vec::new();
    for (index, tool) in tools.iter().enumerate() {
        let name = tool["name"].as_str().ok_or_else(|| {
            GatewayError::invalid(format!("tools[{index}].name"), "a tool needs a `name`")
        })?;
        if tool.get("type").is_some_and(|kind| kind != "custom") {
            return Err(GatewayError::invalid(
                format!("tools[{index}].type"),
                "server tools cannot be carried to this account's provider",
            ));
        }
        if forced_json && name == RESPONSE_TOOL {
            let schema = tool
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            let format = if schema == json!({"type": "object"}) {
                json!({"type": "json_object"})
            } else {
                json!({"type": "json_schema", "json_schema": {"name": RESPONSE_TOOL, "schema": schema}})
            };
            chat.insert("response_format".to_owned(), format);
            continue;
        }
        let mut function = json!({"name": name});
        if let Some(description) = tool.get("description") {
            function["description"] = description.clone();
        }
        if let Some(schema) = tool.get("input_schema") {
            function["parameters"] = schema.clone();
        }
        chat_tools.push(json!({"type": "function", "function": function}));
    }
    if !chat_tools.is_empty() {
        chat.insert("tools".to_owned(), Value::Array(chat_tools));
    }
    if let Some(choice) = request.get("tool_choice").filter(|_| !forced_json) {
        let (tool_choice, parallel) = tool_choice_of(choice)?;
        if let Some(tool_choice) = tool_choice {
            chat.insert("tool_choice".to_owned(), tool_choice);
        }
        if parallel == Some(false) {
            chat.insert("parallel_tool_calls".to_owned(), Value::Bool(false));
        }
    }
    options::apply(&request, &mut chat)?;
    Ok(Value::Object(chat))
}

/// The Chat messages of one Messages turn: its tool results as `tool`
/// messages first, then the rest.
fn turn_messages(turn: &Value, index: usize) -> Result<Vec<Value>, GatewayError> {
    let at = |field: &str| format!("messages[{index}].{field}");
    let role = match turn["role"].as_str() {
        Some(role @ ("user" | "assistant")) => role,
        Some("system") => {
            let content = content_of(&turn["content"], &at("content"))?;
            return Ok(vec![json!({"role": "system", "content": content})]);
        }
        _ => {
            return Err(GatewayError::invalid(
                at("role"),
                "a message's role is `user`, `assistant` or `system`",
            ));
        }
    };
    let blocks: Vec<Block> = match &turn["content"] {
        Value::String(text) => return Ok(vec![json!({"role": role, "content": text})]),
        Value::Array(_) => serde_json::from_value(turn["content"].clone()).map_err(|error| {
            GatewayError::invalid(at("content"), format!("unreadable content: {error}"))
        })?,
        _ => {
            return Err(GatewayError::invalid(
                at("content"),
                "content is a string or a list of blocks",
            ));
        }
    };
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (position, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Text {
                text,
                cache_control,
            } => {
                let mut part = json!({"type": "text", "text": text});
                if let Some(cache_control) = cache_control {
                    part["cache_control"] = cache_control;
                }
                parts.push(part);
            }
            Block::Image {
                source,
                cache_control,
            } => {
                let mut part = json!({"type": "image_url", "image_url": {"url": image_url(&source, &at(&format!("content[{position}].source")))?}});
                if let Some(cache_control) = cache_control {
                    part["cache_control"] = cache_control;
                }
                parts.push(part);
            }
            Block::ToolUse { id, name, input } => {
                let arguments = if input.is_null() {
                    "{}".to_owned()
                } else {
                    input.to_string()
                };
                tool_calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            Block::ToolResult {
                tool_use_id,
                content,
            } => {
                let text = match content {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text,
                    Some(blocks) => text_of(&blocks, &at(&format!("content[{position}].content")))?,
                };
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
            }
            Block::Thinking {} | Block::RedactedThinking {} => {}
            Block::Other => {
                return Err(GatewayError::invalid(
                    at(&format!("content[{position}].type")),
                    "this content block cannot be carried to this account's provider",
                ));
            }
        }
    }
    if !parts.is_empty() || !tool_calls.is_empty() {
        let mut message = json!({"role": role, "content": single_text(parts)});
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        out.push(message);
    }
    Ok(out)
}

/// Parts as Chat content: one plain text part as a string, nothing as
/// null, anything else as the parts.
fn single_text(mut parts: Vec<Value>) -> Value {
    match parts.len() {
        0 => Value::Null,
        1 if parts[0]["type"] == "text" && parts[0].get("cache_control").is_none() => {
            parts.remove(0)["text"].take()
        }
        _ => Value::Array(parts),
    }
}

/// System content: a string as it is, text blocks as parts.
fn content_of(system: &Value, at: &str) -> Result<Value, GatewayError> {
    match system {
        Value::String(text) => Ok(Value::String(text.clone())),
        Value::Array(blocks) => {
            let parts = blocks
                .iter()
                .map(|block| match block["text"].as_str() {
                    Some(text) if block["type"] == "text" => {
                        let mut part = json!({"type": "text", "text": text});
                        if let Some(cache_control) = block.get("cache_control") {
                            part["cache_control"] = cache_control.clone();
                        }
                        Ok(part)
                    }
                    _ => Err(GatewayError::invalid(
                        at.to_owned(),
                        "a system prompt may only hold text",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(single_text(parts))
        }
        _ => Err(GatewayError::invalid(
            at.to_owned(),
            "a system prompt is a string or text blocks",
        )),
    }
}

fn text_of(blocks: &Value, at: &str) -> Result<String, GatewayError> {
    let Some(blocks) = blocks.as_array() else {
        return Err(GatewayError::invalid(
            at.to_owned(),
            "tool result content is a string or text blocks",
        ));
    };
    blocks
        .iter()
        .map(|block| {
            block["text"]
                .as_str()
                .filter(|_| block["type"] == "text")
                .ok_or_else(|| {
                    GatewayError::invalid(at.to_owned(), "a tool result may only hold text here")
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|texts| texts.concat())
}

fn image_url(source: &Value, at: &str) -> Result<String, GatewayError> {
    match source["type"].as_str() {
        Some("base64") => Ok(format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str().unwrap_or_default()
        )),
        Some("url") => Ok(source["url"].as_str().unwrap_or_default().to_owned()),
        _ => Err(GatewayError::invalid(
            at.to_owned(),
            "an image source is `base64` or `url`",
        )),
    }
}

fn tool_choice_of(choice: &Value) -> Result<(Option<Value>, Option<bool>), GatewayError> {
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|disabled| !disabled);
    let tool_choice = match choice["type"].as_str() {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => json!({"type": "function", "function": {"name": choice["name"]}}),
        _ => return Err(GatewayError::invalid("tool_choice", "unknown tool_choice")),
    };
    Ok((Some(tool_choice), parallel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Result<Value, GatewayError> {
        chat_request(request)
    }

    #[test]
    fn thinking_json_tools_and_system_blocks_come_back_as_chat() {
        let chat = translate(json!({
            "model": "claude-x", "max_tokens": 20_000,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "hello"}]}],
            "thinking": {"type": "enabled", "budget_tokens": 10_000},
            "tools": [{"name": RESPONSE_TOOL, "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": RESPONSE_TOOL}
        }))
        .unwrap();
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(chat["response_format"], json!({"type": "json_object"}));
        assert!(chat.get("tools").is_none() && chat.get("tool_choice").is_none());
        assert_eq!(
            chat["messages"][0]["content"],
            json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            chat["messages"][2],
            json!({"role": "assistant", "content": "hello"})
        );
    }

    #[test]
    fn a_claude_code_request_comes_across() {
        let chat = translate(json!({
            "model": "claude-x", "max_tokens": 32_000, "stream": true,
            "system": [{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
                {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]},
            ],
            "tools": [
                {"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}},
                {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": true},
            ],
            "metadata": {"user_id": "{\"session_id\":\"s\"}"},
            "thinking": {"type": "adaptive", "display": "omitted"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high"}
        }))
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": [{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "say hi"},
                {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]},
            ])
        );
        let tools: Vec<&str> = chat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tool| tool["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(tools, ["Read", "Later"]);
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(chat["user"], "{\"session_id\":\"s\"}");
        assert!(chat.get("context_management").is_none() && chat.get("output_config").is_none());
    }

    #[test]
    fn what_chat_cannot_hold_is_refused_by_name() {
        let base = || json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let mut top_k = base();
        top_k["top_k"] = json!(5);
        assert_eq!(
            translate(top_k).unwrap_err().param.as_deref(),
            Some("top_k")
        );
        let mut document = base();
        document["messages"][0]["content"] =
            json!([{"type": "document", "source": {"type": "text", "data": "x"}}]);
        assert_eq!(
            translate(document).unwrap_err().param.as_deref(),
            Some("messages[0].content[0].type")
        );
        let mut server_tool = base();
        server_tool["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
        assert_eq!(
            translate(server_tool).unwrap_err().param.as_deref(),
            Some("tools[0].type")
        );
    }
}
