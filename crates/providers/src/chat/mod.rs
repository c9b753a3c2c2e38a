//! OpenAI Chat Completions as typed values: the format every request
//! arrives in today, and the one every translation starts from and returns
//! to. [`ChatRequest`] reads a client's request for adapters that speak
//! another format; [`Completion`] and [`Chunk`] write their answers back.
//!
//! Only translations use these types: a request bound for an upstream that
//! speaks Chat Completions itself passes through as bytes.

#[cfg(test)]
pub(crate) mod arbitrary;
mod read;
mod request;
mod response;

pub use read::StreamTranslator;
pub(crate) use read::{AnswerView, UsageView};
pub(crate) use request::{
    ChatRequest, Content, ImageSource, ImageUrl, Message, Part, ResponseFormat, Stop, Tool,
    ToolChoice, uncarried,
};
pub(crate) use response::{
    AssistantMessage, Choice, Chunk, ChunkChoice, Completion, Delta, FunctionCallDelta, ToolCall,
    ToolCallDelta, UsageJson, now_secs,
};
