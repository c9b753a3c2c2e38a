//! The adapter for Anthropic's Messages API: `POST {base_url}/v1/messages`
//! with the account's key as `x-api-key` (or, for a Rovo Dev account whose
//! endpoint speaks Messages, its email and token as HTTP Basic) and the API
//! version as `anthropic-version`. Chat Completions requests are translated to
//! Messages ([`request`]), and the answers back ([`response`], [`stream`]);
//! usage is converted to the gateway's convention ([`usage`]).
//!
//! Error statuses map like every provider's ([`crate::errors`]): its error
//! body (`{"type":"error","error":{"type","message"}}`) is read for the
//! context-length and content-policy cases, a 529 (`overloaded_error`, also
//! as a stream's `error` event) is the overloaded class another account may
//! take, and a 429 keeps its `retry-after`.

mod answer;
mod request;
mod response;
mod stream;
mod to_chat;
mod usage;

#[cfg(test)]
mod round_trip;

use bytes::Bytes;
use http::{HeaderName, Request};
use tollgate_core::GatewayError;

use crate::call::{EventStream, ProviderRequest, Reply};
use crate::client::HttpClient;
use crate::credential::Auth;
use crate::exchange::Accept;
use crate::{errors, exchange};

pub use answer::{MessagesStreamWriter, messages_response};
pub use to_chat::chat_request as chat_request_from_messages;

/// The Messages API version every call names.
pub const API_VERSION: &str = "2023-06-01";

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

#[derive(Debug, Clone)]
pub struct AnthropicAdapter {
    client: HttpClient,
    max_body_bytes: usize,
}

impl AnthropicAdapter {
    pub fn new(client: HttpClient, max_body_bytes: usize) -> Self {
        Self {
            client,
            max_body_bytes,
        }
    }

    pub async fn call(
        &self,
        base_url: &str,
        auth: Auth,
        request: &ProviderRequest,
    ) -> Result<Reply, GatewayError> {
        let translated = request::from_chat(
            &request.body,
            &request.upstream_model,
            false,
            request.completion_cap,
        )?;
        let post = post(base_url, auth, request, translated.body, false)?;
        let body = exchange::fetch(
            &self.client,
            post,
            request.timeout,
            self.max_body_bytes,
            errors::from_response,
        )
        .await?;
        let (body, usage) = response::to_chat(&body, translated.json_response)?;
        Ok(Reply { body, usage })
    }

    pub async fn call_stream(
        &self,
        base_url: &str,
        auth: Auth,
        request: &ProviderRequest,
    ) -> Result<EventStream, GatewayError> {
        let translated = request::from_chat(
            &request.body,
            &request.upstream_model,
            true,
            request.completion_cap,
        )?;
        let post = post(base_url, auth, request, translated.body, true)?;
        let body =
            exchange::open_stream(&self.client, post, request.timeout, errors::from_response)
                .await?;
        Ok(stream::events(
            body,
            request.timeout,
            translated.json_response,
        ))
    }
}

/// The Messages URL of a base URL given with or without its `/v1`.
fn messages_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

fn post(
    base_url: &str,
    auth: Auth,
    request: &ProviderRequest,
    body: Bytes,
    stream: bool,
) -> Result<Request<Bytes>, GatewayError> {
    let accept = Accept::streamed(stream, Accept::EventStream);
    let post = exchange::json_post(&messages_url(base_url), accept, auth, request)?
        .header(ANTHROPIC_VERSION, API_VERSION);
    exchange::with_body(post, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_url_takes_a_base_with_or_without_v1() {
        assert_eq!(
            messages_url("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(messages_url("http://h:1/v1/"), "http://h:1/v1/messages");
    }
}
