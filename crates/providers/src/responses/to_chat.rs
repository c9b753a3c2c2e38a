//! A Responses request as a Chat Completions request.
//!
//! - `instructions` becomes the first, `system`, message; `input` as a
//!   string is one user message.
//! - Message items keep their role (`developer` and `system` as system
//!   messages); `input_text` and `output_text` parts become text parts,
//!   `input_image` parts `image_url` parts.
//! - `function_call` items become the assistant's `tool_calls` (their
//!   `call_id` as the id; consecutive calls join one assistant message);
//!   `function_call_output` items become `tool` messages.
//! - Function tools (`{type: "function", name, description, parameters}`)
//!   become Chat tools; `tool_choice` and `parallel_tool_calls` carry over.
//! - `max_output_tokens` → `max_completion_tokens`, `reasoning.effort` →
//!   `reasoning_effort`, `text.format` → `response_format`, `temperature`,
//!   `top_p`, `user`, `stream` as they are.
//!
//! Dropped on purpose: reasoning items in the input (their encrypted
//! content only OpenAI reads); `store`, `metadata`, `client_metadata`,
//! `include`, `truncation`, `service_tier`, `prompt_cache_key` and
//! `reasoning.summary`, which ask nothing Chat must do; and offered tools
//! other than functions (`web_search`, `namespace` groups, …), which only
//! OpenAI runs: agents such as Codex CLI offer them on every request, and
//! the model answers without them. `previous_response_id`, `conversation`
//! and file inputs are refused by name.

use serde_json::{Map, Value, json};
use tollgate_core::GatewayError;

/// Top-level fields read or dropped on purpose; any other is refused.
const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "reasoning",
    "text",
    "user",
    "store",
    "metadata",
    "include",
    "truncation",
    "service_tier",
    "stream_options",
    "prompt_cache_key",
    "safety_identifier",
    "client_metadata",
];

/// Translates a Responses request body into a Chat Completions request.
pub fn chat_request_from_responses(request: Value) -> Result<Value, GatewayError> {
    let Value::Object(request) = request else {
        return Err(GatewayError::invalid(
            "body",
            "a Responses request is a JSON object",
        ));
    };
    if request
        .get("previous_response_id")
        .is_some_and(|id| !id.is_null())
    {
        return Err(GatewayError::invalid(
            "previous_response_id",
            "this gateway keeps no responses between requests: send the whole conversation in `input` instead of `previous_response_id`",
        ));
    }
    if let Some(field) = request
        .iter()
        .find(|(key, value)| !FIELDS.contains(&key.as_str()) && !value.is_null())
        .map(|(key, _)| key)
    {
        return Err(GatewayError::invalid(
            field.clone(),
            format!("`{field}` is not supported by this gateway's Responses API"),
        ));
    }
    let mut chat = Map::new();
    for (from, to) in [
        ("model", "model"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
        ("stream", "stream"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("max_output_tokens", "max_completion_tokens"),
    ] {
        if let Some(value) = request.get(from).filter(|value| !value.is_null()) {
            chat.insert(to.to_owned(), value.clone());
        }
    }
    if let Some(effort) = request
        .get("reasoning")
        .and_then(|reasoning| reasoning.get("effort"))
        .filter(|effort| !effort.is_null())
    {
        chat.insert("reasoning_effort".to_owned(), effort.clone());
    }
    if let Some(format) = request.get("text").and_then(|text| text.get("format"))
        && let Some(format) = response_format(format)?
    {
        chat.insert("response_format".to_owned(), format);
    }
    let mut messages = Vec::new();
    if let Some(instructions) = request.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match request.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                add_item(&mut messages, item, index)?;
            }
        }
        _ => {
            return Err(GatewayError::invalid(
                "input",
                "`input` is a string or a list of items",
            ));
        }
    }
    chat.insert("messages".to_owned(), Value::Array(messages));
    let tools: Vec<Value> = request
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| tools.iter().filter_map(chat_tool).collect())
        .unwrap_or_default();
    if !tools.is_empty() {
        chat.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(choice) = request
        .get("tool_choice")
        .filter(|choice| !choice.is_null())
    {
        let choice = match choice {
            Value::String(mode) => json!(mode),
            Value::Object(object)
                if object.get("type").and_then(Value::as_str) == Some("function") =>
            {
                json!({"type": "function", "function": {"name": object.get("name").cloned().unwrap_or(Value::Null)}})
            }
            _ => {
                return Err(GatewayError::invalid(
                    "tool_choice",
                    "`tool_choice` is a mode or a function",
                ));
            }
        };
        chat.insert("tool_choice".to_owned(), choice);
    }
    Ok(Value::Object(chat))
}

fn add_item(messages: &mut Vec<Value>, item: &Value, index: usize) -> Result<(), GatewayError> {
    let at = |field: &str| format!("input[{index}].{field}");
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let role = match item.get("role").and_then(Value::as_str) {
                Some("developer" | "system") => "system",
                Some("user") => "user",
                Some("assistant") => "assistant",
                _ => {
                    return Err(GatewayError::invalid(
                        at("role"),
                        "a message's role is user, assistant, system or developer",
                    ));
                }
            };
            let content = match item.get("content") {
                Some(Value::String(text)) => Value::String(text.clone()),
                Some(Value::Array(parts)) => Value::Array(
                    parts
                        .iter()
                        .enumerate()
                        .map(|(position, part)| {
                            chat_part(part, &at(&format!("content[{position}]")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => {
                    return Err(GatewayError::invalid(
                        at("content"),
                        "content is a string or a list of parts",
                    ));
                }
            };
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": item.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                },
            });
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" && last.get("tool_calls").is_some() => {
                    if let Some(calls) = last["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                }
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            messages.push(json!({
                "role": "tool",
                "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "content": output,
            }));
        }
        "reasoning" => {}
        other => {
            return Err(GatewayError::invalid(
                at("type"),
                format!("input items of type `{other}` are not supported by this gateway"),
            ));
        }
    }
    Ok(())
}

fn chat_part(part: &Value, at: &str) -> Result<Value, GatewayError> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            Ok(json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()}))
        }
        Some("input_image") => match part.get("image_url").and_then(Value::as_str) {
            Some(url) => Ok(json!({"type": "image_url", "image_url": {"url": url}})),
            None => Err(GatewayError::invalid(
                format!("{at}.image_url"),
                "an image part needs `image_url` (file ids are not supported)",
            )),
        },
        other => Err(GatewayError::invalid(
            format!("{at}.type"),
            format!(
                "content parts of type `{}` are not supported by this gateway",
                other.unwrap_or("?")
            ),
        )),
    }
}

/// A function tool as a Chat tool; other tools are not offered upstream.
fn chat_tool(tool: &Value) -> Option<Value> {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return None;
    }
    let mut function = json!({"name": tool.get("name").cloned().unwrap_or(Value::Null)});
    for field in ["description", "parameters", "strict"] {
        if let Some(value) = tool.get(field).filter(|value| !value.is_null()) {
            function[field] = value.clone();
        }
    }
    Some(json!({"type": "function", "function": function}))
}

fn response_format(format: &Value) -> Result<Option<Value>, GatewayError> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = json!({
                "name": format.get("name").cloned().unwrap_or_else(|| json!("response")),
                "schema": format.get("schema").cloned().unwrap_or_else(|| json!({})),
            });
            if let Some(strict) = format.get("strict") {
                schema["strict"] = strict.clone();
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(GatewayError::invalid(
            "text.format.type",
            format!("unknown text format `{other}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Result<Value, GatewayError> {
        chat_request_from_responses(request)
    }

    #[test]
    fn items_become_chat_messages() {
        let chat = translate(json!({
            "model": "gpt-x", "instructions": "Be brief.", "max_output_tokens": 200,
            "reasoning": {"effort": "low", "summary": "auto"}, "store": false,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAA"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
                {"type": "function_call_output", "call_id": "call_2", "output": "noon"}
            ],
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}}
        }))
        .unwrap();
        assert_eq!(chat["max_completion_tokens"], 200);
        assert_eq!(chat["reasoning_effort"], "low");
        assert_eq!(
            chat["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            chat["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAA"
        );
        assert_eq!(
            chat["messages"][2]["tool_calls"].as_array().unwrap().len(),
            2
        );
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "rain"})
        );
        assert_eq!(chat["tools"][0]["function"]["strict"], true);
        assert_eq!(chat["tool_choice"]["function"]["name"], "weather");
        assert_eq!(chat["response_format"]["json_schema"]["name"], "a");
    }

    #[test]
    fn what_is_not_carried_is_refused_by_name() {
        let error =
            translate(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}))
                .unwrap_err();
        assert_eq!(error.param.as_deref(), Some("previous_response_id"));
        let offered = translate(
            json!({"model": "m", "input": "hi", "client_metadata": {"a": "b"},
            "tools": [{"type": "web_search"}, {"type": "namespace", "name": "agents", "tools": []},
                {"type": "function", "name": "f"}]}),
        )
        .unwrap();
        assert_eq!(
            offered["tools"],
            json!([{"type": "function", "function": {"name": "f"}}])
        );
        let error =
            translate(json!({"model": "m", "input": "hi", "conversation": "conv_1"})).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("conversation"));
        let plain = translate(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(
            plain["messages"],
            json!([{"role": "user", "content": "hi"}])
        );
    }
}
