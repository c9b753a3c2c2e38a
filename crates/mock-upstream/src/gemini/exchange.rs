//! One `generateContent` request to the fake Gemini API: checked as the
//! Gemini API checks it, and answered deterministically.
//!
//! - **Checks** (each a 400 `INVALID_ARGUMENT` worded like Google's):
//!   no unknown field at the top, in `generationConfig` or in a part;
//!   `contents` present; roles `user` or `model`; each part holds exactly
//!   one kind of data; a turn of function responses follows a turn of as
//!   many function calls, by name; a function declaration has not both
//!   `parameters` and `parametersJsonSchema`; for `gemini-3` models, the
//!   function calls sent back carry their thought signatures.
//! - **Reply**: the last user turn's text (its function responses, when it
//!   has no text: a `{"content": text}` response as its text), without
//!   `[[mock:…]]` directives; a call of a function instead when
//!   `toolConfig` says `ANY` or the `tool_call=true` directive asks (args:
//!   the reply when it is a JSON object, else `{"text": reply}`), with a
//!   thought signature. `candidateCount` candidates, all alike.
//! - **Usage**: a prompt of 3 + per turn 4 + ceil(text bytes / 4), plus
//!   ceil(bytes / 4) of the system instruction and of the tools' JSON;
//!   `cachedContentTokenCount` from `cached_tokens`; candidates max(1,
//!   ceil(reply bytes / 4)) or `completion_tokens`, held to
//!   `maxOutputTokens` (then `MAX_TOKENS`); of them, `reasoning_tokens`
//!   (at most all) are reported as `thoughtsTokenCount` and the rest as
//!   `candidatesTokenCount`, as Gemini counts thinking apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tollgate_providers::mock::{Directives, MockBehavior, Refusal};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

const FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
];

const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "mediaResolution",
];

/// The fields of a part that hold its data; one per part.
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

const PART_FIELDS: &[&str] = &["thought", "thoughtSignature", "videoMetadata"];

/// The signature the fake gives its function calls.
pub(crate) const SIGNATURE: &str = "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ==";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Text(String),
    Call { name: String, args: Value },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GeminiExchange {
    pub id: String,
    pub model: String,
    pub answer: Answer,
    pub candidates: u32,
    pub finish_reason: &'static str,
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    pub candidate_tokens: u32,
    pub thoughts_tokens: u32,
    pub blocked: bool,
    pub directives: Directives,
    pub latency: Duration,
    pub chunk_delay: Duration,
    pub chunks: u32,
    pub cut_after: Option<u32>,
}

/// A refusal in Google's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub status: u16,
    pub message: String,
    /// `ErrorInfo.reason`, when Google gives one.
    pub reason: Option<&'static str>,
    /// `RetryInfo.retryDelay` in seconds.
    pub retry_delay: Option<u64>,
}

impl Refused {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            reason: None,
            retry_delay: None,
        }
    }

    pub fn status(status: u16, retry_delay: Option<u64>) -> Self {
        let message = match status {
            403 => "The caller does not have permission",
            404 => {
                "models/unknown is not found for API version v1beta, or is not supported for generateContent."
            }
            429 => "Resource has been exhausted (e.g. check quota).",
            503 => "The model is overloaded. Please try again later.",
            504 => "Deadline expired before operation could complete.",
            _ => "Internal error encountered.",
        };
        Self {
            status,
            message: message.to_owned(),
            reason: None,
            retry_delay: (status == 429).then_some(retry_delay).flatten(),
        }
    }
}

fn unknown_name(name: &str, at: &str) -> Refused {
    let place = if at.is_empty() {
        String::new()
    } else {
        format!(" at '{at}'")
    };
    Refused::invalid(format!(
        "Invalid JSON payload received. Unknown name \"{name}\"{place}: Cannot find field."
    ))
}

impl GeminiExchange {
    pub fn parse(
        model: &str,
        body: &[u8],
        behavior: &MockBehavior,
        defaults: Directives,
    ) -> Result<Self, Refused> {
        let request: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|_| Refused::invalid("Invalid JSON payload received. Unexpected token."))?;
        if let Some(extra) = request.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(unknown_name(extra, ""));
        }
        let config = request
            .get("generationConfig")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(extra) = config
            .keys()
            .find(|key| !GENERATION_FIELDS.contains(&key.as_str()))
        {
            return Err(unknown_name(extra, "generation_config"));
        }
        let contents = match request.get("contents").and_then(Value::as_array) {
            Some(contents) if !contents.is_empty() => contents,
            _ => {
                return Err(Refused::invalid(
                    "* GenerateContentRequest.contents: contents is not specified",
                ));
            }
        };
        check_contents(contents, model.starts_with("gemini-3"))?;
        let declarations = check_tools(request.get("tools"))?;

        let user_text = last_user_text(contents);
        let (directives, reply) = Directives::extract(&user_text);
        let directives = directives.or(defaults);
        let mut reply = reply.into_owned();

        let calling = request
            .get("toolConfig")
            .and_then(|config| config.get("functionCallingConfig"));
        let mode = calling.and_then(|config| config["mode"].as_str());
        let allowed = calling
            .and_then(|config| config.pointer("/allowedFunctionNames/0"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let call = if mode == Some("NONE") {
            None
        } else if mode == Some("ANY") {
            allowed.or_else(|| declarations.first().cloned())
        } else if directives.tool_call == Some(true) {
            declarations.first().cloned()
        } else {
            None
        };

        let system = request
            .get("systemInstruction")
            .map(|system| text_of(&system["parts"]))
            .unwrap_or_default();
        let mut prompt = 3 + tokens(&system);
        prompt += request
            .get("tools")
            .map_or(0, |tools| tokens(&tools.to_string()));
        for content in contents {
            prompt += 4 + tokens(&text_of(&content["parts"]));
        }
        let mut candidate_tokens = directives
            .completion_tokens
            .or(behavior.completion_tokens)
            .unwrap_or_else(|| tokens(&reply).max(1));
        let mut finish_reason = "STOP";
        if let Some(cap) = config.get("maxOutputTokens").and_then(Value::as_u64) {
            let cap = u32::try_from(cap).unwrap_or(u32::MAX);
            if candidate_tokens > cap {
                candidate_tokens = cap;
                finish_reason = "MAX_TOKENS";
                let mut end = (cap as usize).saturating_mul(4).min(reply.len());
                while !reply.is_char_boundary(end) {
                    end -= 1;
                }
                reply.truncate(end);
            }
        }
        let thoughts_tokens = directives
            .reasoning_tokens
            .unwrap_or(0)
            .min(candidate_tokens);
        let answer = match call {
            Some(name) => Answer::Call {
                name,
                args: match serde_json::from_str::<Value>(&reply) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "text": reply }),
                },
            },
            None => Answer::Text(reply),
        };
        let millis = |ms: Option<u64>, default: Duration| ms.map_or(default, Duration::from_millis);
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            id: format!("mockresp{sequence:012x}"),
            model: model.to_owned(),
            answer,
            candidates: config
                .get("candidateCount")
                .and_then(Value::as_u64)
                .map_or(1, |count| u32::try_from(count.clamp(1, 8)).unwrap_or(1)),
            finish_reason,
            prompt_tokens: prompt,
            cached_tokens: directives.cached_tokens.unwrap_or(0).min(prompt),
            candidate_tokens: candidate_tokens - thoughts_tokens,
            thoughts_tokens,
            blocked: directives.error == Some(Refusal::ContentPolicyViolation),
            directives,
            latency: millis(directives.latency_ms, behavior.latency),
            chunk_delay: millis(directives.chunk_delay_ms, behavior.chunk_delay),
            chunks: directives.chunks.unwrap_or(behavior.chunks).max(1),
            cut_after: directives.cut_after.or(behavior.cut_after),
        })
    }

    pub fn requested_failure(&self) -> Option<Refused> {
        if self.directives.error == Some(Refusal::ContextLengthExceeded) {
            return Some(Refused::invalid(format!(
                "The input token count ({}) exceeds the maximum number of tokens allowed (1048576).",
                1_048_576 + self.prompt_tokens
            )));
        }
        let overloaded = (self.directives.overloaded == Some(true)).then_some(503);
        let status = overloaded.or(self.directives.status.filter(|status| *status >= 400))?;
        Some(Refused::status(status, self.directives.retry_after))
    }
}

fn tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// The text of a list of parts: text, function responses (a `content`
/// string as it is) and function calls' arguments.
fn text_of(parts: &Value) -> String {
    let Some(parts) = parts.as_array() else {
        return String::new();
    };
    parts
        .iter()
        .filter_map(|part| {
            if let Some(text) = part["text"].as_str() {
                return Some(text.to_owned());
            }
            if let Some(response) = part.get("functionResponse") {
                return Some(match response["response"]["content"].as_str() {
                    Some(text) => text.to_owned(),
                    None => response["response"].to_string(),
                });
            }
            part.get("functionCall")
                .map(|call| call["args"].to_string())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn last_user_text(contents: &[Value]) -> String {
    let Some(content) = contents
        .iter()
        .rev()
        .find(|content| content["role"] == "user")
    else {
        return String::new();
    };
    let texts: Vec<Value> = content["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter(|part| part.get("text").is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let text = text_of(&Value::Array(texts));
    if text.is_empty() {
        text_of(&content["parts"])
    } else {
        text
    }
}

fn check_contents(contents: &[Value], wants_signatures: bool) -> Result<(), Refused> {
    let mut previous_calls: Vec<String> = Vec::new();
    for (index, content) in contents.iter().enumerate() {
        let role = content["role"].as_str().unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(Refused::invalid("Please use a valid role: user, model."));
        }
        let parts = content["parts"].as_array().ok_or_else(|| {
            Refused::invalid(format!("* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty."))
        })?;
        let mut calls = Vec::new();
        let mut responses = Vec::new();
        for part in parts {
            let Some(part) = part.as_object() else {
                return Err(Refused::invalid(
                    "Invalid JSON payload received. Expected an object for a part.",
                ));
            };
            if let Some(extra) = part.keys().find(|key| {
                !PART_DATA.contains(&key.as_str()) && !PART_FIELDS.contains(&key.as_str())
            }) {
                return Err(unknown_name(extra, &format!("contents[{index}].parts[0]")));
            }
            let data = part
                .keys()
                .filter(|key| PART_DATA.contains(&key.as_str()))
                .count();
            if data != 1 {
                return Err(Refused::invalid(format!(
                    "* GenerateContentRequest.contents[{index}].parts: a part must hold exactly one of text, inline data, file data, function call or function response"
                )));
            }
            if let Some(call) = part.get("functionCall") {
                if wants_signatures && !part.contains_key("thoughtSignature") {
                    return Err(Refused::invalid(format!(
                        "Function call is missing a thought_signature in functionCall parts. Position: contents[{index}]"
                    )));
                }
                calls.push(call["name"].as_str().unwrap_or_default().to_owned());
            }
            if let Some(response) = part.get("functionResponse") {
                responses.push(response["name"].as_str().unwrap_or_default().to_owned());
            }
        }
        if !responses.is_empty() {
            let mut expected = previous_calls.clone();
            let mut got = responses.clone();
            expected.sort();
            got.sort();
            if expected != got {
                return Err(Refused::invalid(
                    "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
                ));
            }
        }
        previous_calls = calls;
    }
    Ok(())
}

/// The declared functions' names, each declaration checked.
fn check_tools(tools: Option<&Value>) -> Result<Vec<String>, Refused> {
    let Some(tools) = tools.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for tool in tools {
        for declaration in tool["functionDeclarations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = declaration["name"].as_str().ok_or_else(|| {
                Refused::invalid("* GenerateContentRequest.tools[0].function_declarations[0].name: Name cannot be empty.")
            })?;
            if declaration.get("parameters").is_some()
                && declaration.get("parametersJsonSchema").is_some()
            {
                return Err(Refused::invalid(
                    "parameters and parameters_json_schema cannot both be set",
                ));
            }
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
