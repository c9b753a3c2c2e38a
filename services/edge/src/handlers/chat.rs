//! `POST /v1/chat/completions`: the OpenAI Chat Completions endpoint, and
//! the path every chat-shaped API shares ([`handle`]): Anthropic's Messages
//! (`handlers::messages`) and OpenAI's Responses (`handlers::responses`)
//! are translated to Chat on the way in and back on the way out.
//!
//! Who is calling is settled before the body is read, so a client without a
//! valid key cannot make the edge read and parse a large body: key shape,
//! then the key itself (cache or quota); then body size, JSON, fields; then
//! the key's model and profile grants; then the router answers, whole or
//! streamed.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;
use tollgate_core::{ErrorKind, GatewayError, clock, tokens};
use tollgate_proto::GatewayErrorExt;
use tollgate_proto::v1::chat_chunk::Event;
use tollgate_proto::v1::{ChatChunk, ChatRequest, ServedBy};

use crate::error::{AnthropicError, ApiError};
use crate::observe::{Measure, StreamMeasure};
use crate::request_id::RequestId;
use crate::sse::{ChatFormat, Relay, TranslatedFormat};
use crate::state::EdgeState;
use crate::{access, auth, body, rate_limit, validate};
use tollgate_providers::{MessagesStreamWriter, ResponsesStreamWriter};

pub const PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-tollgate-provider");
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-tollgate-model");
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-tollgate-attempts");
pub const FALLBACK_HEADER: HeaderName = HeaderName::from_static("x-tollgate-fallback");

/// A successful answer, and what served it when known now.
enum ChatResponse {
    Whole(Response, ServedBy),
    /// Measured by its relay when the stream ends.
    Stream(Response),
}

/// The API a client speaks: its request and answer shapes and its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientApi {
    /// OpenAI Chat Completions.
    Chat,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Responses.
    Responses,
}

impl ClientApi {
    /// The route label of its metrics.
    fn route(self) -> &'static str {
        match self {
            ClientApi::Chat => "chat",
            ClientApi::Messages => "messages",
            ClientApi::Responses => "responses",
        }
    }

    fn error_response(self, error: GatewayError) -> Response {
        match self {
            ClientApi::Chat | ClientApi::Responses => ApiError(error).into_response(),
            ClientApi::Messages => AnthropicError(error).into_response(),
        }
    }
}

pub async fn completions(
    State(state): State<EdgeState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&state, request_id, &headers, body, ClientApi::Chat).await
}

/// Serves one chat-shaped request in the API the client speaks.
pub async fn handle(
    state: &EdgeState,
    request_id: String,
    headers: &HeaderMap,
    body: Body,
    api: ClientApi,
) -> Response {
    let measure = Measure::start(Arc::clone(&state.metrics), api.route());
    match serve(state, request_id, headers, body, &measure, api).await {
        Ok(ChatResponse::Whole(response, served)) => {
            measure.finish(Some(&served), response.status().as_u16());
            response
        }
        Ok(ChatResponse::Stream(response)) => response,
        Err(error) => {
            measure.finish(None, error.kind.http_status());
            api.error_response(error)
        }
    }
}

async fn serve(
    state: &EdgeState,
    request_id: String,
    headers: &HeaderMap,
    body: Body,
    measure: &Measure,
    api: ClientApi,
) -> Result<ChatResponse, GatewayError> {
    let received_at_ms = clock::now_ms();
    let settings = &state.settings;
    let key_hash = auth::credential(headers)?;
    let key = auth::resolve(state, &key_hash).await?;
    let bytes = body::read_limited(headers, body, settings.max_body_bytes).await?;
    let (bytes, json) = match api {
        ClientApi::Chat => {
            let json: Value = body::parse_json(&bytes)?;
            (bytes, json)
        }
        ClientApi::Messages => {
            let json = tollgate_providers::chat_request_from_messages(body::parse_json(&bytes)?)?;
            (bytes::Bytes::from(json.to_string()), json)
        }
        ClientApi::Responses => {
            let json = tollgate_providers::chat_request_from_responses(body::parse_json(&bytes)?)?;
            (bytes::Bytes::from(json.to_string()), json)
        }
    };
    let params = validate::chat_request(&json)?;
    access::check_model(&key, &params.model)?;
    let profile = access::select_profile(&key, headers)?;
    let model = params.model.clone();
    let request = ChatRequest {
        request_id,
        key_id: key.id.clone(),
        profile,
        model: params.model,
        body: bytes.clone(),
        stream: params.stream,
        include_usage: params.include_usage,
        prompt_tokens: tokens::estimate_chat_prompt(&json),
        max_completion_tokens: tokens::requested_completion_cap(&json),
        choices: tokens::choices(&json),
        worst_prompt_tokens: tokens::worst_case_chat_prompt(&json, bytes.len()),
        received_at_ms,
        account_id: String::new(),
        health_probe: false,
    };
    if params.stream {
        stream(state, request, measure, api, &model)
            .await
            .map(ChatResponse::Stream)
    } else {
        whole(state, request, api, &model).await
    }
}

fn timed_out() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamTimeout,
        "the upstream did not answer in time",
    )
}

async fn whole(
    state: &EdgeState,
    request: ChatRequest,
    api: ClientApi,
    model: &str,
) -> Result<ChatResponse, GatewayError> {
    let limit = state.settings.request_timeout;
    let mut call = tonic::Request::new(request);
    call.set_timeout(limit);
    let reply = match tokio::time::timeout(limit, state.router.chat(call)).await {
        Err(_elapsed) => return Err(timed_out()),
        Ok(Err(status)) => return Err(GatewayError::from_status(&status)),
        Ok(Ok(reply)) => reply.into_inner(),
    };
    let served = reply.served_by.unwrap_or_default();
    let body = match api {
        ClientApi::Chat => reply.body,
        ClientApi::Messages => tollgate_providers::messages_response(&reply.body, model)?,
        ClientApi::Responses => tollgate_providers::response_object(&reply.body, model)?,
    };
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    set_served_by_headers(response.headers_mut(), &served);
    Ok(ChatResponse::Whole(response, served))
}

/// Opens the stream and waits for its first chunk, so that a failure before
/// any answer is an ordinary error response; then relays the rest as SSE.
async fn stream(
    state: &EdgeState,
    request: ChatRequest,
    measure: &Measure,
    api: ClientApi,
    model: &str,
) -> Result<Response, GatewayError> {
    let include_usage = request.include_usage;
    let limit = state.settings.request_timeout;
    let opening = async {
        let mut chunks = state
            .router
            .chat_stream(tonic::Request::new(request))
            .await?
            .into_inner();
        let first = chunks.next().await;
        Ok::<_, tonic::Status>((chunks, first))
    };
    let (chunks, first) = match tokio::time::timeout(limit, opening).await {
        Err(_elapsed) => return Err(timed_out()),
        Ok(Err(status)) => return Err(GatewayError::from_status(&status)),
        Ok(Ok(opened)) => opened,
    };
    let (served, pending) = match first {
        None => {
            return Err(GatewayError::new(
                ErrorKind::UpstreamError,
                "the upstream ended the stream before answering",
            ));
        }
        Some(Err(status)) => return Err(GatewayError::from_status(&status)),
        Some(Ok(ChatChunk {
            event: Some(Event::ServedBy(served)),
        })) => (served, None),
        Some(Ok(chunk)) => (ServedBy::default(), Some(chunk)),
    };
    let observer = StreamMeasure {
        measure: measure.clone(),
        served: served.clone(),
    };
    let body = match api {
        ClientApi::Chat => {
            let format = ChatFormat { include_usage };
            Body::from_stream(Relay::new(chunks, pending, format, limit, observer))
        }
        ClientApi::Messages => {
            let format = TranslatedFormat(MessagesStreamWriter::new(model));
            Body::from_stream(Relay::new(chunks, pending, format, limit, observer))
        }
        ClientApi::Responses => {
            let format = TranslatedFormat(ResponsesStreamWriter::new(model));
            Body::from_stream(Relay::new(chunks, pending, format, limit, observer))
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Asks reverse proxies (nginx) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    set_served_by_headers(headers, &served);
    Ok(response)
}

/// The gateway headers naming what served the request, and the key's
/// `x-ratelimit-*` headers when it has an RPM or TPM.
pub fn set_served_by_headers(headers: &mut HeaderMap, served: &ServedBy) {
    let values = [
        (PROVIDER_HEADER, served.provider.as_str()),
        (MODEL_HEADER, served.upstream_model.as_str()),
        (FALLBACK_HEADER, served.fallback.as_str()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(value)
            && !value.is_empty()
        {
            headers.insert(name, value);
        }
    }
    if served.attempts > 0 {
        headers.insert(ATTEMPTS_HEADER, HeaderValue::from(served.attempts));
    }
    if let Some(info) = &served.rate_limit {
        rate_limit::set_headers(headers, &rate_limit::of_route(info));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_by_headers_skip_empty_values() {
        let mut headers = HeaderMap::new();
        set_served_by_headers(&mut headers, &ServedBy::default());
        assert!(headers.is_empty());
        let served = ServedBy {
            provider: "mock".into(),
            upstream_model: "mock-echo".into(),
            account_id: "acct_1".into(),
            attempts: 2,
            ..ServedBy::default()
        };
        set_served_by_headers(&mut headers, &served);
        assert_eq!(headers[&PROVIDER_HEADER], "mock");
        assert_eq!(headers[&MODEL_HEADER], "mock-echo");
        assert_eq!(headers[&ATTEMPTS_HEADER], "2");
        assert_eq!(headers.len(), 3);
        let fallen_back = ServedBy {
            fallback: "cheap".into(),
            ..served
        };
        set_served_by_headers(&mut headers, &fallen_back);
        assert_eq!(headers[&FALLBACK_HEADER], "cheap");
    }
}

/// The chat path with a key already in the cache, so everything up to the
/// router call runs; the router itself is down.
#[cfg(test)]
mod handler_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use futures_util::StreamExt;
    use tollgate_core::apikey::{KeyHash, PlaintextKey};
    use tollgate_proto::v1::KeyRecord;

    use crate::state::EdgeState;
    use crate::state::send::{request, send};
    use crate::state::testing::{seed_key, services_down};

    const BODY: &str = r#"{"model":"mock-echo","messages":[{"role":"user","content":"hi"}]}"#;

    fn key_record() -> KeyRecord {
        KeyRecord {
            id: "key_1".into(),
            profile: "default".into(),
            profiles: vec!["team-a".into()],
            models: vec!["mock-echo".into()],
            enabled: true,
            ..KeyRecord::default()
        }
    }

    fn seeded(record: KeyRecord) -> (EdgeState, String) {
        let state = services_down();
        let key = PlaintextKey::generate().unwrap().expose().to_owned();
        seed_key(&state, &key, record);
        (state, format!("Bearer {key}"))
    }

    async fn chat(
        state: &EdgeState,
        auth: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> crate::state::send::Answer {
        let mut headers = vec![
            ("authorization", auth),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        let router = crate::public_router(state.clone());
        send(
            router,
            request("POST", "/v1/chat/completions", &headers, body),
        )
        .await
    }

    #[tokio::test]
    async fn allowed_request_reaches_the_router_and_maps_its_absence_to_503() {
        let (state, auth) = seeded(key_record());
        let answer = chat(&state, &auth, &[], BODY).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.json["error"]["code"], "service_unavailable");
        assert_eq!(answer.json["error"]["type"], "api_error");

        let stream =
            r#"{"model":"mock-echo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let answer = chat(&state, &auth, &[("x-profile", "team-a")], stream).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers["content-type"], "application/json");

        let text = state.metrics.encode();
        let line = r#"tollgate_requests_total{route="chat",model="unknown",provider="unknown",status="5xx"} 2"#;
        assert!(text.contains(line), "{text}");
    }

    #[tokio::test]
    async fn model_outside_the_allow_list_is_403() {
        let (state, auth) = seeded(key_record());
        let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let answer = chat(&state, &auth, &[], body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.json["error"]["code"], "permission_denied");
        assert_eq!(answer.json["error"]["param"], "model");
    }

    #[tokio::test]
    async fn ungranted_profile_is_403() {
        let (state, auth) = seeded(key_record());
        let answer = chat(&state, &auth, &[("x-profile", "team-b")], BODY).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.json["error"]["param"], "x-profile");
    }

    #[tokio::test]
    async fn disabled_and_expired_keys_are_401_even_from_the_cache() {
        let disabled = KeyRecord {
            enabled: false,
            ..key_record()
        };
        let (state, auth) = seeded(disabled);
        let answer = chat(&state, &auth, &[], BODY).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json["error"]["code"], "invalid_api_key");

        let expired = KeyRecord {
            expires_at: Some(1),
            ..key_record()
        };
        let (state, auth) = seeded(expired);
        let answer = chat(&state, &auth, &[], BODY).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(
            answer.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
    }

    /// A large body that counts how often it is polled.
    fn counted_body(polls: &Arc<AtomicUsize>) -> Body {
        let polls = Arc::clone(polls);
        let chunks = futures_util::stream::repeat_with(move || {
            polls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(vec![b' '; 1 << 20])
        })
        .take(40);
        Body::from_stream(chunks)
    }

    async fn chat_with_body(
        state: &EdgeState,
        headers: &[(&str, &str)],
        body: Body,
    ) -> crate::state::send::Answer {
        let mut builder = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let router = crate::public_router(state.clone());
        send(router, builder.body(body).unwrap()).await
    }

    #[tokio::test]
    async fn the_body_of_a_refused_key_is_never_read() {
        let state = services_down();
        let remembered = PlaintextKey::generate().unwrap().expose().to_owned();
        let hash = KeyHash::of(&remembered);
        state.keys.insert_unknown(&hash, state.keys.generation());
        let remembered = format!("Bearer {remembered}");
        let unknown = format!("Bearer {}", PlaintextKey::generate().unwrap().expose());
        let cases = [
            (vec![], StatusCode::UNAUTHORIZED),
            (vec![("x-api-key", "sk-foreign")], StatusCode::UNAUTHORIZED),
            (
                vec![("authorization", remembered.as_str())],
                StatusCode::UNAUTHORIZED,
            ),
            // Quota is down: the key cannot be known, so neither is the body.
            (
                vec![("authorization", unknown.as_str())],
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (headers, status) in cases {
            let polls = Arc::new(AtomicUsize::new(0));
            let answer = chat_with_body(&state, &headers, counted_body(&polls)).await;
            assert_eq!(answer.status, status, "{headers:?}");
            assert_eq!(polls.load(Ordering::SeqCst), 0, "{headers:?}");
        }
        // Refused keys are 401 even when the body is declared too large.
        let declared = [
            ("authorization", remembered.as_str()),
            ("content-length", "999999999"),
        ];
        let answer = chat_with_body(&state, &declared, Body::empty()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_known_key_gets_body_and_field_errors() {
        let (state, auth) = seeded(key_record());
        let polls = Arc::new(AtomicUsize::new(0));
        let answer =
            chat_with_body(&state, &[("authorization", &auth)], counted_body(&polls)).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(polls.load(Ordering::SeqCst) > 0);

        let answer = chat(&state, &auth, &[], "{\"model\": ").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json["error"]["code"], "invalid_request");
        let body = r#"{"model":"mock-echo","messages":[{"role":"bot","content":"b"}]}"#;
        let answer = chat(&state, &auth, &[], body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.json["error"]["param"], "messages[0].role");
    }

    #[tokio::test]
    async fn models_with_a_cached_key_needs_quota() {
        let (state, auth) = seeded(key_record());
        let router = crate::public_router(state);
        let answer = send(
            router,
            request("GET", "/v1/models", &[("authorization", &auth)], ""),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
