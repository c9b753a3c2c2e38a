//! Chat Completions answers written by adapters that translate: the
//! complete `chat.completion` and the streamed `chat.completion.chunk`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_core::GatewayError;

use crate::usage::Usage;

/// The `created` time of a translated answer: now, in Unix seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A complete answer: `chat.completion`.
#[derive(Debug, Serialize)]
pub(crate) struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: UsageJson,
}

impl Completion {
    pub fn new(
        id: String,
        created: u64,
        model: String,
        choices: Vec<Choice>,
        usage: Usage,
    ) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices,
            usage: UsageJson::from(usage),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<&'static str>,
    pub logprobs: Option<()>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct AssistantMessage {
    pub role: &'static str,
    pub content: Option<String>,
    /// The model's visible reasoning (Anthropic's thinking blocks), in the
    /// field DeepSeek and most gateways use for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    pub refusal: Option<String>,
}

/// A function call of the assistant: in an answer, and in the history a
/// request carries.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".to_owned()
}

impl ToolCall {
    /// The arguments as a JSON value (`{}` when there are none); text that
    /// is not JSON is the client's 400, naming the field `at` gives.
    pub fn arguments_value(&self, at: impl FnOnce() -> String) -> Result<Value, GatewayError> {
        let arguments = self.function.arguments.trim();
        if arguments.is_empty() {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_str(arguments)
            .map_err(|_| GatewayError::invalid(at(), "tool call arguments must be a JSON object"))
    }

    pub fn function(id: String, name: String, arguments: String) -> Self {
        Self {
            id,
            kind: function_kind(),
            function: FunctionCall { name, arguments },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text, as OpenAI sends them.
    #[serde(default)]
    pub arguments: String,
}

/// One piece of a streamed answer: `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub(crate) struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageJson>,
}

impl<'a> Chunk<'a> {
    /// A chunk of one choice.
    pub fn of(id: &'a str, created: u64, model: &'a str, choice: ChunkChoice) -> Self {
        Self::of_choices(id, created, model, vec![choice])
    }

    /// A chunk of several choices (one per candidate answer).
    pub fn of_choices(
        id: &'a str,
        created: u64,
        model: &'a str,
        choices: Vec<ChunkChoice>,
    ) -> Self {
        Self {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            choices,
            usage: None,
        }
    }

    /// The last chunk of a stream: no choices, the usage.
    pub fn usage(id: &'a str, created: u64, model: &'a str, usage: Usage) -> Self {
        Self {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            choices: Vec::new(),
            usage: Some(UsageJson::from(usage)),
        }
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionCallDelta,
}

#[derive(Debug, Serialize)]
pub(crate) struct FunctionCallDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

/// OpenAI's `usage` object, from the gateway's [`Usage`].
#[derive(Debug, Serialize)]
pub(crate) struct UsageJson {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

#[derive(Debug, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct CompletionTokensDetails {
    pub reasoning_tokens: u32,
}

impl From<Usage> for UsageJson {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt,
            completion_tokens: usage.completion,
            total_tokens: usage.total(),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: usage.cached,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: usage.reasoning,
            },
        }
    }
}
