//! Provider adapters: OpenAI-compatible HTTP upstreams (OpenAI, Azure
//! OpenAI, OpenRouter, presets of OpenAI-compatible servers, ...) and the
//! built-in mock.
//!
//! [`Providers`] holds one pooled HTTP client shared by every adapter and
//! dispatches an [`ProviderRequest`] by provider name. Answers come back as
//! a [`Reply`] (body and normalised [`Usage`]) or an [`EventStream`]; every
//! failure is a [`tollgate_core::GatewayError`] that is safe to show a client.

mod azure;
mod call;
pub mod client;
pub mod errors;
pub mod mock;
mod openai;
mod openrouter;
mod providers;
mod retry_after;
pub mod sse;
mod usage;

pub use call::{EventStream, ProviderRequest, Reply, StreamEvent};
pub use openai::OpenAiAdapter;
pub use providers::{ClientBuildError, Providers, ProvidersConfig};
pub use usage::Usage;
