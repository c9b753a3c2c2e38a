//! A Chat Completions request as an Ollama `/api/chat` request.
//!
//! - Messages keep their roles (`developer` is `system`); text parts are
//!   joined into `content`; images become base64 `images` (data URLs only:
//!   Ollama does not fetch URLs).
//! - An assistant's tool calls become `tool_calls` with object
//!   `arguments`; a `tool` message names the function it answers
//!   (`tool_name`, found by id in the history).
//! - Function tools pass as they are; `tool_choice` `auto` (and `none`,
//!   by sending no tools) carry over, a forced choice does not.
//! - `options`: the completion cap → `num_predict`, `stop`, `temperature`,
//!   `top_p`, `seed`, both penalties. `response_format` → `format` (`json`
//!   or the schema). `reasoning_effort` → `think` (off for none/minimal).
//! - `stream` is always sent, because Ollama streams when it is absent.
//!
//! `user` and `parallel_tool_calls` are dropped on purpose; `n` above 1,
//! `logprobs` and other part types are refused by name.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};

use crate::chat::{
    ChatRequest, Content, ImageSource, Message, ResponseFormat, ToolChoice, uncarried,
};

const PROVIDER: &str = "ollama";

/// Fields read below that OpenAI keeps outside [`ChatRequest`]'s own.
const OPTION_FIELDS: &[(&str, &str)] = &[
    ("seed", "seed"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
];

#[derive(Debug, Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: Vec<Value>,
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    think: Option<bool>,
}

/// Translates a Chat Completions body for `model`.
pub(crate) fn from_chat(
    body: &[u8],
    model: &str,
    stream: bool,
    reserved_cap: Option<u32>,
) -> Result<Bytes, GatewayError> {
    let mut chat = ChatRequest::parse(body)?;
    let mut options = Map::new();
    for (field, option) in OPTION_FIELDS {
        if let Some(value) = chat.other.remove(*field).filter(|value| !value.is_null()) {
            options.insert((*option).to_owned(), value);
        }
    }
    if let Some(field) = chat.uncarried_field() {
        return Err(uncarried(&field, PROVIDER));
    }
    if chat.n.is_some_and(|n| n > 1) {
        return Err(uncarried("n", PROVIDER));
    }
    let mut set = |name: &str, value: Value| {
        if !value.is_null() {
            options.insert(name.to_owned(), value);
        }
    };
    set("num_predict", json!(chat.completion_cap().or(reserved_cap)));
    set("temperature", json!(chat.temperature));
    set("top_p", json!(chat.top_p));
    if let Some(stop) = chat.stop {
        set("stop", json!(stop.into_vec()));
    }
    let send_tools = match chat.tool_choice {
        None => true,
        Some(ToolChoice::Mode(mode)) if mode == "auto" => true,
        Some(ToolChoice::Mode(mode)) if mode == "none" => false,
        Some(_) => return Err(uncarried("tool_choice", PROVIDER)),
    };
    let tools = if send_tools {
        chat.tools
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, tool)| match (tool.kind.as_str(), tool.function) {
                ("function", Some(function)) => Ok(json!({"type": "function", "function": {
                    "name": function.name,
                    "description": function.description.unwrap_or_default(),
                    "parameters": function.parameters.unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                }})),
                (other, _) => Err(GatewayError::invalid(
                    format!("tools[{index}].type"),
                    format!("tools of type `{other}` cannot be carried to an ollama account"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let format = chat.response_format.map(format_of).transpose()?.flatten();
    let think = match chat.reasoning_effort.as_deref() {
        None => None,
        Some("none" | "minimal") => Some(false),
        Some("low" | "medium" | "high") => Some(true),
        Some(other) => {
            return Err(GatewayError::invalid(
                "reasoning_effort",
                format!("unknown reasoning_effort `{other}`"),
            ));
        }
    };
    let request = ChatBody {
        model,
        messages: messages(chat.messages)?,
        stream,
        tools,
        format,
        options,
        think,
    };
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|_| GatewayError::new(ErrorKind::Internal, "the request could not be encoded"))
}

fn messages(messages: Vec<Message>) -> Result<Vec<Value>, GatewayError> {
    let mut out = Vec::with_capacity(messages.len());
    let mut calls: HashMap<String, String> = HashMap::new();
    for (index, message) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{index}].{field}");
        let role = match message.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            other => {
                return Err(GatewayError::invalid(
                    at("role"),
                    format!("role `{other}` cannot be carried to an ollama account"),
                ));
            }
        };
        let (content, images) = content_of(message.content, &at("content"))?;
        let mut entry = json!({"role": role, "content": content});
        if !images.is_empty() {
            entry["images"] = json!(images);
        }
        if let Some(tool_calls) = message.tool_calls.filter(|calls| !calls.is_empty()) {
            let mut wire = Vec::with_capacity(tool_calls.len());
            for (call_index, call) in tool_calls.into_iter().enumerate() {
                let arguments = call.arguments_value(|| {
                    format!("messages[{index}].tool_calls[{call_index}].function.arguments")
                })?;
                wire.push(
                    json!({"function": {"name": call.function.name, "arguments": arguments}}),
                );
                calls.insert(call.id, call.function.name);
            }
            entry["tool_calls"] = Value::Array(wire);
        }
        if role == "tool"
            && let Some(name) = message.tool_call_id.as_ref().and_then(|id| calls.get(id))
        {
            entry["tool_name"] = Value::String(name.clone());
        }
        out.push(entry);
    }
    Ok(out)
}

/// The text and the base64 images of a message's content.
fn content_of(content: Option<Content>, at: &str) -> Result<(String, Vec<String>), GatewayError> {
    let parts = match content {
        None => return Ok((String::new(), Vec::new())),
        Some(Content::Text(text)) => return Ok((text, Vec::new())),
        Some(Content::Parts(parts)) => parts,
    };
    let mut text = String::new();
    let mut images = Vec::new();
    for (index, part) in parts.into_iter().enumerate() {
        match (part.kind.as_str(), part.image_url) {
            ("text", _) => text.push_str(&part.text.unwrap_or_default()),
            ("image_url", Some(image)) => {
                let url_at = format!("{at}[{index}].image_url.url");
                match image.source(&url_at)? {
                    ImageSource::Inline { data, .. } => images.push(data.to_owned()),
                    ImageSource::Web(_) => {
                        return Err(GatewayError::invalid(
                            url_at,
                            "an ollama account takes images as base64 data URLs only",
                        ));
                    }
                }
            }
            (other, _) => {
                return Err(GatewayError::invalid(
                    format!("{at}[{index}].type"),
                    format!(
                        "content parts of type `{other}` cannot be carried to an ollama account"
                    ),
                ));
            }
        }
    }
    Ok((text, images))
}

fn format_of(format: ResponseFormat) -> Result<Option<Value>, GatewayError> {
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!("json"))),
        "json_schema" => format
            .json_schema
            .and_then(|schema| schema.schema)
            .map(Some)
            .ok_or_else(|| {
                GatewayError::invalid(
                    "response_format.json_schema.schema",
                    "a JSON schema response format needs its schema",
                )
            }),
        other => Err(GatewayError::invalid(
            "response_format.type",
            format!("unknown response_format type `{other}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value, stream: bool) -> Value {
        serde_json::from_slice(
            &from_chat(request.to_string().as_bytes(), "llama3.2", stream, None).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_conversation_with_tools_and_images_translates() {
        let body = translate(
            json!({
                "model": "alias",
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "a cat"}
                ],
                "max_tokens": 50, "temperature": 0.1, "seed": 3, "stop": ["END"],
                "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
                "response_format": {"type": "json_object"},
                "reasoning_effort": "low"
            }),
            false,
        );
        assert_eq!(
            body,
            json!({
                "model": "llama3.2",
                "stream": false,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is this?", "images": ["iVBOR"]},
                    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "x"}}}]},
                    {"role": "tool", "content": "a cat", "tool_name": "lookup"}
                ],
                "tools": [{"type": "function", "function": {"name": "lookup", "description": "", "parameters": {"type": "object"}}}],
                "format": "json",
                "options": {"seed": 3, "num_predict": 50, "temperature": 0.1, "stop": ["END"]},
                "think": true
            })
        );
    }

    #[test]
    fn what_cannot_be_carried_is_refused_by_name() {
        let cases = [
            (
                json!({"messages": [], "tool_choice": "required"}),
                "tool_choice",
            ),
            (json!({"messages": [], "n": 3}), "n"),
            (json!({"messages": [], "logprobs": true}), "logprobs"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
                "messages[0].content[0].image_url.url",
            ),
        ];
        for (request, param) in cases {
            let error = from_chat(request.to_string().as_bytes(), "m", false, None).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{request}");
        }
    }
}
