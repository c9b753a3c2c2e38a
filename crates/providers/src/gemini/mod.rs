//! The adapter for Gemini's native API: `POST
//! {base_url}/v1beta/models/{model}:generateContent` (and
//! `:streamGenerateContent?alt=sse`) with the account's key as
//! `x-goog-api-key`. Chat Completions requests are translated ([`request`])
//! and the answers back ([`response`], [`stream`]); usage is converted
//! ([`usage`]) and Google's error details read ([`error`]).
//!
//! Gemini gives function calls no ids, so the gateway makes them: unique
//! per answer and call, and carrying the call's thought signature (which
//! Gemini wants back with the call in the next turn) after
//! [`SIGNATURE_MARK`].

mod error;
mod request;
mod response;
mod stream;
mod usage;

#[cfg(test)]
mod round_trip;

use bytes::Bytes;
use http::Request;
use tollgate_core::GatewayError;

use crate::call::{EventStream, ProviderRequest, Reply};
use crate::chat::now_secs;
use crate::client::HttpClient;
use crate::credential::Auth;
use crate::exchange;
use crate::exchange::Accept;

/// Separates a made-up tool call id from the thought signature it carries.
pub const SIGNATURE_MARK: &str = "__thought__";

#[derive(Debug, Clone)]
pub struct GeminiAdapter {
    client: HttpClient,
    max_body_bytes: usize,
}

impl GeminiAdapter {
    pub fn new(client: HttpClient, max_body_bytes: usize) -> Self {
        Self {
            client,
            max_body_bytes,
        }
    }

    pub async fn call(
        &self,
        base_url: &str,
        request: &ProviderRequest,
    ) -> Result<Reply, GatewayError> {
        let body = request::from_chat(&request.body, request.completion_cap)?;
        let post = post(base_url, request, body, false)?;
        let body = exchange::fetch(
            &self.client,
            post,
            request.timeout,
            self.max_body_bytes,
            error::from_response,
        )
        .await?;
        let (body, usage) = response::to_chat(&body, now_secs())?;
        Ok(Reply { body, usage })
    }

    pub async fn call_stream(
        &self,
        base_url: &str,
        request: &ProviderRequest,
    ) -> Result<EventStream, GatewayError> {
        let body = request::from_chat(&request.body, request.completion_cap)?;
        let post = post(base_url, request, body, true)?;
        let body = exchange::open_stream(&self.client, post, request.timeout, error::from_response)
            .await?;
        Ok(stream::events(body, request.timeout, now_secs()))
    }
}

/// The URL of `model`'s method. The base URL may name the API version
/// (`…/v1beta`, `…/v1`) or not (`v1beta` then); a `models/` prefix on the
/// model is taken off.
fn method_url(base_url: &str, model: &str, stream: bool) -> String {
    let base = base_url.trim_end_matches('/');
    let versioned = base.ends_with("/v1beta") || base.ends_with("/v1");
    let model = model.strip_prefix("models/").unwrap_or(model);
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    if versioned {
        format!("{base}/models/{model}:{method}")
    } else {
        format!("{base}/v1beta/models/{model}:{method}")
    }
}

fn post(
    base_url: &str,
    request: &ProviderRequest,
    body: Bytes,
    stream: bool,
) -> Result<Request<Bytes>, GatewayError> {
    let url = method_url(base_url, &request.upstream_model, stream);
    let accept = Accept::streamed(stream, Accept::EventStream);
    let post = exchange::json_post(&url, accept, Auth::GoogApiKey, request)?;
    exchange::with_body(post, body)
}

/// The id of the `call`-th function call of an answer (`answer` unique to
/// it), carrying the call's thought signature if it has one.
pub(crate) fn tool_call_id(answer: &str, call: usize, signature: Option<&str>) -> String {
    match signature {
        Some(signature) => format!("call_{answer}_{call}{SIGNATURE_MARK}{signature}"),
        None => format!("call_{answer}_{call}"),
    }
}

/// A tool call id and the thought signature it carries, if any.
pub(crate) fn split_tool_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(SIGNATURE_MARK) {
        Some((id, signature)) => (id, Some(signature)),
        None => (id, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_urls_take_a_versioned_or_bare_base() {
        assert_eq!(
            method_url(
                "https://generativelanguage.googleapis.com",
                "gemini-2.5-flash",
                false
            ),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            method_url("http://h:1/v1beta/", "models/g", true),
            "http://h:1/v1beta/models/g:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn tool_call_ids_carry_thought_signatures() {
        let id = tool_call_id("r1_0", 2, Some("c2lnbmF0dXJl"));
        assert_eq!(
            split_tool_call_id(&id),
            ("call_r1_0_2", Some("c2lnbmF0dXJl"))
        );
        assert_eq!(split_tool_call_id("call_x"), ("call_x", None));
    }
}
