//! OpenAI's Responses API, for clients that speak it (Codex CLI, the
//! Agents SDK), carried over Chat Completions: requests are translated to
//! Chat ([`to_chat`]) and Chat answers back ([`answer`]), whole and
//! streamed, so every provider behind the gateway can answer them.
//!
//! Responses kept by the provider between calls (`previous_response_id`,
//! `store: true` as state) are not carried: a request that refers to an
//! earlier response is refused with a 400 saying so.

mod answer;
mod to_chat;

pub use answer::{ResponsesStreamWriter, response_object};
pub use to_chat::chat_request_from_responses;
