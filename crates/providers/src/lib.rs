//! Provider adapters: Anthropic's Messages API, Gemini's and Ollama's
//! native APIs, OpenAI-compatible HTTP upstreams (OpenAI, Azure OpenAI,
//! OpenRouter, presets of OpenAI-compatible servers, ...) and the built-in
//! mock.
//!
//! [`Providers`] holds one pooled HTTP client shared by every adapter and
//! dispatches an [`ProviderRequest`] by provider name. Answers come back as
//! a [`Reply`] (body and normalised [`Usage`]) or an [`EventStream`]; every
//! failure is a [`tollgate_core::GatewayError`] that is safe to show a client.

mod anthropic;
mod azure;
mod call;
mod chat;
pub mod client;
mod credential;
pub mod errors;
mod event_stream;
mod exchange;
mod gemini;
pub mod mock;
mod ndjson;
mod ollama;
mod openai;
mod openrouter;
mod providers;
mod responses;
mod retry_after;
pub mod sse;
mod usage;

pub use anthropic::{
    AnthropicAdapter, MessagesStreamWriter, chat_request_from_messages, messages_response,
};
pub use call::{EventStream, ProviderRequest, Reply, StreamEvent};
pub use chat::StreamTranslator;
pub use gemini::GeminiAdapter;
pub use ollama::OllamaAdapter;
pub use openai::OpenAiAdapter;
pub use providers::{ClientBuildError, Providers, ProvidersConfig};
pub use responses::{ResponsesStreamWriter, chat_request_from_responses, response_object};
pub use usage::Usage;
