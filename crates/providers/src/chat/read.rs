//! Reading Chat Completions answers on the way back to clients that speak
//! another API: a whole `chat.completion` or one `chat.completion.chunk`
//! (the same shape, `delta` in place of `message`), loosely, and the trait
//! of the writers that turn a Chat stream into another API's events.

use bytes::Bytes;
use serde::Deserialize;
use tollgate_core::GatewayError;

/// A Chat answer or chunk, as far as translations read it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnswerView {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub choices: Vec<ChoiceView>,
    #[serde(default)]
    pub usage: Option<UsageView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChoiceView {
    #[serde(default, alias = "delta")]
    pub message: Option<MessageView>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessageView {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCallView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ToolCallView {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: FunctionView,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FunctionView {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// OpenAI's `usage` object, as far as translations read it.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct UsageView {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetailsView>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetailsView>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct PromptDetailsView {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct CompletionDetailsView {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl UsageView {
    pub fn cached(&self) -> u64 {
        self.prompt_tokens_details
            .map_or(0, |details| details.cached_tokens)
    }

    pub fn reasoning(&self) -> u64 {
        self.completion_tokens_details
            .map_or(0, |details| details.reasoning_tokens)
    }
}

/// Writes a Chat Completions stream as another API's events, chunk by
/// chunk.
pub trait StreamTranslator: Send + 'static {
    /// The events for one `chat.completion.chunk` (empty for one that
    /// carries nothing the other API shows).
    fn chunk(&mut self, data: &[u8]) -> Result<Bytes, GatewayError>;
    /// Takes the usage of the stream's usage chunk.
    fn usage(&mut self, data: &[u8]);
    /// The events that end a complete stream.
    fn finish(&mut self) -> Bytes;
    /// The event that ends a failed stream.
    fn error_event(&self, error: &GatewayError) -> Bytes;
}
