//! A Chat Completions request as a Gemini `generateContent` request.
//!
//! - `system` and `developer` messages become `systemInstruction`.
//! - User and assistant turns become `contents` with roles `user` and
//!   `model`; consecutive turns of one role are joined.
//! - Text parts become `text` parts; images become `inlineData` (data URLs)
//!   or `fileData` (`http(s)` URLs, the MIME type from the file name).
//! - An assistant's tool calls become `functionCall` parts; `tool` messages
//!   become `functionResponse` parts named after the call they answer
//!   (found by id in the history), the content as the response (a JSON
//!   object as it is, other text as `{"content": text}`). A call id made
//!   by [`super::tool_call_id`] gives back the call's thought signature.
//! - Function tools become `functionDeclarations` (the schema as
//!   `parametersJsonSchema`); `tool_choice` becomes the function calling
//!   mode (`none` → `NONE`, `auto` → `AUTO`, `required` → `ANY`, one
//!   function → `ANY` allowed only that one).
//! - `generationConfig`: the completion cap → `maxOutputTokens`, `stop` →
//!   `stopSequences`, `n` → `candidateCount`, `temperature`, `top_p`,
//!   `seed`, the penalties, `response_format` JSON → `responseMimeType`
//!   (with `responseJsonSchema` for a schema), `reasoning_effort` → a
//!   thinking budget.
//!
//! `user` and `parallel_tool_calls` have no Gemini counterpart and ask
//! nothing of the answer: dropped on purpose. Anything else that asks for
//! something (`logprobs`, audio or file parts, other tool types) is a 400
//! naming the field.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tollgate_core::{ErrorKind, GatewayError};

use super::split_tool_call_id;
use crate::chat::{
    ChatRequest, Content, ImageSource, ImageUrl, Message, Part, ResponseFormat, Tool, ToolChoice,
    uncarried,
};

const PROVIDER: &str = "gemini";

/// Fields read below that OpenAI keeps outside [`ChatRequest`]'s own.
const GENERATION_FIELDS: &[&str] = &["seed", "presence_penalty", "frequency_penalty"];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest {
    contents: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Turn>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    generation_config: Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct Turn {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Value>,
}

/// Translates a Chat Completions body. `reserved_cap` is the completion
/// cap the lease made room for, used when the client set none.
pub(crate) fn from_chat(body: &[u8], reserved_cap: Option<u32>) -> Result<Bytes, GatewayError> {
    let mut chat = ChatRequest::parse(body)?;
    let generation_fields: Map<String, Value> = GENERATION_FIELDS
        .iter()
        .filter_map(|field| {
            chat.other
                .remove(*field)
                .map(|value| ((*field).to_owned(), value))
        })
        .collect();
    if let Some(field) = chat.uncarried_field() {
        return Err(uncarried(&field, PROVIDER));
    }
    let (system_instruction, contents) = conversation(chat.messages)?;
    let tools = chat
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, tool)| function_declaration(index, tool))
        .collect::<Result<Vec<_>, _>>()?;
    let tool_config = chat.tool_choice.map(tool_config_of).transpose()?;

    let mut config = Map::new();
    let mut set = |name: &str, value: Value| {
        if !value.is_null() {
            config.insert(name.to_owned(), value);
        }
    };
    set(
        "maxOutputTokens",
        json!(
            chat.max_completion_tokens
                .or(chat.max_tokens)
                .or(reserved_cap)
        ),
    );
    set("temperature", json!(chat.temperature));
    set("topP", json!(chat.top_p));
    set("candidateCount", json!(chat.n.filter(|n| *n > 1)));
    set(
        "seed",
        generation_fields
            .get("seed")
            .cloned()
            .unwrap_or(Value::Null),
    );
    set(
        "presencePenalty",
        generation_fields
            .get("presence_penalty")
            .cloned()
            .unwrap_or(Value::Null),
    );
    set(
        "frequencyPenalty",
        generation_fields
            .get("frequency_penalty")
            .cloned()
            .unwrap_or(Value::Null),
    );
    if let Some(stop) = chat.stop {
        set("stopSequences", json!(stop.into_vec()));
    }
    if let Some(format) = chat.response_format {
        for (name, value) in response_format(format)? {
            set(name, value);
        }
    }
    if let Some(effort) = chat.reasoning_effort.as_deref() {
        set(
            "thinkingConfig",
            json!({"thinkingBudget": thinking_budget(effort)?}),
        );
    }
    let request = GenerateContentRequest {
        contents,
        system_instruction,
        tools: if tools.is_empty() {
            Vec::new()
        } else {
            vec![json!({"functionDeclarations": tools})]
        },
        tool_config,
        generation_config: config,
    };
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|_| GatewayError::new(ErrorKind::Internal, "the request could not be encoded"))
}

fn conversation(messages: Vec<Message>) -> Result<(Option<Turn>, Vec<Turn>), GatewayError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    // Function names by call id, to name the responses.
    let mut calls: HashMap<String, String> = HashMap::new();
    for (index, message) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{index}].{field}");
        let (role, parts) = match message.role.as_str() {
            "system" | "developer" => {
                let parts = content_parts(message.content, &at("content"))?;
                if parts.iter().any(|part| part.get("text").is_none()) {
                    return Err(GatewayError::invalid(
                        at("content"),
                        "a system message may only hold text",
                    ));
                }
                system.extend(parts);
                continue;
            }
            "user" => ("user", content_parts(message.content, &at("content"))?),
            "assistant" => {
                let mut parts: Vec<Value> = content_parts(message.content, &at("content"))?
                    .into_iter()
                    .filter(|part| part.get("text").and_then(Value::as_str) != Some(""))
                    .collect();
                for (call_index, call) in message
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    let args = call.arguments_value(|| {
                        format!("messages[{index}].tool_calls[{call_index}].function.arguments")
                    })?;
                    let (_, signature) = split_tool_call_id(&call.id);
                    let mut part =
                        json!({"functionCall": {"name": call.function.name, "args": args}});
                    if let Some(signature) = signature {
                        part["thoughtSignature"] = Value::String(signature.to_owned());
                    }
                    calls.insert(call.id, call.function.name);
                    parts.push(part);
                }
                ("model", parts)
            }
            "tool" => {
                let Some(id) = message.tool_call_id else {
                    return Err(GatewayError::invalid(
                        at("tool_call_id"),
                        "a tool message needs `tool_call_id`",
                    ));
                };
                let Some(name) = calls.get(&id) else {
                    return Err(GatewayError::invalid(
                        at("tool_call_id"),
                        "a tool message must answer a tool call of an earlier assistant message",
                    ));
                };
                let text = content_text(message.content, &at("content"))?;
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            other => {
                return Err(GatewayError::invalid(
                    at("role"),
                    format!("role `{other}` cannot be carried to a gemini account"),
                ));
            }
        };
        match turns.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => turns.push(Turn {
                role: Some(role),
                parts,
            }),
        }
    }
    let system = (!system.is_empty()).then_some(Turn {
        role: None,
        parts: system,
    });
    Ok((system, turns))
}

fn content_text(content: Option<Content>, at: &str) -> Result<String, GatewayError> {
    let parts = content_parts(content, at)?;
    parts
        .iter()
        .map(|part| {
            part.get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| GatewayError::invalid(at, "a tool result may only hold text"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|texts| texts.concat())
}

fn content_parts(content: Option<Content>, at: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(vec![json!({"text": text})]),
        Some(Content::Parts(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(index, part)| content_part(part, &format!("{at}[{index}]")))
            .collect(),
    }
}

fn content_part(part: Part, at: &str) -> Result<Value, GatewayError> {
    match part.kind.as_str() {
        "text" => Ok(json!({"text": part.text.unwrap_or_default()})),
        "image_url" => {
            let Some(image) = part.image_url else {
                return Err(GatewayError::invalid(
                    format!("{at}.image_url"),
                    "an image part needs `image_url`",
                ));
            };
            image_part(&image, &format!("{at}.image_url.url"))
        }
        other => Err(GatewayError::invalid(
            format!("{at}.type"),
            format!("content parts of type `{other}` cannot be carried to a gemini account"),
        )),
    }
}

fn image_part(image: &ImageUrl, at: &str) -> Result<Value, GatewayError> {
    Ok(match image.source(at)? {
        ImageSource::Inline { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        ImageSource::Web(url) => {
            json!({"fileData": {"mimeType": image_type_of(url), "fileUri": url}})
        }
    })
}

/// An image's MIME type by its file name; JPEG when it does not say.
fn image_type_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".heic") {
        "image/heic"
    } else {
        "image/jpeg"
    }
}

fn function_declaration(index: usize, tool: Tool) -> Result<Value, GatewayError> {
    match (tool.kind.as_str(), tool.function) {
        ("function", Some(function)) => {
            let mut declaration = json!({"name": function.name});
            if let Some(description) = function.description {
                declaration["description"] = Value::String(description);
            }
            if let Some(parameters) = function.parameters {
                declaration["parametersJsonSchema"] = parameters;
            }
            Ok(declaration)
        }
        ("function", None) => Err(GatewayError::invalid(
            format!("tools[{index}].function"),
            "a function tool needs `function`",
        )),
        (other, _) => Err(GatewayError::invalid(
            format!("tools[{index}].type"),
            format!("tools of type `{other}` cannot be carried to a gemini account"),
        )),
    }
}

fn tool_config_of(choice: ToolChoice) -> Result<Value, GatewayError> {
    let config = match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "none" => json!({"mode": "NONE"}),
            "auto" => json!({"mode": "AUTO"}),
            "required" => json!({"mode": "ANY"}),
            other => {
                return Err(GatewayError::invalid(
                    "tool_choice",
                    format!("unknown tool_choice `{other}`"),
                ));
            }
        },
        ToolChoice::Function { function } => {
            json!({"mode": "ANY", "allowedFunctionNames": [function.name]})
        }
    };
    Ok(json!({"functionCallingConfig": config}))
}

fn response_format(format: ResponseFormat) -> Result<Vec<(&'static str, Value)>, GatewayError> {
    match format.kind.as_str() {
        "text" => Ok(Vec::new()),
        "json_object" => Ok(vec![("responseMimeType", json!("application/json"))]),
        "json_schema" => {
            let schema = format
                .json_schema
                .and_then(|schema| schema.schema)
                .ok_or_else(|| {
                    GatewayError::invalid(
                        "response_format.json_schema.schema",
                        "a JSON schema response format needs its schema",
                    )
                })?;
            Ok(vec![
                ("responseMimeType", json!("application/json")),
                ("responseJsonSchema", schema),
            ])
        }
        other => Err(GatewayError::invalid(
            "response_format.type",
            format!("unknown response_format type `{other}`"),
        )),
    }
}

/// OpenAI's reasoning effort as a thinking budget in tokens: none and
/// minimal turn thinking off where the model allows it.
fn thinking_budget(effort: &str) -> Result<u32, GatewayError> {
    match effort {
        "none" | "minimal" => Ok(0),
        "low" => Ok(1_024),
        "medium" => Ok(8_192),
        "high" => Ok(24_576),
        other => Err(GatewayError::invalid(
            "reasoning_effort",
            format!("unknown reasoning_effort `{other}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::tool_call_id;

    fn translate(request: Value) -> Value {
        serde_json::from_slice(&from_chat(request.to_string().as_bytes(), None).unwrap()).unwrap()
    }

    #[test]
    fn a_conversation_with_tools_translates() {
        let call_id = tool_call_id("r1", 0, Some("sig-abc"));
        let body = translate(json!({
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.webp?x=1"}}
                ]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": call_id, "content": "rain"},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "max_completion_tokens": 300, "temperature": 0.2, "top_p": 0.9, "stop": "END", "n": 2,
            "seed": 7, "presence_penalty": 0.5, "user": "u-1", "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "reasoning_effort": "low"
        }));
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "Weather?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a.webp?x=1"}}
                    ]},
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "sig-abc"}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"content": "rain"}}},
                        {"text": "And tomorrow?"}
                    ]}
                ],
                "tools": [{"functionDeclarations": [{"name": "weather", "description": "d",
                    "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
                "generationConfig": {
                    "maxOutputTokens": 300, "temperature": 0.2, "topP": 0.9, "candidateCount": 2,
                    "seed": 7, "presencePenalty": 0.5, "stopSequences": ["END"],
                    "thinkingConfig": {"thinkingBudget": 1024}
                }
            })
        );
    }

    #[test]
    fn json_formats_and_the_lease_cap() {
        let body = from_chat(
            json!({"messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}})
            .to_string()
            .as_bytes(),
            Some(64),
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens": 64, "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"}})
        );
    }

    #[test]
    fn what_cannot_be_carried_is_refused_by_name() {
        let cases = [
            (json!({"messages": [], "logprobs": true}), "logprobs"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"messages": [], "tools": [{"type": "custom"}]}),
                "tools[0].type",
            ),
        ];
        for (request, param) in cases {
            let error = from_chat(request.to_string().as_bytes(), None).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{request}");
            assert_eq!(error.kind, ErrorKind::InvalidRequest);
        }
    }
}
