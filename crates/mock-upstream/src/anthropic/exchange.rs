//! One Messages request to the fake Anthropic API: checked as Anthropic
//! checks it, and answered deterministically.
//!
//! - **Checks** (each a 400 `invalid_request_error` worded like
//!   Anthropic's): `model`, `max_tokens` and a non-empty `messages` are
//!   required; no top-level field outside the Messages API; roles are `user`
//!   or `assistant`; content is a string or known blocks; text blocks are
//!   not empty; every `tool_use` is answered by a `tool_result` in the next
//!   message; tools have a `name` and an `input_schema`; a thinking budget
//!   is at least 1024 and below `max_tokens`; `temperature` is within 0–1.
//! - **Reply**: the last user message's text (its `tool_result` contents
//!   when it has no text), without `[[mock:…]]` directives. A call of a
//!   tool instead when `tool_choice` forces one (`tool` or `any`) or the
//!   `tool_call=true` directive asks: its input is the reply when that is a
//!   JSON object, else `{"text": reply}`.
//! - **Usage**: a prompt of 3 + per message 4 + ceil(text bytes / 4), plus
//!   ceil(bytes / 4) of the system prompt and of the tools' JSON; of it,
//!   `cached_tokens` are cache reads, `cache_write_5m_tokens` and
//!   `cache_write_1h_tokens` cache writes, and the rest `input_tokens`, as
//!   Anthropic counts. Output: max(1, ceil(reply bytes /
//!   4)) or `completion_tokens`, held to `max_tokens` (then `stop_reason`
//!   `max_tokens`, the text cut to four bytes a token).
//! - **Overload**: `overloaded=true` is Anthropic's 529 `overloaded_error`;
//!   `overloaded_after=N` ends a stream after N events with the `error`
//!   event Anthropic sends when it becomes overloaded mid-stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tollgate_providers::mock::{Directives, MockBehavior, Refusal};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Top-level fields of a Messages request.
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
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
];

const BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "search_result",
];

/// What the fake answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MessagesExchange {
    pub id: String,
    pub model: String,
    pub stream: bool,
    pub answer: Answer,
    pub stop_reason: &'static str,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_read: u32,
    pub cache_write_5m: u32,
    pub cache_write_1h: u32,
    pub directives: Directives,
    pub latency: Duration,
    pub chunk_delay: Duration,
    pub chunks: u32,
    pub cut_after: Option<u32>,
}

/// Why a request is refused, as Anthropic would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Refused {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl MessagesExchange {
    pub fn parse(
        body: &[u8],
        behavior: &MockBehavior,
        defaults: Directives,
    ) -> Result<Self, Refused> {
        let request: Map<String, Value> = serde_json::from_slice(body).map_err(|_| {
            Refused::invalid(
                "There was an error parsing the body of your request: it is not a JSON object.",
            )
        })?;
        if let Some(extra) = request.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(Refused::invalid(format!(
                "{extra}: Extra inputs are not permitted"
            )));
        }
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Refused::invalid("model: Field required"))?;
        let max_tokens = request
            .get("max_tokens")
            .and_then(Value::as_u64)
            .ok_or_else(|| Refused::invalid("max_tokens: Field required"))?;
        let max_tokens = u32::try_from(max_tokens).unwrap_or(u32::MAX);
        let messages = match request.get("messages").and_then(Value::as_array) {
            Some(messages) if !messages.is_empty() => messages,
            Some(_) => {
                return Err(Refused::invalid(
                    "messages: at least one message is required",
                ));
            }
            None => return Err(Refused::invalid("messages: Field required")),
        };
        check_messages(messages)?;
        check_system(request.get("system"))?;
        let tools = check_tools(request.get("tools"))?;
        check_thinking(request.get("thinking"), max_tokens)?;
        if let Some(temperature) = request.get("temperature").and_then(Value::as_f64)
            && !(0.0..=1.0).contains(&temperature)
        {
            return Err(Refused::invalid(
                "temperature: Input should be less than or equal to 1",
            ));
        }

        let user_text = last_user_text(messages);
        let (directives, reply) = Directives::extract(&user_text);
        let directives = directives.or(defaults);
        let mut reply = reply.into_owned();
        let forced = forced_tool(request.get("tool_choice"), &tools);
        let tool = forced.or_else(|| {
            (directives.tool_call == Some(true))
                .then(|| tools.first().cloned())
                .flatten()
        });

        let mut prompt = 3 + tokens(&request.get("system").map(text_of).unwrap_or_default());
        prompt += request
            .get("tools")
            .map_or(0, |tools| tokens(&tools.to_string()));
        for message in messages {
            prompt += 4 + tokens(&text_of(&message["content"]));
        }
        let cache_read = directives.cached_tokens.unwrap_or(0).min(prompt);
        let cache_write_5m = directives
            .cache_write_5m_tokens
            .unwrap_or(0)
            .min(prompt - cache_read);
        let cache_write_1h = directives
            .cache_write_1h_tokens
            .unwrap_or(0)
            .min(prompt - cache_read - cache_write_5m);

        let mut output = directives
            .completion_tokens
            .or(behavior.completion_tokens)
            .unwrap_or_else(|| tokens(&reply).max(1));
        let mut stop_reason = if tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        if output > max_tokens {
            output = max_tokens;
            stop_reason = "max_tokens";
            let mut end = (max_tokens as usize).saturating_mul(4).min(reply.len());
            while !reply.is_char_boundary(end) {
                end -= 1;
            }
            reply.truncate(end);
        }
        if directives.error == Some(Refusal::ContentPolicyViolation) {
            stop_reason = "refusal";
            reply.clear();
        }
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let answer = match tool {
            Some(name) if stop_reason == "tool_use" => Answer::ToolUse {
                id: format!("toolu_mock{sequence:012x}"),
                name,
                input: match serde_json::from_str::<Value>(&reply) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "text": reply }),
                },
            },
            _ => Answer::Text(reply),
        };
        let millis = |ms: Option<u64>, default: Duration| ms.map_or(default, Duration::from_millis);
        Ok(Self {
            id: format!("msg_mock{sequence:016x}"),
            model: model.to_owned(),
            stream: request.get("stream").and_then(Value::as_bool) == Some(true),
            answer,
            stop_reason,
            input_tokens: prompt - cache_read - cache_write_5m - cache_write_1h,
            output_tokens: output,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            directives,
            latency: millis(directives.latency_ms, behavior.latency),
            chunk_delay: millis(directives.chunk_delay_ms, behavior.chunk_delay),
            chunks: directives.chunks.unwrap_or(behavior.chunks).max(1),
            cut_after: directives.cut_after.or(behavior.cut_after),
        })
    }

    /// A failure the directives ask for: a status, or a prompt too long.
    pub fn requested_failure(&self) -> Option<Refused> {
        if self.directives.error == Some(Refusal::ContextLengthExceeded) {
            return Some(Refused::invalid(format!(
                "prompt is too long: {} tokens > 200000 maximum",
                200_000 + self.input_tokens
            )));
        }
        let overloaded = (self.directives.overloaded == Some(true)).then_some(529);
        let status = overloaded.or(self.directives.status.filter(|status| *status >= 400))?;
        Some(Refused {
            status,
            message: default_message(status).to_owned(),
            retry_after: self.directives.retry_after,
        })
    }
}

/// The wording of Anthropic's errors by status.
pub(crate) fn default_message(status: u16) -> &'static str {
    match status {
        401 => "invalid x-api-key",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "The requested resource could not be found.",
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => "Number of request tokens has exceeded your per-minute rate limit",
        529 => "Overloaded",
        _ => "Internal server error",
    }
}

fn tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// The text of a content value: a string, or its blocks' text and tool
/// result contents.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| match block.get("type").and_then(Value::as_str) {
                Some("text") => block.get("text").and_then(Value::as_str).map(str::to_owned),
                Some("tool_result") => block.get("content").map(text_of),
                Some("tool_use") => block.get("input").map(Value::to_string),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn last_user_text(messages: &[Value]) -> String {
    let Some(message) = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")
    else {
        return String::new();
    };
    let content = &message["content"];
    let text_only = match content {
        Value::Array(blocks) => Value::Array(
            blocks
                .iter()
                .filter(|block| block["type"] == "text")
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    };
    let text = text_of(&text_only);
    if text.is_empty() {
        text_of(content)
    } else {
        text
    }
}

fn check_messages(messages: &[Value]) -> Result<(), Refused> {
    let mut pending_tool_uses: Vec<String> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(Refused::invalid(format!(
                "messages.{index}.role: Input should be 'user' or 'assistant'"
            )));
        }
        let blocks: Vec<&Value> = match &message["content"] {
            Value::String(text) if text.is_empty() && role == "user" => {
                return Err(Refused::invalid(format!(
                    "messages.{index}: user messages must have non-empty content"
                )));
            }
            Value::String(_) => Vec::new(),
            Value::Array(blocks) => blocks.iter().collect(),
            _ => {
                return Err(Refused::invalid(format!(
                    "messages.{index}.content: Input should be a valid list"
                )));
            }
        };
        let answered: Vec<&str> = blocks
            .iter()
            .filter(|block| block["type"] == "tool_result")
            .filter_map(|block| block["tool_use_id"].as_str())
            .collect();
        if let Some(missing) = pending_tool_uses
            .iter()
            .find(|id| !answered.contains(&id.as_str()))
        {
            return Err(Refused::invalid(format!(
                "messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}"
            )));
        }
        pending_tool_uses.clear();
        for (position, block) in blocks.iter().enumerate() {
            let kind = block["type"].as_str().unwrap_or_default();
            if !BLOCK_TYPES.contains(&kind) {
                return Err(Refused::invalid(format!(
                    "messages.{index}.content.{position}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
                )));
            }
            if kind == "text" && block["text"].as_str().is_none_or(str::is_empty) {
                return Err(Refused::invalid(format!(
                    "messages.{index}.content.{position}.text: text content blocks must be non-empty"
                )));
            }
            if kind == "tool_use" {
                if role != "assistant" {
                    return Err(Refused::invalid(format!(
                        "messages.{index}.content.{position}: tool_use blocks may only be in assistant messages"
                    )));
                }
                pending_tool_uses.push(block["id"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    Ok(())
}

fn check_system(system: Option<&Value>) -> Result<(), Refused> {
    match system {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) if blocks.iter().all(|block| block["type"] == "text") => Ok(()),
        Some(_) => Err(Refused::invalid(
            "system: Input should be a valid string or a list of text blocks",
        )),
    }
}

/// The tools' names, each checked.
fn check_tools(tools: Option<&Value>) -> Result<Vec<String>, Refused> {
    let Some(tools) = tools else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| Refused::invalid("tools: Input should be a valid list"))?;
    tools
        .iter()
        .enumerate()
        .map(|(index, tool)| {
            let name = tool["name"]
                .as_str()
                .ok_or_else(|| Refused::invalid(format!("tools.{index}.name: Field required")))?;
            if !tool["input_schema"].is_object() {
                return Err(Refused::invalid(format!(
                    "tools.{index}.input_schema: Field required"
                )));
            }
            Ok(name.to_owned())
        })
        .collect()
}

fn check_thinking(thinking: Option<&Value>, max_tokens: u32) -> Result<(), Refused> {
    let Some(thinking) = thinking else {
        return Ok(());
    };
    if thinking["type"] != "enabled" {
        return Ok(());
    }
    let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
    if budget < 1024 {
        return Err(Refused::invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ));
    }
    if budget >= u64::from(max_tokens) {
        return Err(Refused::invalid(
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ));
    }
    Ok(())
}

/// The tool `tool_choice` makes the model call: the named one, or the
/// first for `any`.
fn forced_tool(choice: Option<&Value>, tools: &[String]) -> Option<String> {
    let choice = choice?;
    match choice["type"].as_str()? {
        "tool" => choice["name"].as_str().map(str::to_owned),
        "any" => tools.first().cloned(),
        _ => None,
    }
}
