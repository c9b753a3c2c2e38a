//! The adapter for Ollama's native API: `POST {base_url}/api/chat`, answers
//! whole or as NDJSON streams. Ollama takes no credential of its own; an
//! account's key, when it has one (Ollama behind an authenticating proxy),
//! goes as `Authorization: Bearer`. Errors are `{"error": "text"}` with an
//! HTTP status, read like every provider's.

mod request;
mod response;

use bytes::Bytes;
use http::Request;
use tollgate_core::GatewayError;

use crate::call::{EventStream, ProviderRequest, Reply};
use crate::client::HttpClient;
use crate::credential::Auth;
use crate::exchange::Accept;
use crate::{errors, exchange};

#[derive(Debug, Clone)]
pub struct OllamaAdapter {
    client: HttpClient,
    max_body_bytes: usize,
}

impl OllamaAdapter {
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
        let body = request::from_chat(
            &request.body,
            &request.upstream_model,
            false,
            request.completion_cap,
        )?;
        let post = post(base_url, request, body, false)?;
        let body = exchange::fetch(
            &self.client,
            post,
            request.timeout,
            self.max_body_bytes,
            errors::from_response,
        )
        .await?;
        let (body, usage) = response::to_chat(&body, &request.body)?;
        Ok(Reply { body, usage })
    }

    pub async fn call_stream(
        &self,
        base_url: &str,
        request: &ProviderRequest,
    ) -> Result<EventStream, GatewayError> {
        let body = request::from_chat(
            &request.body,
            &request.upstream_model,
            true,
            request.completion_cap,
        )?;
        let post = post(base_url, request, body, true)?;
        let body =
            exchange::open_stream(&self.client, post, request.timeout, errors::from_response)
                .await?;
        Ok(response::events(
            body,
            request.timeout,
            request.body.clone(),
        ))
    }
}

fn post(
    base_url: &str,
    request: &ProviderRequest,
    body: Bytes,
    stream: bool,
) -> Result<Request<Bytes>, GatewayError> {
    let url = format!("{}/api/chat", base_url.trim_end_matches('/'));
    let accept = Accept::streamed(stream, Accept::Ndjson);
    let post = exchange::json_post(&url, accept, Auth::Bearer, request)?;
    exchange::with_body(post, body)
}
