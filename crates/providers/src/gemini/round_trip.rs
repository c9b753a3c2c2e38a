//! Property: a Chat request of the shapes Gemini can carry, translated to
//! `generateContent` ([`super::request`]) and read back, comes back field
//! for field. Gemini requests name no tool call ids, so the reading back
//! numbers calls by position, as the generated requests do.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::request::from_chat;
use crate::chat::arbitrary::{self, Carried};

const CARRIED: Carried = Carried {
    cache_control: false,
    user: false,
    serial_tools: false,
};

/// Chat content of parts: one text as a string, none as null.
fn content(parts: Vec<Value>) -> Value {
    match parts.as_slice() {
        [] => Value::Null,
        [only] if only["type"] == "text" => only["text"].clone(),
        _ => Value::Array(parts),
    }
}

fn chat_part(part: &Value) -> Option<Value> {
    if let Some(text) = part.get("text") {
        return Some(json!({"type": "text", "text": text}));
    }
    if let Some(data) = part.get("inlineData") {
        let url = format!(
            "data:{};base64,{}",
            data["mimeType"].as_str()?,
            data["data"].as_str()?
        );
        return Some(json!({"type": "image_url", "image_url": {"url": url}}));
    }
    let file = part.get("fileData")?;
    Some(json!({"type": "image_url", "image_url": {"url": file["fileUri"]}}))
}

/// A `generateContent` request read as Chat (the inverse of the mapping).
fn chat_of(gemini: &Value) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = gemini.get("systemInstruction") {
        let parts: Vec<Value> = system["parts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(chat_part)
            .collect();
        messages.push(json!({"role": "system", "content": content(parts)}));
    }
    let mut calls: Vec<String> = Vec::new();
    for turn in gemini["contents"].as_array().unwrap() {
        let parts = turn["parts"].as_array().unwrap();
        if turn["role"] == "model" {
            let position = messages.len();
            let tool_calls: Vec<Value> = parts
                .iter()
                .filter_map(|part| part.get("functionCall"))
                .enumerate()
                .map(|(n, call)| {
                    json!({"id": format!("call_{position}_{n}"), "type": "function",
                        "function": {"name": call["name"], "arguments": call["args"].to_string()}})
                })
                .collect();
            calls = tool_calls
                .iter()
                .map(|call| call["id"].as_str().unwrap().to_owned())
                .collect();
            let text: Vec<Value> = parts.iter().filter_map(chat_part).collect();
            let mut message = json!({"role": "assistant", "content": content(text)});
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
            }
            messages.push(message);
            continue;
        }
        for (response, id) in parts
            .iter()
            .filter_map(|part| part.get("functionResponse"))
            .zip(&calls)
        {
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": response["response"]["content"]}));
        }
        let rest: Vec<Value> = parts.iter().filter_map(chat_part).collect();
        if !rest.is_empty() {
            messages.push(json!({"role": "user", "content": content(rest)}));
        }
    }
    let mut chat = Map::new();
    chat.insert("model".into(), json!("alias"));
    chat.insert("messages".into(), Value::Array(messages));
    let config = &gemini["generationConfig"];
    chat.insert("max_tokens".into(), config["maxOutputTokens"].clone());
    for (from, to) in [("temperature", "temperature"), ("stopSequences", "stop")] {
        if let Some(value) = config.get(from) {
            chat.insert(to.into(), value.clone());
        }
    }
    if let Some(declarations) = gemini
        .pointer("/tools/0/functionDeclarations")
        .and_then(Value::as_array)
    {
        let tools = declarations
            .iter()
            .map(|declaration| {
                json!({"type": "function", "function": {"name": declaration["name"],
                    "description": declaration["description"], "parameters": declaration["parametersJsonSchema"]}})
            })
            .collect();
        chat.insert("tools".into(), Value::Array(tools));
    }
    if let Some(calling) = gemini.pointer("/toolConfig/functionCallingConfig") {
        let choice = match (
            calling["mode"].as_str(),
            calling.pointer("/allowedFunctionNames/0"),
        ) {
            (Some("NONE"), _) => json!("none"),
            (Some("AUTO"), _) => json!("auto"),
            (Some("ANY"), Some(name)) => json!({"type": "function", "function": {"name": name}}),
            _ => json!("required"),
        };
        chat.insert("tool_choice".into(), choice);
    }
    Value::Object(chat)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chat_survives_gemini_and_back(request in arbitrary::chat_request(CARRIED)) {
        let translated = from_chat(request.to_string().as_bytes(), None).unwrap();
        let gemini: Value = serde_json::from_slice(&translated).unwrap();
        prop_assert_eq!(chat_of(&gemini), request);
    }
}
