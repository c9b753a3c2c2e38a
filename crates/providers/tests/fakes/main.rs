//! Provider adapters against local fakes that speak each provider's
//! documented wire format: Azure OpenAI, OpenRouter, and the quirks of
//! OpenAI-compatible presets.

// clippy.toml lets #[test] functions unwrap; this binary's helpers do too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod azure;
mod openrouter;
mod presets;
mod server;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use tollgate_core::GatewayError;
use tollgate_providers::{EventStream, ProviderRequest, Providers, ProvidersConfig, StreamEvent};

fn providers() -> Providers {
    Providers::new(ProvidersConfig::default()).unwrap()
}

/// An `openai` request to `base_url` with one user message.
fn request(base_url: &str, content: &str) -> ProviderRequest {
    ProviderRequest {
        provider: "openai".into(),
        base_url: base_url.into(),
        credential: String::new(),
        email: String::new(),
        upstream_model: "gpt-upstream".into(),
        body: Bytes::from(
            json!({"model": "alias", "messages": [{"role": "user", "content": content}]})
                .to_string(),
        ),
        timeout: Duration::from_secs(5),
        completion_cap: None,
        settings: String::new(),
    }
}

async fn collect(stream: EventStream) -> Vec<Result<StreamEvent, GatewayError>> {
    stream.collect().await
}
