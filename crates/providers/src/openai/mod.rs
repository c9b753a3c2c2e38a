//! The adapter for every upstream that speaks OpenAI Chat Completions:
//! OpenAI, OpenRouter, Ollama, Gemini's OpenAI-compatible endpoint, Rovo
//! Dev, any `openai_compatible` server, and Azure OpenAI (whose URLs and
//! header [`crate::azure`] works out). `POST {base_url}/chat/completions`
//! with the account's credential as `Authorization: Bearer` (or as [`Auth`]
//! says otherwise).

mod body;
mod chunk;
mod stream;

use std::borrow::Cow;

use bytes::Bytes;
use http::Request;
use http::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use tollgate_core::GatewayError;

use crate::call::{EventStream, ProviderRequest, Reply};
use crate::client::HttpClient;
use crate::credential::Auth;
use crate::exchange::Accept;
use crate::usage::{Usage, WireUsage};
use crate::{errors, exchange};

pub use body::CapField;
use body::Mode;

/// Where and how one call goes.
#[derive(Debug, Clone)]
pub struct Upstream<'a> {
    /// The chat completions URL.
    pub url: String,
    pub auth: Auth,
    /// Where the upstream reads a completion cap.
    pub cap_field: CapField,
    /// Whether it takes `stream_options.include_usage`; when not, streams
    /// are sent without `stream_options`.
    pub stream_usage_option: bool,
    /// The model written into the body: the lease's upstream model, or
    /// what stands for it upstream (an Azure deployment).
    pub model: Cow<'a, str>,
    /// Headers sent besides the credential (OpenRouter's attribution).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl<'a> Upstream<'a> {
    /// `POST {base_url}/chat/completions` with `auth`, asking streams for
    /// their usage, for the lease's upstream model.
    pub fn at(base_url: &str, auth: Auth, cap_field: CapField, model: &'a str) -> Self {
        Self {
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            auth,
            cap_field,
            stream_usage_option: true,
            model: Cow::Borrowed(model),
            headers: Vec::new(),
        }
    }

    fn stream_mode(&self) -> Mode {
        if self.stream_usage_option {
            Mode::StreamWithUsage
        } else {
            Mode::Stream
        }
    }

    fn cap(&self, request: &ProviderRequest) -> Option<body::Cap> {
        request.completion_cap.map(|tokens| body::Cap {
            tokens,
            field: self.cap_field,
        })
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiAdapter {
    client: HttpClient,
    max_body_bytes: usize,
}

impl OpenAiAdapter {
    pub fn new(client: HttpClient, max_body_bytes: usize) -> Self {
        Self {
            client,
            max_body_bytes,
        }
    }

    pub async fn call(
        &self,
        upstream: &Upstream<'_>,
        request: &ProviderRequest,
    ) -> Result<Reply, GatewayError> {
        let body = body::prepare(
            &request.body,
            &upstream.model,
            Mode::Plain,
            upstream.cap(request),
        )?;
        let post = self.post(upstream, request, body, false)?;
        let body = exchange::fetch(
            &self.client,
            post,
            request.timeout,
            self.max_body_bytes,
            errors::from_response,
        )
        .await?;
        let usage = reply_usage(&body, &request.body)?;
        Ok(Reply { body, usage })
    }

    /// Sends the request and waits (at most `request.timeout`) for the
    /// response head; a failure status is the error, and a success gives
    /// the stream of events.
    pub async fn call_stream(
        &self,
        upstream: &Upstream<'_>,
        request: &ProviderRequest,
    ) -> Result<EventStream, GatewayError> {
        let body = body::prepare(
            &request.body,
            &upstream.model,
            upstream.stream_mode(),
            upstream.cap(request),
        )?;
        let post = self.post(upstream, request, body, true)?;
        let body =
            exchange::open_stream(&self.client, post, request.timeout, errors::from_response)
                .await?;
        Ok(stream::events(body, request.timeout, request.body.clone()))
    }

    fn post(
        &self,
        upstream: &Upstream<'_>,
        request: &ProviderRequest,
        body: Bytes,
        stream: bool,
    ) -> Result<Request<Bytes>, GatewayError> {
        let accept = Accept::streamed(stream, Accept::EventStream);
        let mut post = exchange::json_post(&upstream.url, accept, upstream.auth, request)?;
        for (name, value) in &upstream.headers {
            post = post.header(name, value);
        }
        exchange::with_body(post, body)
    }
}

#[derive(Deserialize)]
struct ReplyProbe {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The usage of a `chat.completion` body, estimated when it has none (or
/// none that can be read). A body that is not JSON is an unreadable answer.
fn reply_usage(body: &[u8], request_body: &[u8]) -> Result<Usage, GatewayError> {
    if let Ok(ReplyProbe { usage: Some(usage) }) = serde_json::from_slice(body) {
        return Ok(usage.into());
    }
    let reply: Value = serde_json::from_slice(body).map_err(|_| errors::unreadable())?;
    let completion_bytes = reply
        .get("choices")
        .and_then(Value::as_array)
        .map_or(0, |choices| {
            choices
                .iter()
                .filter_map(|choice| choice.pointer("/message/content").and_then(Value::as_str))
                .map(str::len)
                .sum()
        });
    Ok(Usage::estimate(request_body, completion_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::ErrorKind;

    #[test]
    fn reply_usage_reads_or_estimates() {
        let request = br#"{"messages":[{"role":"user","content":"abcd"}]}"#;
        let usage = reply_usage(
            br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            request,
        )
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt: 7,
                completion: 3,
                cached: 0,
                ..Usage::default()
            }
        );
        let usage = reply_usage(
            br#"{"choices":[{"message":{"content":"abcdefgh"}}],"usage":null}"#,
            request,
        )
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt: 8,
                completion: 2,
                cached: 0,
                ..Usage::default()
            }
        );
        let usage = reply_usage(
            br#"{"choices":[{"message":{"content":"abcd"}}],"usage":"n/a"}"#,
            request,
        )
        .unwrap();
        assert_eq!(usage.completion, 1);
        let error = reply_usage(b"<html>", request).unwrap_err();
        assert_eq!(error.kind, ErrorKind::UpstreamError);
    }
}
