//! A Chat Completions request as an Anthropic Messages request.
//!
//! - `system` and `developer` messages become the top-level `system`
//!   blocks, in order, wherever they stood in the conversation.
//! - User text and images (data URLs as base64 sources, `http(s)` URLs as
//!   URL sources) become content blocks; `cache_control` on a part is kept.
//! - An assistant's `tool_calls` become `tool_use` blocks (their ids kept);
//!   `tool` messages become `tool_result` blocks in a user turn.
//!   Consecutive turns of one role are joined, as Anthropic expects.
//! - `max_completion_tokens` (or `max_tokens`, or the cap the lease
//!   reserved, or [`DEFAULT_MAX_TOKENS`]) becomes the required `max_tokens`;
//!   `stop` becomes `stop_sequences`; `user` becomes `metadata.user_id`;
//!   `reasoning_effort` becomes a thinking budget.
//! - Function tools and `tool_choice` (`required` is `any`) carry over;
//!   `parallel_tool_calls: false` is `disable_parallel_tool_use`.
//! - `response_format` `json_object` or `json_schema` becomes one forced
//!   tool, [`RESPONSE_TOOL`], whose input the answer turns back into the
//!   message content.
//!
//! Anything else that asks for something (`n` above 1, `logprobs`,
//! penalties, `seed`, audio, other part types) is a 400 naming the field.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_core::{ErrorKind, GatewayError};

use crate::chat::{
    ChatRequest, Content, ImageSource, ImageUrl, Message, Part, ResponseFormat, Stop, Tool,
    ToolChoice, uncarried,
};

/// The name used in errors about fields Anthropic cannot carry.
const PROVIDER: &str = "anthropic";

/// The completion cap sent when neither the client nor the lease set one
/// (Anthropic requires one).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4_096;

/// The tool a JSON `response_format` is carried as.
pub(crate) const RESPONSE_TOOL: &str = "json_response";

/// The smallest thinking budget Anthropic accepts.
const MIN_THINKING_BUDGET: u32 = 1_024;

/// A translated request.
#[derive(Debug)]
pub(crate) struct Translated {
    pub body: Bytes,
    /// The request asked for JSON output, carried as [`RESPONSE_TOOL`].
    pub json_response: bool,
}

#[derive(Debug, Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<Turn>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Value>,
}

#[derive(Debug, Serialize)]
struct Turn {
    role: &'static str,
    content: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: Vec<Block>,
    },
}

#[derive(Debug, Serialize)]
struct ToolDefinition {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Value,
}

/// Translates a Chat Completions body for `model`. `reserved_cap` is the
/// completion cap the lease made room for, used when the client set none.
pub(crate) fn from_chat(
    body: &[u8],
    model: &str,
    stream: bool,
    reserved_cap: Option<u32>,
) -> Result<Translated, GatewayError> {
    let chat = ChatRequest::parse(body)?;
    if let Some(field) = chat.uncarried_field() {
        return Err(uncarried(&field, PROVIDER));
    }
    if chat.n.is_some_and(|n| n > 1) {
        return Err(uncarried("n", PROVIDER));
    }
    let max_tokens = chat
        .completion_cap()
        .or(reserved_cap)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let (system, messages) = conversation(chat.messages)?;
    let mut tools = chat
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, tool)| tool_definition(index, tool))
        .collect::<Result<Vec<_>, _>>()?;
    let disable_parallel = chat.parallel_tool_calls == Some(false);
    let mut tool_choice = chat
        .tool_choice
        .map(|choice| tool_choice_of(choice, disable_parallel))
        .transpose()?;
    if tool_choice.is_none() && disable_parallel && !tools.is_empty() {
        tool_choice = Some(json!({"type": "auto", "disable_parallel_tool_use": true}));
    }
    let json_response = match chat.response_format {
        Some(format) => match response_tool(format)? {
            Some(tool) => {
                if !tools.is_empty() {
                    return Err(GatewayError::new(
                        ErrorKind::InvalidRequest,
                        "a JSON `response_format` together with `tools` cannot be carried to an anthropic account",
                    )
                    .with_param("response_format".to_owned()));
                }
                tools.push(tool);
                tool_choice = Some(json!({"type": "tool", "name": RESPONSE_TOOL}));
                true
            }
            None => false,
        },
        None => false,
    };
    let thinking = chat
        .reasoning_effort
        .as_deref()
        .map(|effort| thinking_of(effort, max_tokens))
        .transpose()?
        .flatten();
    let request = MessagesRequest {
        model,
        max_tokens,
        messages,
        system,
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: chat.stop.map(Stop::into_vec).unwrap_or_default(),
        stream,
        tools,
        tool_choice,
        metadata: chat.user.map(|user| json!({"user_id": user})),
        thinking,
    };
    let body = serde_json::to_vec(&request)
        .map_err(|_| GatewayError::new(ErrorKind::Internal, "the request could not be encoded"))?;
    Ok(Translated {
        body: Bytes::from(body),
        json_response,
    })
}

/// The system blocks and the turns of a conversation.
fn conversation(messages: Vec<Message>) -> Result<(Vec<Block>, Vec<Turn>), GatewayError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (index, message) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{index}].{field}");
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                system.extend(text_blocks(message.content, &at("content"))?);
                continue;
            }
            "user" => ("user", content_blocks(message.content, &at("content"))?),
            "assistant" => ("assistant", assistant_blocks(message, index)?),
            "tool" => {
                let Some(tool_use_id) = message.tool_call_id else {
                    return Err(GatewayError::invalid(
                        at("tool_call_id"),
                        "a tool message needs `tool_call_id`",
                    ));
                };
                let content = content_blocks(message.content, &at("content"))?;
                (
                    "user",
                    vec![Block::ToolResult {
                        tool_use_id,
                        content,
                    }],
                )
            }
            other => {
                return Err(GatewayError::invalid(
                    at("role"),
                    format!("role `{other}` cannot be carried to an anthropic account"),
                ));
            }
        };
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    Ok((system, turns))
}

/// An assistant message's text and tool calls. Empty text is left out
/// (Anthropic refuses empty text blocks; OpenAI clients send `""` beside
/// tool calls).
fn assistant_blocks(message: Message, index: usize) -> Result<Vec<Block>, GatewayError> {
    let mut blocks: Vec<Block> =
        content_blocks(message.content, &format!("messages[{index}].content"))?
            .into_iter()
            .filter(|block| !matches!(block, Block::Text { text, .. } if text.is_empty()))
            .collect();
    for (call_index, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let input = call.arguments_value(|| {
            format!("messages[{index}].tool_calls[{call_index}].function.arguments")
        })?;
        blocks.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        });
    }
    Ok(blocks)
}

/// Content that may only be text (system prompts).
fn text_blocks(content: Option<Content>, at: &str) -> Result<Vec<Block>, GatewayError> {
    let blocks = content_blocks(content, at)?;
    if blocks
        .iter()
        .any(|block| !matches!(block, Block::Text { .. }))
    {
        return Err(GatewayError::invalid(
            at,
            "a system message may only hold text",
        ));
    }
    Ok(blocks)
}

fn content_blocks(content: Option<Content>, at: &str) -> Result<Vec<Block>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(vec![Block::Text {
            text,
            cache_control: None,
        }]),
        Some(Content::Parts(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(index, part)| part_block(part, &format!("{at}[{index}]")))
            .collect(),
    }
}

fn part_block(part: Part, at: &str) -> Result<Block, GatewayError> {
    match part.kind.as_str() {
        "text" => Ok(Block::Text {
            text: part.text.unwrap_or_default(),
            cache_control: part.cache_control,
        }),
        "image_url" => {
            let Some(image) = part.image_url else {
                return Err(GatewayError::invalid(
                    format!("{at}.image_url"),
                    "an image part needs `image_url`",
                ));
            };
            Ok(Block::Image {
                source: image_source(&image, &format!("{at}.image_url.url"))?,
                cache_control: part.cache_control,
            })
        }
        other => Err(GatewayError::invalid(
            format!("{at}.type"),
            format!("content parts of type `{other}` cannot be carried to an anthropic account"),
        )),
    }
}

/// A data URL as a base64 source; an `http(s)` URL as a URL source.
fn image_source(image: &ImageUrl, at: &str) -> Result<Value, GatewayError> {
    Ok(match image.source(at)? {
        ImageSource::Inline { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Web(url) => json!({"type": "url", "url": url}),
    })
}

fn tool_definition(index: usize, tool: Tool) -> Result<ToolDefinition, GatewayError> {
    let function = match (tool.kind.as_str(), tool.function) {
        ("function", Some(function)) => function,
        ("function", None) => {
            return Err(GatewayError::invalid(
                format!("tools[{index}].function"),
                "a function tool needs `function`",
            ));
        }
        (other, _) => {
            return Err(GatewayError::invalid(
                format!("tools[{index}].type"),
                format!("tools of type `{other}` cannot be carried to an anthropic account"),
            ));
        }
    };
    Ok(ToolDefinition {
        name: function.name,
        description: function.description,
        input_schema: function
            .parameters
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
}

fn tool_choice_of(choice: ToolChoice, disable_parallel: bool) -> Result<Value, GatewayError> {
    let mut value = match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => return Ok(json!({"type": "none"})),
            other => {
                return Err(GatewayError::invalid(
                    "tool_choice",
                    format!("unknown tool_choice `{other}`"),
                ));
            }
        },
        ToolChoice::Function { function } => json!({"type": "tool", "name": function.name}),
    };
    if disable_parallel {
        value["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(value)
}

/// The forced tool a JSON `response_format` is carried as; `None` for
/// `text`.
fn response_tool(format: ResponseFormat) -> Result<Option<ToolDefinition>, GatewayError> {
    let schema = match format.kind.as_str() {
        "text" => return Ok(None),
        "json_object" => json!({"type": "object"}),
        "json_schema" => format
            .json_schema
            .and_then(|schema| schema.schema)
            .ok_or_else(|| {
                GatewayError::invalid(
                    "response_format.json_schema.schema",
                    "a JSON schema response format needs its schema",
                )
            })?,
        other => {
            return Err(GatewayError::invalid(
                "response_format.type",
                format!("unknown response_format type `{other}`"),
            ));
        }
    };
    Ok(Some(ToolDefinition {
        name: RESPONSE_TOOL.to_owned(),
        description: Some("Give the answer as this JSON value.".to_owned()),
        input_schema: schema,
    }))
}

/// OpenAI's reasoning effort as an Anthropic thinking budget, kept below
/// the completion cap as Anthropic requires; `minimal` and `none` mean no
/// thinking.
fn thinking_of(effort: &str, max_tokens: u32) -> Result<Option<Value>, GatewayError> {
    let budget = match effort {
        "none" | "minimal" => return Ok(None),
        "low" => 1_024,
        "medium" => 4_096,
        "high" => 16_384,
        other => {
            return Err(GatewayError::invalid(
                "reasoning_effort",
                format!("unknown reasoning_effort `{other}`"),
            ));
        }
    };
    let budget = budget.min(max_tokens.saturating_sub(1));
    if budget < MIN_THINKING_BUDGET {
        return Err(GatewayError::invalid(
            "reasoning_effort",
            "reasoning on an anthropic account needs a completion cap above 1024 tokens",
        ));
    }
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Value {
        let translated =
            from_chat(request.to_string().as_bytes(), "claude-x", false, None).unwrap();
        serde_json::from_slice(&translated.body).unwrap()
    }

    fn refused(request: Value) -> GatewayError {
        from_chat(request.to_string().as_bytes(), "claude-x", false, None).unwrap_err()
    }

    #[test]
    fn a_conversation_with_tools_translates_with_ids_kept() {
        let body = translate(json!({
            "model": "alias",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
                ]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "max_tokens": 300,
            "temperature": 0.2,
            "stop": ["END"],
            "user": "u-1",
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "stream_options": {"include_usage": true}
        }));
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "max_tokens": 300,
                "system": [{"type": "text", "text": "Be brief."}],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather?", "cache_control": {"type": "ephemeral"}},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "rain"}]},
                        {"type": "text", "text": "And tomorrow?"}
                    ]}
                ],
                "temperature": 0.2,
                "stop_sequences": ["END"],
                "tools": [{"name": "weather", "description": "d",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "metadata": {"user_id": "u-1"}
            })
        );
    }

    #[test]
    fn the_cap_comes_from_the_client_the_lease_or_the_default() {
        let plain = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(translate(plain.clone())["max_tokens"], DEFAULT_MAX_TOKENS);
        let leased = from_chat(plain.to_string().as_bytes(), "m", true, Some(77)).unwrap();
        let leased: Value = serde_json::from_slice(&leased.body).unwrap();
        assert_eq!(leased["max_tokens"], 77);
        assert_eq!(leased["stream"], true);
        let own = json!({"messages": [], "max_completion_tokens": 9, "max_tokens": 5});
        assert_eq!(translate(own)["max_tokens"], 9);
    }

    #[test]
    fn json_response_formats_become_a_forced_tool() {
        let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}}});
        let translated = from_chat(
            json!({"messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
            .to_string()
            .as_bytes(),
            "m",
            false,
            None,
        )
        .unwrap();
        assert!(translated.json_response);
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["tools"][0]["name"], RESPONSE_TOOL);
        assert_eq!(body["tools"][0]["input_schema"], schema);
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": RESPONSE_TOOL})
        );
        let text = translate(json!({"messages": [], "response_format": {"type": "text"}}));
        assert!(text.get("tools").is_none());
    }

    #[test]
    fn reasoning_effort_becomes_a_budget_below_the_cap() {
        let body =
            translate(json!({"messages": [], "reasoning_effort": "high", "max_tokens": 8000}));
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 7999})
        );
        let body = translate(json!({"messages": [], "reasoning_effort": "minimal"}));
        assert!(body.get("thinking").is_none());
        let error = refused(json!({"messages": [], "reasoning_effort": "low", "max_tokens": 500}));
        assert_eq!(error.param.as_deref(), Some("reasoning_effort"));
    }

    #[test]
    fn what_cannot_be_carried_is_refused_by_name() {
        let cases = [
            (json!({"messages": [], "logprobs": true}), "logprobs"),
            (json!({"messages": [], "n": 2}), "n"),
            (json!({"messages": [], "seed": 7}), "seed"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "function", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!({"messages": [], "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}],
                "response_format": {"type": "json_object"}}),
                "response_format",
            ),
        ];
        for (request, param) in cases {
            let error = refused(request.clone());
            assert_eq!(error.kind, ErrorKind::InvalidRequest, "{request}");
            assert_eq!(error.param.as_deref(), Some(param), "{request}");
        }
        let error = refused(json!({"messages": [], "logprobs": true}));
        assert!(error.message.contains("anthropic"), "{}", error.message);
    }
}
